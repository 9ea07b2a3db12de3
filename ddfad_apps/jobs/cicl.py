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

from ddfad_apps.jobs.data import Say, feature_config, load_splits, open_dataset, open_device
from ddfad_apps.jobs.errors import JobError
from ddfad_apps.jobs.files import write_json_atomic


@dataclass
class CICLJob:
    """What to compare: the data set, the memories and the EEIL recipe (``preset`` plus explicit changes)."""

    dataset: str
    memories: tuple[str, ...] = ("distilled", "herding", "random")
    model: str = "convnet"
    mem_per_class: int = 20
    mem_size: int | None = None
    seeds: int = 3
    experiences: int | None = None
    preset: str = "fast"
    distill_method: str | None = None
    distill_iterations: int | None = None
    distill_init: str | None = None
    epochs: int | None = None
    finetune_epochs: int | None = None
    data_root: Path | None = None
    feature: str = "fd_mfcc"
    duration: float | None = None
    device: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "ddfad-cicl"
    out: Path = field(default_factory=lambda: Path("cicl-results"))

    def config(self):
        """The :class:`~ddfad_apps.continual.runner.CICLConfig` of this job: the preset with this job's changes."""
        from ddfad_apps.continual.runner import CICLConfig

        changes: dict[str, Any] = {"model": self.model.lower(), "mem_per_class": self.mem_per_class}
        if self.distill_method is not None:
            changes["distill_method"] = self.distill_method
        if self.model.lower() != "convnet":
            changes["model_kwargs"] = {"width": 16 if self.preset == "fast" else 64}
        if self.epochs is not None:
            changes["epochs"] = self.epochs
        if self.finetune_epochs is not None:
            changes["finetune_epochs"] = self.finetune_epochs
        if self.distill_iterations is not None:
            changes["distill_overrides"] = {"iterations": self.distill_iterations}
        if self.distill_init is not None:
            changes["distill_init"] = self.distill_init
        return CICLConfig.preset(self.preset, **changes)


@dataclass
class CICLResult:
    """Per memory the result of every seed, the summary (mean and std over seeds) and where it all went."""

    runs: dict[str, list[dict[str, Any]]]
    summary: dict[str, dict[str, float]]
    table: str
    out_dir: Path
    run_id: str
    tracking_uri: str
    seconds: float


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
    """Run every (memory, seed) of ``job`` not already saved, then summarise, draw and log the comparison."""
    from mlflow.exceptions import MlflowException
    from tqdm.auto import tqdm

    from ddfad_apps.continual.benchmarks import check_experiences
    from ddfad_apps.continual.figures import accuracy_curves_figure, summary, summary_table
    from ddfad_apps.continual.runner import run_cicl
    from ddfad_apps.distill import NotEnoughClipsError, check_clips_per_class
    from ddfad_apps.tracking import tracking_run
    from ddfad_apps.training import NonFiniteLossError
    from strategies import MLflowLogger

    memories = check_memories(job.memories)
    ref, _ = open_dataset(job.dataset, job.data_root)
    dev = open_device(job.device)
    cfg = job.config()
    started = time.perf_counter()
    splits = load_splits(ref, job.data_root, progress=progress, config=feature_config(job.feature),
                         duration=job.duration)
    train = splits.train
    n_classes = train.num_classes
    n_exp = job.experiences or max(1, n_classes // 2)
    budget = job.mem_size or job.mem_per_class * n_classes
    try:
        check_experiences(n_classes, n_exp)
        if budget < job.mem_per_class * n_classes:
            raise ValueError(f"memory budget of {budget} is too small for {job.mem_per_class} inputs per class x "
                             f"{n_classes} classes; use --mem-size >= {job.mem_per_class * n_classes} or a smaller "
                             "--mem-per-class")
        check_clips_per_class(train, job.mem_per_class)
    except (ValueError, NotEnoughClipsError) as exc:
        raise JobError(str(exc)) from exc

    short = ref.name
    out_dir = job.out / short
    settings = {"dataset": short, "experiences": n_exp, "preset": job.preset, "config": cfg.as_dict(),
                "num_train": len(train), "num_test": len(splits.test), "features": splits.config.as_dict(),
                "duration": train.meta.get("duration")}
    say(f"{short}: {len(train)} train / {len(splits.test)} test clips, {n_classes} classes in {n_exp} "
        f"experiences; memories {', '.join(memories)}, {job.mem_per_class} per class, {job.seeds} seed(s), "
        f"preset {job.preset} ({job.model} {cfg.model_kwargs}, {cfg.epochs}+{cfg.finetune_epochs} epochs, "
        f"distilled by {cfg.distill_method}) on {dev}; results in {out_dir}")

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in memories}
    pairs = [(m, s) for m in memories for s in range(job.seeds)]
    params = {**settings, "memories": ",".join(memories), "seeds": job.seeds, "device": str(dev)}
    try:
        with tracking_run(job.experiment, f"cicl-{short}", params, job.tracking_uri,
                          tags={"command": "cicl"}) as parent:
            bar = tqdm(pairs, desc="cicl", disable=not progress)
            for memory, seed in bar:
                bar.set_postfix(memory=memory, seed=seed)
                path = out_dir / memory / f"seed{seed}.json"
                done = _load_done(path, settings)
                if done is not None:
                    say(f"{memory} seed {seed}: skipped, done before (final accuracy "
                        f"{done['final_accuracy']:.4f}, {path})")
                    runs[memory].append(done)
                    continue
                with tracking_run(job.experiment, f"{short}-{memory}-seed{seed}",
                                  {**settings, "memory": memory, "seed": seed}, job.tracking_uri,
                                  tags={"command": "cicl"}, nested=True) as child:
                    try:
                        result = run_cicl(splits, memory, seed, cfg, n_exp, dev, MLflowLogger(child), progress)
                    except (ValueError, NonFiniteLossError) as exc:
                        raise JobError(f"{memory} seed {seed}: {exc}") from exc
                    result["settings"] = settings
                    for t, acc in enumerate(result["accuracy_curve"]):
                        child.metric("seen_class_accuracy", acc, step=t + 1)
                    child.metrics({"final_accuracy": result["final_accuracy"], "forgetting": result["forgetting"],
                                   "average_incremental_accuracy": result["average_incremental_accuracy"],
                                   "seconds": result["seconds"]})
                    child.dict(result, "result.json")
                write_json_atomic(path, result)
                runs[memory].append(result)
                say(f"{memory} seed {seed}: final accuracy {result['final_accuracy']:.4f}, forgetting "
                    f"{result['forgetting']:.4f}, curve {[round(a, 3) for a in result['accuracy_curve']]}, "
                    f"{result['seconds']:.0f}s")
            bar.close()

            title = f"{short}: EEIL, {job.mem_per_class} per class, {n_exp} experiences ({job.preset})"
            table = summary_table(runs, title)
            fig = accuracy_curves_figure(runs, title)
            out_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(out_dir / "accuracy_curves.png")
            (out_dir / "table.txt").write_text(table + "\n")
            parent.figure(fig, "accuracy_curves.png")
            parent.text(table, "table.txt")
            parent.dict({"summary": summary(runs), "runs": runs}, "results.json")
            parent.metrics({f"{m}.{k}": v for m, row in summary(runs).items() for k, v in row.items()})
            run_id, used_uri = parent.run_id, parent.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return CICLResult(runs, summary(runs), table, out_dir, run_id, used_uri, time.perf_counter() - started)
