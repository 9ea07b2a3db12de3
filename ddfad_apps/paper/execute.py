"""Running one cell: the existing engine, protocol and jobs, called with the cell's settings.

``set`` cells distil (or select) from ``protocol.carve(train).fit`` with every set seed (:func:`distill`) and go
through :func:`~ddfad_apps.evidence.compare.compare` on each target network; ``whole`` evaluates that fit split
itself; ``noise`` calls
:func:`~ddfad_apps.evidence.noise.waveform_noise_curve`; ``fig6`` :func:`plot_original_vs_distilled`; ``cicl``
and ``nas`` run their jobs.  Each cell is measured: wall time and the process's peak resident memory during the
cell (Linux: the high-water mark is reset before the cell through ``/proc/self/clear_refs``), plus the GPU's
peak allocation on CUDA.
"""

from __future__ import annotations

import hashlib
import json
import re
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ddfad_apps.jobs.files import write_json_atomic
from ddfad_apps.paper.cells import Cell, set_seeds_of
from ddfad_apps.storage.shared_work import Unit, help_with_units, is_done, run_units

Say = Callable[[str], None]


@contextmanager
def measure(device: torch.device) -> Iterator[dict[str, Any]]:
    """Fill the yielded dict with ``seconds``, ``peak_rss_mb`` (and ``peak_gpu_mb`` on CUDA) of the block."""
    cost: dict[str, Any] = {}
    reset = _reset_peak_rss()
    cost["rss_start_mb"] = _status_mb("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    try:
        yield cost
    finally:
        cost["seconds"] = time.perf_counter() - t0
        hwm = _status_mb("VmHWM") if reset else None
        cost["peak_rss_mb"] = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cost["peak_rss_scope"] = "cell" if hwm is not None else "process so far (peak could not be reset)"
        if device.type == "cuda":
            cost["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mb(field_name: str) -> float | None:
    try:
        match = re.search(rf"^{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


@dataclass
class Context:
    """What every cell shares: where data and outputs are, the device, MLflow, and loaded features."""

    raw: Path
    device: torch.device
    data_root: Path | None = None
    tracking_uri: str | None = None
    say: Say = print
    _splits: dict[tuple[str, str], Any] = field(default_factory=dict)

    def files(self, cell: Cell | str) -> Path:
        """The folder of a cell's own files (sets, job outputs, figures): ``raw/<key>``."""
        return self.raw / (cell if isinstance(cell, str) else cell.key)

    def splits(self, dataset: str, feature: str = "fd_mfcc"):
        """Normalised train/test features of ``dataset`` (feature kind ``feature``), loaded once per run."""
        from ddfad_apps.features.config import FeatureConfig
        from ddfad_apps.features.dataset import load_features

        if (dataset, feature) not in self._splits:
            self._splits[(dataset, feature)] = load_features(dataset, self.data_root, FeatureConfig(kind=feature),
                                                             progress=False)
        return self._splits[(dataset, feature)]


def protocol_for(params: dict[str, Any], target: str):
    """The evaluation protocol of a cell on network ``target`` (the preset's recipe with the size's changes)."""
    from ddfad_apps.evidence import EvalProtocol

    changes = dict(params["protocol"])
    if "lr_grid" in changes:
        changes["lr_grid"] = tuple(changes["lr_grid"])
    base = EvalProtocol.for_preset(params["preset"], target, epochs=changes.pop("epochs", None))
    base = base.with_changes(**changes)
    kwargs = params.get("target_kwargs", {}).get(target)
    return base.with_changes(model_kwargs=dict(kwargs)) if kwargs else base


def method_settings_for(params: dict[str, Any], num_train: int):
    """The method's settings for the cell: preset, distilling network and the size's overrides."""
    from ddfad_apps.distill.presets import MTTPlan, method_settings

    settings = method_settings(params["method"], params["preset"], params["cpc"], num_train,
                               model=params["source"], model_kwargs=params["source_kwargs"] or None,
                               **params["overrides"])
    if isinstance(settings, MTTPlan) and params["experts"]:
        settings = MTTPlan(replace(settings.experts, **params["experts"]), settings.mtt)
    return settings


def set_folder(ctx: Context, key: str, seed: int) -> Path:
    """Where the ``set`` cell ``key`` saved its set of ``seed``."""
    return ctx.files(key) / f"s{seed}"


MADE_FILE = "made.json"  # in a set's folder: the seconds it took to make and what made it (making_digest)
MAKING_KEYS = ("dataset", "feature", "method", "cpc", "source", "preset", "overrides", "experts", "source_kwargs",
               "preset_values")


def making_digest(params: dict[str, Any]) -> str:
    """A digest of what makes a set cell's sets, leaving out how they are evaluated (targets, evaluation seeds, the
    protocol's lr selection): a set made for one evaluation protocol serves a cell that evaluates it another way.
    The carve is part of it (sets are made from the carved fit split)."""
    from ddfad_apps.distill.fingerprint import settings_digest

    carve = protocol_for(params, "convnet")
    return settings_digest({**{k: params.get(k) for k in MAKING_KEYS},
                            "carve": {"val_fraction": carve.val_fraction, "carve_seed": carve.carve_seed}})[:16]


def made_elsewhere(ctx: Context, making: str, seed: int, key: str) -> Path | None:
    """A finished set folder of another cell made the same way with ``seed`` (see :func:`making_digest`)."""
    for made in sorted(ctx.raw.glob(f"*/s{seed}/{MADE_FILE}")):
        folder = made.parent
        if folder.parent.name == key or not is_done(folder):
            continue
        try:
            if json.loads(made.read_text()).get("making") == making:
                return folder
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return None


def _set_unit(cell: Cell, ctx: Context, seed: int, make: Callable[[], Any]) -> Unit:
    """The set of ``seed`` as a shared unit of work: made once, kept in ``raw/<key>/s<seed>`` with its time.

    A set another cell made the same way (another evaluation protocol, other targets) is copied, not made again;
    its making time is kept and its origin recorded (``reused_from`` in ``made.json``)."""
    from ddfad_apps.distill import SyntheticSet

    making = making_digest(cell.params)

    def compute() -> tuple[Any, float, str | None]:
        found = made_elsewhere(ctx, making, seed, cell.key)
        if found is not None:
            ctx.say(f"{cell.key} set seed {seed}: made the same way in {found.parent.name}; reused")
            return (*load(found)[:2], found.parent.name)
        t0 = time.perf_counter()
        syn = make()
        return syn, time.perf_counter() - t0, None

    def save(made: tuple[Any, float, str | None], folder: Path) -> None:
        made[0].save(folder)
        write_json_atomic(folder / MADE_FILE, {"seconds": made[1], "making": making,
                                               **({"reused_from": made[2]} if made[2] else {})})

    def load(folder: Path) -> tuple[Any, float, str | None]:
        info = json.loads((folder / MADE_FILE).read_text())
        return SyntheticSet.load(folder), info["seconds"], info.get("reused_from")

    return Unit(set_folder(ctx, cell.key, seed), compute, save, load, f"{cell.key} set seed {seed}")


def _set_digest(syn: Any) -> str:
    """A digest of one set's contents: an evaluation is reused only for the very set it scored."""
    digest = hashlib.sha256()
    digest.update(syn.features.detach().cpu().contiguous().numpy().tobytes())
    digest.update(syn.labels.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def evaluation_name(target: str, seed: int, syn: Any, protocol: Any, eval_seeds: list[int]) -> str:
    """The folder name of one set's evaluation: the target, the set seed and a digest of what decides the result
    (the set's contents, the protocol, the evaluation seeds), so the same name in any cell is the same evaluation."""
    from ddfad_apps.distill.fingerprint import settings_digest

    return f"eval-{target}-s{seed}-{settings_digest(_set_digest(syn), protocol.as_dict(), list(eval_seeds))[:12]}"


def evaluated_elsewhere(ctx: Context, own_key: str, name: str, syn: Any, seed: int, target: str,
                        protocol: Any, eval_seeds: list[int]) -> tuple[dict[str, Any], str] | None:
    """The evaluation ``name`` (see :func:`evaluation_name`) another cell already has, and that cell's key: as its
    own unit folder, or inside a finished cell's record, whose set of ``seed`` has the same contents and whose
    evaluation of it used the same protocol and seeds (cells evaluated all their sets in one unit before)."""
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.distill.fingerprint import settings_digest

    for folder in sorted(ctx.raw.glob(f"*/{name}")):
        if folder.parent.name != own_key and is_done(folder):
            return json.loads((folder / "evaluation.json").read_text()), folder.parent.name
    wanted, digest = settings_digest(protocol.as_dict(), list(eval_seeds)), _set_digest(syn)
    for record in sorted(ctx.raw.glob("set-*.json")):
        key = record.stem
        set_dir = set_folder(ctx, key, seed)
        if key == own_key or not (set_dir / MADE_FILE).is_file():
            continue
        try:
            evaluation = json.loads(record.read_text())["result"]["evaluations"][target]
            run = evaluation["runs"][str(seed)]
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if settings_digest(run["protocol"], list(run["seeds"])) != wanted:
            continue
        if _set_digest(SyntheticSet.load(set_dir)) == digest:
            seconds = sum(run.get("seconds", {}).values())
            return {"evaluation": run, "seconds": seconds}, key
    return None


def _eval_units(cell: Cell, ctx: Context, sets: dict[int, Any], carved: Any, test: Any, target: str) -> list[Unit]:
    """One unit per set seed: the set's evaluation on ``target`` through the protocol, kept as
    ``raw/<key>/<evaluation_name>``; two runs of the report split a cell's evaluations, and an evaluation another
    cell made of the same set the same way is copied (``reused_from``), not run again."""
    from ddfad_apps.evidence import eval_seeds_for, evaluate_set

    p = cell.params
    protocol = protocol_for(p, target)
    units = []
    for seed, syn in sets.items():
        seeds = eval_seeds_for(seed, p["eval_seeds"])
        name = evaluation_name(target, seed, syn, protocol, seeds)

        def compute(syn=syn, seeds=seeds, name=name, seed=seed) -> dict[str, Any]:
            found = evaluated_elsewhere(ctx, cell.key, name, syn, seed, target, protocol, seeds)
            if found is not None:
                ctx.say(f"{cell.key} on {target}, set seed {seed}: evaluated the same way in {found[1]}; reused")
                return {**found[0], "reused_from": found[1]}
            t0 = time.perf_counter()
            evaluation = evaluate_set(syn, carved, test, protocol, seeds, ctx.device, p["method"])
            return {"evaluation": evaluation.as_dict(), "seconds": time.perf_counter() - t0}

        units.append(Unit(ctx.files(cell) / name, compute,
                          lambda result, folder: write_json_atomic(folder / "evaluation.json", result),
                          lambda folder: json.loads((folder / "evaluation.json").read_text()),
                          f"{cell.key} on {target}, set seed {seed}"))
    return units


def _target_sets(params: dict[str, Any], target: str, sets: dict[int, Any]) -> dict[int, Any]:
    """The sets (by set seed) the cell evaluates on ``target``: all, or the first few (``target_seeds``)."""
    return {seed: syn for seed, syn in sets.items() if seed in set_seeds_of(params, target)}


def _set_units(cell: Cell, ctx: Context):
    """The cell's data (splits and carve), its method's settings and one shared unit per set seed, by seed."""
    from ddfad_apps.distill import distill

    p = cell.params
    splits = ctx.splits(p["dataset"], p["feature"])
    carved = protocol_for(p, "convnet").carve(splits.train)  # the carve depends on val_fraction and seed only
    settings = method_settings_for(p, len(carved.fit))
    units = {seed: _set_unit(cell, ctx, seed, lambda seed=seed: distill(
        carved.fit, p["cpc"], p["method"], p["preset"], settings=settings, seed=seed, device=ctx.device,
        stats=splits.stats, test=splits.test, progress=False)) for seed in set_seeds_of(p)}
    return splits, carved, settings, units


def join_set(cell: Cell, ctx: Context) -> None:
    """Work on the set cell another run of the report is computing: make the sets of seeds nobody has taken, then
    evaluate every finished set nobody is evaluating (its holder loads all of them).

    A set still being made elsewhere is left to its maker; the sets already made are evaluated at once rather than
    after the last one, so a joiner that finishes its set first does not leave that set's evaluation to the holder
    while it idles."""
    splits, carved, _, units = _set_units(cell, ctx)
    help_with_units(list(units.values()))
    sets = {seed: unit.load(unit.folder)[0] for seed, unit in units.items() if is_done(unit.folder)}
    for target in cell.params["targets"]:
        help_with_units(_eval_units(cell, ctx, _target_sets(cell.params, target, sets), carved, splits.test, target))


def run_set(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Make the cell's sets (one per set seed) from the carved fit split, save them, evaluate on each target.

    Each set and each (target, set seed) evaluation is a :mod:`shared unit <ddfad_apps.storage.shared_work>`: an
    interrupted cell resumes at the first unit not done, and two runs split the units; ``resumed`` names the
    units an earlier run had finished."""
    from ddfad_apps.evidence import compare
    from ddfad_apps.evidence.protocol import SetEvaluation

    p = cell.params
    splits, carved, settings, units = _set_units(cell, ctx)
    resumed_sets = [seed for seed, unit in units.items() if is_done(unit.folder)]
    made = dict(zip(units, run_units(list(units.values()), ctx.say)))
    sets = {seed: syn for seed, (syn, _, _) in made.items()}
    experts = [syn.meta["experts"]["test_accuracy"] for syn in sets.values() if "experts" in syn.meta]
    evaluations: dict[str, dict[str, Any]] = {}
    eval_seconds: dict[str, float] = {}
    resumed_targets, reused = [], {}
    for target in p["targets"]:
        own = _target_sets(p, target, sets)
        eval_units = _eval_units(cell, ctx, own, carved, splits.test, target)
        if all(is_done(unit.folder) for unit in eval_units):
            resumed_targets.append(target)
        scored = dict(zip(own, run_units(eval_units, ctx.say)))
        result = compare({p["method"]: own}, carved, splits.test, protocol_for(p, target), p["eval_seeds"],
                         ctx.device, evaluations={(p["method"], seed): SetEvaluation.from_dict(r["evaluation"])
                                                  for seed, r in scored.items()})
        evaluations[target] = result.methods[p["method"]].as_dict()
        eval_seconds[target] = sum(r["seconds"] for r in scored.values())
        reused.update({f"{target}/{seed}": r["reused_from"] for seed, r in scored.items() if r.get("reused_from")})
    out = {"evaluations": evaluations,
           "make_seconds": [seconds for _, seconds, _ in made.values()],
           **({"sets_reused_from": {str(seed): origin for seed, (_, _, origin) in made.items() if origin}}
              if any(origin for _, _, origin in made.values()) else {}),
           **({"evaluations_reused_from": reused} if reused else {}),
           "eval_seconds": eval_seconds,
           "learned_lr": [syn.lr for syn in sets.values()], "experts_test_accuracy": experts,
           "carve": carved.as_dict(), "test_clips": len(splits.test), "input_shape": list(splits.train.input_shape),
           "resumed": {"sets": resumed_sets, "targets": resumed_targets},
           "settings": json.loads(json.dumps(settings, default=_plain))}
    return out, [set_folder(ctx, cell.key, s) / "distilled.json" for s in sets]


def _plain(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) else str(obj)


def run_whole(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """The carved fit split through the protocol (:func:`~ddfad_apps.jobs.train.evaluate_whole_split`, as
    ``train --under-protocol`` does); nothing but the evaluation is kept (the split is the data set itself)."""
    from ddfad_apps.evidence import eval_seeds_for
    from ddfad_apps.jobs.train import evaluate_whole_split

    p = cell.params
    splits = ctx.splits(p["dataset"], p["feature"])
    protocol = protocol_for(p, "convnet")
    carved = protocol.carve(splits.train)
    ev = evaluate_whole_split(carved, splits.test, protocol, eval_seeds_for(0, p["eval_seeds"]), ctx.device,
                              say=lambda line: None)
    return {"evaluation": ev.as_dict(), "fit_clips": len(carved.fit), "carve": carved.as_dict(),
            "test_clips": len(splits.test)}, []


def run_noise(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Waveform noise (std 0 = the round trip) on every set seed's set of the source cell, through the protocol."""
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.evidence import eval_seeds_for
    from ddfad_apps.evidence.noise import waveform_noise_curve

    p = cell.params
    splits = ctx.splits(p["dataset"])
    protocol = protocol_for(p, "convnet")
    carved = protocol.carve(splits.train)
    levels: dict[str, dict[str, Any]] = {}
    for seed in set_seeds_of(p):
        syn = SyntheticSet.load(set_folder(ctx, p["source"], seed))
        curve = waveform_noise_curve(syn, carved, splits.test, protocol, p["stds"],
                                     eval_seeds_for(seed, p["eval_seeds"]), ctx.device, p["n_iter"],
                                     noise_seed=seed)
        for level in curve:
            row = levels.setdefault(f"{level.std:g}", {"std": level.std, "variance": level.variance,
                                                       "snr_db": {}, "per_set_seed": {}, "lr": {}})
            row["snr_db"][str(seed)] = None if level.snr_db == float("inf") else level.snr_db
            row["per_set_seed"][str(seed)] = level.evaluation.summary.mean
            row["lr"][str(seed)] = level.evaluation.lr
    return {"levels": list(levels.values()), "protocol": protocol.as_dict()}, []


def run_roundtrip(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """The round trip from the WAV files: each set seed's set exported as audio, features extracted again, both
    through the protocol on the same evaluation seeds (:func:`~ddfad_apps.evidence.roundtrip.round_trip`)."""
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.evidence import eval_seeds_for
    from ddfad_apps.evidence.roundtrip import round_trip
    from ddfad_apps.reconstruct.writer import write_audio_dataset

    p = cell.params
    splits = ctx.splits(p["dataset"])
    protocol = protocol_for(p, "convnet")
    carved = protocol.carve(splits.train)
    runs = {}
    for seed in set_seeds_of(p):
        syn = SyntheticSet.load(set_folder(ctx, p["source"], seed))
        audio = write_audio_dataset(syn, ctx.files(cell) / f"s{seed}", int(syn.meta["sample_rate"]),
                                    syn.feature_config, float(syn.meta["duration"]), p["n_iter"], device=ctx.device)
        runs[str(seed)] = round_trip(syn, audio, carved, splits.test, protocol, eval_seeds_for(seed, p["eval_seeds"]),
                                     ctx.device).as_dict()
    return {"per_set_seed": {s: {"features": r["features"]["mean"], "audio": r["audio"]["mean"]}
                             for s, r in runs.items()}, "runs": runs, "protocol": protocol.as_dict()}, []


def run_fig6(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Fig. 6 from the source cell's set: the first original and distilled clip of every class."""
    from ddfad_apps.data.audio_io import read_many
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.evidence.noise import reconstruct_waves
    from ddfad_apps.reconstruct.figures import plot_original_vs_distilled

    p = cell.params
    syn = SyntheticSet.load(set_folder(ctx, p["source"], p["set_seed"]))
    clips = list_clips(p["dataset"], "train", ctx.data_root)
    first = [clips.labels.index(c) for c in range(len(clips.classes))]
    real, kept = read_many([clips.paths[i] for i in first], clips.sample_rate, clips.num_samples, progress=False)
    waves = reconstruct_waves(syn, clips.sample_rate, clips.duration, p["n_iter"])
    path = ctx.files(cell) / "fig6.png"
    plot_original_vs_distilled(real, torch.tensor([clips.labels[first[i]] for i in kept]), waves, syn.labels,
                               syn.classes, clips.sample_rate, path, max_classes=None)
    return {"classes": list(syn.classes), "shown": list(syn.classes), "sample_rate": clips.sample_rate,
            "method": syn.method}, [path]


def run_cicl(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Table IV through the cicl job (its own per-(memory, seed) resume under the cell's folder)."""
    from ddfad_apps.jobs import CICLJob, run_cicl_job

    p = dict(cell.params)
    p.pop("config_values", None)  # the digest keying the cell (cells.cicl_digest), not a job option
    job = CICLJob(dataset=p.pop("dataset"), memories=tuple(p.pop("memories")), data_root=ctx.data_root,
                  device=str(ctx.device), tracking_uri=ctx.tracking_uri, out=ctx.files(cell), **p)
    result = run_cicl_job(job, progress=False, say=lambda line: None)
    runs = {m: [{k: r[k] for k in ("final_accuracy", "forgetting", "average_incremental_accuracy",
                                   "accuracy_curve", "seconds") if k in r} for r in rs]
            for m, rs in result.runs.items()}
    figure = result.out_dir / "accuracy_curves.png"
    return {"runs": runs, "summary": result.summary, "table": result.table, "run_id": result.run_id}, [figure]


def _nas_job(cell: Cell, ctx: Context):
    """The nas job of a Fig. 8 cell (one worker in this process, its files under the cell's folder)."""
    from ddfad_apps.jobs import NASSearchJob

    p = dict(cell.params)
    restriction = p.pop("restriction", {})
    return NASSearchJob(dataset=p.pop("dataset"), proxies=tuple(p.pop("proxies")), restriction=restriction,
                        data_root=str(ctx.data_root) if ctx.data_root else None, device=str(ctx.device),
                        threads=torch.get_num_threads(), tracking_uri=ctx.tracking_uri, out=ctx.files(cell),
                        workers=1, **p)


def run_nas(cell: Cell, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Fig. 8 through the nas job (one worker in this process; another run of the report may join it)."""
    from ddfad_apps.jobs import run_nas_job

    result = run_nas_job(_nas_job(cell, ctx), progress=False, say=lambda line: None)
    report = result.report
    return ({"reports": report["reports"], "differences": report["differences"], "text": result.text,
             "wall_seconds": result.seconds, "architectures": len(report["sample"] or [])},
            [result.out / "fig8.png"])


def join_nas(cell: Cell, ctx: Context) -> None:
    """Work on the Fig. 8 cell another run of the report is computing: one more worker on its studies."""
    from ddfad_apps.jobs.nas import join_nas_job

    join_nas_job(_nas_job(cell, ctx), progress=False, say=lambda line: None)


RUNNERS: dict[str, Callable[[Cell, Context], tuple[dict[str, Any], list[Path]]]] = {
    "set": run_set, "whole": run_whole, "noise": run_noise, "roundtrip": run_roundtrip, "fig6": run_fig6,
    "cicl": run_cicl, "nas": run_nas}

# Cell kinds whose work a second run of the report can share while the first holds the cell (instead of only
# waiting for it): the joiner returns once nothing is left that it can take, and the run moves on.
JOINERS: dict[str, Callable[[Cell, Context], None]] = {"set": join_set, "nas": join_nas}

