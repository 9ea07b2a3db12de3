"""The class-incremental comparison job (Table IV): EEIL with each replay memory, for several seeds.

``run_cicl_job(CICLJob(dataset="ravdess"))`` is what ``ddfad-apps cicl`` runs, and what scripts and tests call.
Every memory kind runs under the same EEIL recipe for each seed; each finished (memory, seed) is saved as JSON
in ``out/<dataset>/<memory>/seed<N>.json`` and reused by a later run with the same settings, so an interrupted
comparison resumes where it stopped.  The summary table, the accuracy curves (PNG) and every run's Avalanche
metrics go to MLflow too (one parent run, one nested run per memory and seed).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddfad_apps.jobs.data import (
    Say,
    feature_config,
    load_splits,
    open_dataset,
    open_device,
)
from ddfad_apps.jobs.errors import JobError, JobSettingsError
from ddfad_apps.jobs.files import write_json_atomic, write_text_atomic
from ddfad_apps.storage.locks import FileLock, lock_path, locked


@dataclass
class CICLJob:
    """What to compare: the data set, the memories, the networks and memory sizes, and the EEIL recipe (``preset``
    plus explicit changes).

    ``models`` (a list: one Table IV per network) and ``mem_per_class`` (a list: a sweep, one comparison per
    value) span a grid of cells; each cell runs every memory for every seed.  ``mem_per_class`` ``None`` means 20
    per class, or, with ``mem_size``, a quota of ``mem_size // seen classes`` shrinking as classes arrive;
    ``mem_size`` with ``mem_per_class`` is the budget that every value must fit.
    """

    dataset: str
    memories: tuple[str, ...] = ("distilled", "herding", "random")
    models: tuple[str, ...] = ("convnet",)
    mem_per_class: int | tuple[int, ...] | None = None
    mem_size: int | None = None
    seeds: int = 3
    first_seed: int = 0
    experiences: int | None = None
    preset: str = "fast"
    distill_method: str | None = None
    distill_iterations: int | None = None
    distill_set: str | None = None
    distill_steps: str | None = None
    distill_init: str | None = None
    distill_context: bool | None = None
    epochs: int | None = None
    finetune_epochs: int | None = None
    finetune_min_steps: int | None = None
    augment: bool | None = None
    data_root: Path | None = None
    feature: str = "fd_mfcc"
    duration: float | None = None
    device: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "ddfad-cicl"
    out: Path = field(default_factory=lambda: Path("cicl-results"))

    def seed_range(self) -> range:
        """The seeds every memory runs: ``first_seed .. first_seed + seeds - 1`` (a later block of seeds, fixed
        before it runs, checks a comparison on runs it was not read from)."""
        if self.seeds < 1 or self.first_seed < 0:
            raise JobSettingsError(f"--seeds must be >= 1 and --first-seed >= 0, got {self.seeds} and "
                                   f"{self.first_seed}")
        return range(self.first_seed, self.first_seed + self.seeds)

    def distill_changes(self) -> dict[str, Any]:
        """``distill_set`` (``"FIELD:VALUE,..."``) as the memory's distillation overrides, each field one its
        method's settings have: any engine setting of the memory, not only the few that have their own option."""
        from dataclasses import fields

        from ddfad_apps.continual.runner import CICLConfig
        from ddfad_apps.distill.presets import method_settings, parse_overrides

        try:
            changes = parse_overrides(self.distill_set or "")
        except ValueError as exc:
            raise JobSettingsError(f"--distill-set: {exc}") from exc
        method = self.distill_method or CICLConfig.preset(self.preset).distill_method
        base = method_settings(method, self.preset, 1)
        if base is None:
            raise JobSettingsError(f"--distill-set: method {method!r} has no settings to change")
        known = {f.name for f in fields(getattr(base, "mtt", base))}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise JobSettingsError(f"--distill-set: {', '.join(unknown)} not a setting of {method!r}; use one of "
                                   f"{', '.join(sorted(known))}")
        own = {"iterations": ("--distill-iterations", self.distill_iterations),
               "steps": ("--distill-steps", self.distill_steps), "init": ("--distill-init", self.distill_init)}
        twice = [f"{key} (also {own[key][0]})" for key in changes if key in own and own[key][1] is not None]
        if twice:
            raise JobSettingsError(f"--distill-set: {', '.join(twice)} given twice; give each setting once")
        return changes

    def sizes(self) -> tuple[int | None, ...]:
        """The memory sizes per class of the grid (``None``: the shrinking quota of ``mem_size``)."""
        if self.mem_per_class is None:
            return (None,) if self.mem_size is not None else (DEFAULT_PER_CLASS,)
        values = (self.mem_per_class,) if isinstance(self.mem_per_class, int) else tuple(self.mem_per_class)
        if not values or any(int(v) < 1 for v in values):
            raise JobSettingsError(f"memory per class must be a list of integers >= 1, got {self.mem_per_class!r}")
        return tuple(dict.fromkeys(int(v) for v in values))

    def networks(self) -> tuple[str, ...]:
        """The networks of the grid, lower case, deduplicated, each one the model registry knows."""
        from ddfad_apps.models import MODEL_NAMES

        names = tuple(dict.fromkeys(m.strip().lower() for m in self.models if m.strip()))
        bad = [m for m in names if m not in MODEL_NAMES]
        if bad or not names:
            raise JobSettingsError(f"unknown model {', '.join(bad) or '(none)'}; use a comma list of "
                                   f"{', '.join(MODEL_NAMES)}")
        return names

    def config(self, model: str | None = None, mem_per_class: int | None | str = "first"):
        """The :class:`~ddfad_apps.continual.runner.CICLConfig` of one cell (default: the first network and
        size): the preset with this job's changes."""
        from ddfad_apps.continual.runner import CICLConfig

        model = (model or self.networks()[0]).lower()
        per_class = self.sizes()[0] if mem_per_class == "first" else mem_per_class
        changes: dict[str, Any] = {"model": model, "mem_per_class": per_class, "mem_size": self.mem_size}
        if self.distill_method is not None:
            changes["distill_method"] = self.distill_method
        if model != "convnet":
            changes["model_kwargs"] = {"width": 16 if self.preset == "fast" else 64}
        if self.epochs is not None:
            changes["epochs"] = self.epochs
        if self.finetune_epochs is not None:
            changes["finetune_epochs"] = self.finetune_epochs
        if self.finetune_min_steps is not None:
            changes["finetune_min_steps"] = self.finetune_min_steps
        if self.augment is not None:
            changes["augment"] = self.augment
        overrides: dict[str, Any] = {}
        if self.distill_steps is not None:
            from ddfad_apps.distill.presets import step_rule_settings

            method = self.distill_method or CICLConfig.preset(self.preset).distill_method
            try:
                step_rule_settings(method, self.distill_steps)
            except ValueError as exc:
                raise JobSettingsError(f"--distill-steps: {exc}") from exc
            changes["distill_steps"] = self.distill_steps
        if self.distill_set:
            overrides.update(self.distill_changes())
        if self.distill_iterations is not None:
            overrides["iterations"] = self.distill_iterations
        if overrides:
            changes["distill_overrides"] = overrides
        if self.distill_init is not None:
            changes["distill_init"] = self.distill_init
        if self.distill_context is not None:
            changes["distill_context"] = self.distill_context
        return CICLConfig.preset(self.preset, **changes)

    def settings_digest(self) -> str:
        """A digest of what this job's runs are made with: each cell's config and, for a distilled memory, the
        distillation settings its storage policy derives (step rule, preset values): a result kept under the job's
        options alone (the report's Table IV) would outlive a change of those defaults."""
        from ddfad_apps.continual.runner import make_memory
        from ddfad_apps.distill.fingerprint import settings_digest

        parts: list[Any] = []
        for model in self.networks():
            for per_class in self.sizes():
                cfg = self.config(model, per_class)
                memory = make_memory("distilled", cfg, 2, 0, "cpu") if "distilled" in self.memories else None
                parts += [cfg.as_dict(), memory.settings_for(per_class or 1) if memory is not None else None]
        return settings_digest(*parts)[:12]


DEFAULT_PER_CLASS = 20


@dataclass
class CICLCell:
    """One (network, memory size) of the grid: its folder (relative to the data set's) and configuration."""

    model: str
    mem_per_class: int | None
    folder: str
    config: Any

    @property
    def label(self) -> str:
        size = f"{self.mem_per_class} per class" if self.mem_per_class else f"{self.config.mem_size} shared"
        return f"{self.model}, {size}"


@dataclass
class CICLResult:
    """Per memory folder the result of every seed, the summary (mean and std over seeds) and where it all went.

    ``runs``/``summary`` keys are the folders of each memory's results under ``out_dir``: the memory name for a
    single network and size, ``<model>-mpc<k>/<memory>`` (``-size<S>`` for a shared budget) for a grid.
    ``sweep`` has one entry per (network, size, memory): its per-seed and mean final accuracies (also in
    ``out_dir/sweep.json``; ``out_dir/memory_sweep.png`` draws them when several sizes ran).
    """

    runs: dict[str, list[dict[str, Any]]]
    summary: dict[str, dict[str, float]]
    table: str
    out_dir: Path
    run_id: str
    tracking_uri: str
    seconds: float
    sweep: list[dict[str, Any]] = field(default_factory=list)


def grid(job: CICLJob) -> list[CICLCell]:
    """The cells of ``job``: every network x memory size, with the folder each one writes to."""
    models, sizes = job.networks(), job.sizes()
    single = len(models) == 1 and len(sizes) == 1
    cells = []
    for model in models:
        for k in sizes:
            folder = "" if single else f"{model}-" + (f"mpc{k}" if k else f"size{job.mem_size}")
            cells.append(CICLCell(model, k, folder, job.config(model, k)))
    return cells


def check_cells(cells: list[CICLCell], memories: tuple[str, ...], splits: Any, n_exp: int, seeds: range) -> None:
    """Every cell's memories against every seed's stream (budget, clips per class, shapes), before any run."""
    from ddfad_apps.continual.benchmarks import check_experiences, feature_benchmark
    from ddfad_apps.continual.runner import make_memory

    check_experiences(splits.train.num_classes, n_exp)
    for seed in seeds:
        stream = list(feature_benchmark(splits.train, splits.test, n_exp, seed).train_stream)
        for cell in cells:
            for memory in memories:
                storage = make_memory(memory, cell.config, splits.train.num_classes, seed, "cpu")
                storage.check_stream(stream)


def check_memories(memories: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The memory kinds, deduplicated, each one the :data:`strategies.MEMORIES` registry knows."""
    from strategies import MEMORIES

    kinds = [m.strip().lower() for m in memories if m.strip()]
    bad = [k for k in kinds if k not in MEMORIES]
    if bad or not kinds:
        raise JobError(f"unknown memory {', '.join(bad) or '(none)'}; use a comma list of {', '.join(MEMORIES)}")
    return tuple(dict.fromkeys(kinds))


def _load_done(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result at ``path`` if it was made with ``settings``; an error if made with others."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a torn file (should not happen: files are written atomically): redo the run
    if saved.get("settings") != settings:
        raise JobError(f"{path} holds a result made with other settings; use another --out folder or delete it "
                       "to rerun")
    return saved


def run_cicl_job(job: CICLJob, progress: bool = True, say: Say = print) -> CICLResult:
    """Run every (network, size, memory, seed) of ``job`` not already saved, then summarise, draw and log."""
    from mlflow.exceptions import MlflowException
    from tqdm.auto import tqdm

    from ddfad_apps.continual.figures import (
        accuracy_curves_figure,
        memory_sweep_figure,
        summary,
        summary_table,
        sweep_entries,
    )
    from ddfad_apps.continual.runner import run_cicl
    from ddfad_apps.storage.atomic import atomic_write
    from ddfad_apps.tracking import tracking_run
    from ddfad_apps.training import NonFiniteLossError
    from strategies import MLflowLogger

    memories = check_memories(job.memories)
    cells = grid(job)
    ref, _ = open_dataset(job.dataset, job.data_root)
    dev = open_device(job.device)
    started = time.perf_counter()
    splits = load_splits(ref, job.data_root, progress=progress, config=feature_config(job.feature),
                         duration=job.duration)
    train = splits.train
    n_classes = train.num_classes
    n_exp = job.experiences or max(1, n_classes // 2)
    try:
        check_cells(cells, memories, splits, n_exp, job.seed_range())  # every budget and shape before the first run
    except ValueError as exc:
        raise JobError(str(exc)) from exc

    short = ref.name
    out_dir = job.out / short
    base = {"dataset": short, "experiences": n_exp, "preset": job.preset, "num_train": len(train),
            "num_test": len(splits.test), "features": splits.config.as_dict(),
            "duration": train.meta.get("duration")}
    sizes = ", ".join(str(k) if k else f"{job.mem_size} shared" for k in job.sizes())
    first = cells[0].config
    seeds = job.seed_range()
    seed_note = f" ({seeds.start}-{seeds.stop - 1})" if job.first_seed else ""
    say(f"{short}: {len(train)} train / {len(splits.test)} test clips, {n_classes} classes in {n_exp} "
        f"experiences; memories {', '.join(memories)}; networks {', '.join(job.networks())}; memory per class "
        f"{sizes}; {job.seeds} seed(s){seed_note}, preset {job.preset} ({first.epochs}+{first.finetune_epochs} epochs, fine-tuning "
        f">= {first.finetune_min_steps} steps, {'augmented' if first.augment else 'no augmentation'}, distilled by "
        f"{first.distill_method}) on {dev}; results in {out_dir}")

    runs: dict[str, list[dict[str, Any]]] = {}
    jobs = [(cell, m, s) for cell in cells for m in memories for s in seeds]
    params = {**base, "memories": ",".join(memories), "models": ",".join(job.networks()), "mem_per_class": sizes,
              "seeds": job.seeds, "first_seed": job.first_seed, "device": str(dev), "config": first.as_dict()}
    try:
        with tracking_run(job.experiment, f"cicl-{short}", params, job.tracking_uri,
                          tags={"command": "cicl"}) as parent:
            def result_path(cell: CICLCell, memory: str, seed: int) -> Path:
                return out_dir / (f"{cell.folder}/{memory}" if cell.folder else memory) / f"seed{seed}.json"

            def run_one(cell: CICLCell, memory: str, seed: int) -> None:
                """Load the run's saved result, or run it and save it (the caller holds its lock)."""
                key = f"{cell.folder}/{memory}" if cell.folder else memory
                name = f"{cell.folder} {memory}" if cell.folder else memory
                settings = {**base, "config": cell.config.as_dict()}
                path = result_path(cell, memory, seed)
                done = _load_done(path, settings)
                if done is not None:
                    say(f"{name} seed {seed}: skipped, done before (final accuracy "
                        f"{done['final_accuracy']:.4f}, {path})")
                    runs.setdefault(key, []).append(done)
                    return
                run_name = f"{short}-{key.replace('/', '-')}-seed{seed}"
                with tracking_run(job.experiment, run_name, {**settings, "memory": memory, "seed": seed},
                                  job.tracking_uri, tags={"command": "cicl"}, nested=True) as child:
                    try:
                        result = run_cicl(splits, memory, seed, cell.config, n_exp, dev, MLflowLogger(child),
                                          progress)
                    except (ValueError, NonFiniteLossError) as exc:
                        raise JobError(f"{name} seed {seed}: {exc}") from exc
                    result.update({"settings": settings, "model": cell.model,
                                   "mem_per_class": cell.mem_per_class, "mem_size": cell.config.mem_size})
                    for t, acc in enumerate(result["accuracy_curve"]):
                        child.metric("seen_class_accuracy", acc, step=t + 1)
                    child.metrics({"final_accuracy": result["final_accuracy"], "forgetting": result["forgetting"],
                                   "average_incremental_accuracy": result["average_incremental_accuracy"],
                                   "seconds": result["seconds"]})
                    child.dict(result, "result.json")
                write_json_atomic(path, result)
                runs.setdefault(key, []).append(result)
                say(f"{name} seed {seed}: final accuracy {result['final_accuracy']:.4f}, forgetting "
                    f"{result['forgetting']:.4f}, curve {[round(a, 3) for a in result['accuracy_curve']]}, "
                    f"{result['seconds']:.0f}s")
            # Two processes started with the same command split the runs: each run is claimed by a lock on its
            # result file; a run another process holds is done last, after waiting for it (then it only loads).
            deferred = []
            bar = tqdm(jobs, desc="cicl", disable=not progress)
            for cell, memory, seed in bar:
                bar.set_postfix(model=cell.model, mpc=cell.mem_per_class, memory=memory, seed=seed)
                lock = FileLock(lock_path(result_path(cell, memory, seed)), remove_on_release=True)
                if not lock.acquire(blocking=False):
                    name = f"{cell.folder} {memory}" if cell.folder else memory
                    say(f"{name} seed {seed}: another process is running it; back to it at the end")
                    deferred.append((cell, memory, seed))
                    continue
                try:
                    run_one(cell, memory, seed)
                finally:
                    lock.release()
            for cell, memory, seed in deferred:
                with locked(result_path(cell, memory, seed), on_wait=say, remove_on_release=True):
                    run_one(cell, memory, seed)
            for key_runs in runs.values():
                key_runs.sort(key=lambda r: r["seed"])
            bar.close()

            tables = []
            for cell in cells:
                cell_runs = {m: runs[f"{cell.folder}/{m}" if cell.folder else m] for m in memories}
                title = f"{short}: EEIL, {cell.label}, {n_exp} experiences ({job.preset})"
                tables.append(summary_table(cell_runs, title))
                folder = out_dir / cell.folder
                fig = accuracy_curves_figure(cell_runs, title)
                atomic_write(folder / "accuracy_curves.png", lambda tmp, f=fig: f.savefig(tmp, format="png"))
                write_text_atomic(folder / "table.txt", tables[-1] + "\n")
                parent.figure(fig, f"{cell.folder + '/' if cell.folder else ''}accuracy_curves.png")
            table = "\n\n".join(tables)
            entries = sweep_entries(runs)
            write_json_atomic(out_dir / "sweep.json", {"dataset": short, "experiences": n_exp, "entries": entries})
            if len(cells) > 1:
                write_text_atomic(out_dir / "table.txt", table + "\n")
            if len(job.sizes()) > 1:
                fig = memory_sweep_figure(entries, f"{short}: final accuracy vs memory size ({job.preset})")
                atomic_write(out_dir / "memory_sweep.png", lambda tmp: fig.savefig(tmp, format="png"))
                parent.figure(fig, "memory_sweep.png")
            parent.text(table, "table.txt")
            parent.dict({"summary": summary(runs), "sweep": entries, "runs": runs}, "results.json")
            parent.metrics({f"{m}.{k}": v for m, row in summary(runs).items() for k, v in row.items()})
            run_id, used_uri = parent.run_id, parent.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return CICLResult(runs, summary(runs), table, out_dir, run_id, used_uri, time.perf_counter() - started,
                      entries)
