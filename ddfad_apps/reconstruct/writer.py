"""Write a distilled set as a folder of WAV files that people can listen to and the folder loader can read back.

Layout: ``out_dir/<class>/<class>_<k>.wav`` (16-bit PCM) and ``out_dir/manifest.json``.  Everything is written into
a hidden sibling folder that is renamed onto ``out_dir`` at the end, the manifest last, so an interrupted run
never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.reconstruct.functional import SYNTHESIS_OVERLAP, fd_mfcc_to_audio

MANIFEST = "manifest.json"
WRITER = "ddfad_apps.reconstruct"
MOMENTUM = 0.99
REGULARIZATION = 1e-2


def _check_class_names(classes: list[str]) -> None:
    for name in classes:
        if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name:
            raise ValueError(f"class name {name!r} cannot be a folder name (empty, hidden or with a path separator)")


def _replaceable(folder: Path) -> bool:
    """An existing ``out_dir`` may be replaced only if it is empty or an earlier export of ours."""
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    if not any(folder.iterdir()):
        return True
    try:
        return json.loads((folder / MANIFEST).read_text()).get("writer") == WRITER
    except (OSError, ValueError):
        return False


def write_audio_dataset(
    synthetic: SyntheticSet, out_dir: str | Path, sample_rate: int, config: FeatureConfig, duration: float,
    n_iter: int = 32, peak: float = 0.9, *, seed: int = 0, batch_size: int = 256,
    device: torch.device | str | None = None,
) -> Path:
    """Reconstruct every clip of ``synthetic`` (fast Griffin-Lim) and write the WAV folder; returns ``out_dir``.

    Each clip is scaled to ``peak`` (its absolute level is whatever the optimisation made it, often far above
    full scale), so no clip clips; the manifest records each clip's linear ``gain`` (1 for a silent clip) and the
    ``raw_peak`` it was applied to, so the features' own level can be recovered.  ``seed`` fixes the random
    initial phases so that an export can be repeated bit for bit.
    """
    if synthetic.stats is None:
        raise ValueError(
            "the distilled set carries no normalisation statistics (SyntheticSet.stats is None), so its features "
            "cannot be turned back into raw FD-MFCC; re-save it with the FeatureStats of the training split"
        )
    if not 0.0 < peak <= 1.0:
        raise ValueError(f"peak must be in (0, 1], got {peak}")
    classes = list(synthetic.classes)
    _check_class_names(classes)
    labels = synthetic.labels.cpu().long()
    counts = torch.bincount(labels, minlength=len(classes))
    if len(counts) > len(classes):
        raise ValueError(f"labels go up to {len(counts) - 1} but there are only {len(classes)} classes")
    empty = [classes[c] for c in range(len(classes)) if counts[c] == 0]
    if empty:
        raise ValueError(f"class(es) {empty} have no clip; the folder loader needs at least one clip per class")
    length = int(round(sample_rate * duration))
    frames = config.num_frames(length, sample_rate)
    expected = (config.channels, config.n_coeffs, frames)
    if tuple(synthetic.features.shape[1:]) != expected:
        raise ValueError(
            f"features have shape {tuple(synthetic.features.shape[1:])} per clip but {config.kind} at {sample_rate} Hz"
            f" for {duration} s gives {expected}; check sample_rate, duration and the feature config"
        )

    out_dir = Path(out_dir)
    if not _replaceable(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not an earlier audio export; choose another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    device = torch.device(device) if device is not None else synthetic.features.device
    generator = torch.Generator(device=device).manual_seed(seed)
    features = synthetic.features.detach()
    clips: list[dict] = []
    seen = [0] * len(classes)
    width = len(str(int(counts.max()) - 1))  # zero-padded k: the loader's sorted order is the set's order
    try:
        for name in classes:
            (tmp / name).mkdir()
        for start in range(0, len(synthetic), batch_size):
            raw = synthetic.stats.invert(features[start : start + batch_size].to(device=device, dtype=torch.float32))
            waves = fd_mfcc_to_audio(
                raw, sample_rate, config, n_iter, momentum=MOMENTUM, regularization=REGULARIZATION,
                generator=generator, length=length,
            )
            raw_peaks = waves.abs().amax(dim=-1, keepdim=True)
            bad = (~torch.isfinite(raw_peaks)).flatten().nonzero().flatten().tolist()
            if bad:
                raise ValueError(f"reconstructed clip(s) {[start + i for i in bad]} are not finite (NaN/inf features?)")
            gains = torch.where(raw_peaks > 0, peak / raw_peaks.clamp_min(1e-30), torch.ones_like(raw_peaks))
            waves = (waves * gains).clamp_(-1.0, 1.0).cpu().numpy().astype(np.float32)
            gains, raw_peaks = gains.flatten().tolist(), raw_peaks.flatten().tolist()
            for offset, wave in enumerate(waves):
                index = start + offset
                label = int(labels[index])
                name = classes[label]
                rel = f"{name}/{name}_{seen[label]:0{width}d}.wav"
                seen[label] += 1
                sf.write(str(tmp / rel), wave, sample_rate, subtype="PCM_16")
                clips.append({"class": name, "label": label, "path": rel, "index": index,
                              "gain": gains[offset], "raw_peak": raw_peaks[offset]})
        manifest = {
            "writer": WRITER,
            "classes": classes,
            "sample_rate": int(sample_rate),
            "duration": float(duration),
            "num_clips": len(clips),
            "clips_per_class": {c: int(n) for c, n in zip(classes, counts.tolist())},
            "features": config.as_dict(),
            "lr": synthetic.lr,
            "method": synthetic.method,
            "source_meta": synthetic.meta,
            "reconstruction": {
                "algorithm": "fast Griffin-Lim (Perraudin et al. 2013) from NNLS mel inversion",
                "channel": "static MFCC (channel 0)",
                "n_iter": n_iter, "momentum": MOMENTUM, "regularization": REGULARIZATION, "peak": peak,
                "synthesis_overlap": SYNTHESIS_OVERLAP,
                "seed": seed, "subtype": "PCM_16",
            },
            "clips": clips,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
