"""The audio round trip: does the reconstructed audio of a distilled set still train a network?

The third phase of DDFAD turns a distilled set into WAV clips.  Here features are extracted again from those WAV
files (normalised with the training statistics) and both sets, the distilled features and the round-tripped ones,
go through the same evaluation protocol (:func:`~ddfad_apps.evidence.protocol.evaluate_set`) on the same seeds,
so the loss of the round trip comes with a paired interval.  The round-tripped set keeps the distilled set's
learned learning rate as a candidate, so both are treated as the same kind of set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.evidence.protocol import Carved, EvalProtocol, SetEvaluation, evaluate_set
from ddfad_apps.evidence.stats import Summary, paired_difference, verdict
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.features.normalize import FeatureStats


def audio_set(syn: SyntheticSet, audio_dir: str | Path, stats: FeatureStats | None = None) -> SyntheticSet:
    """``syn`` with its features extracted again from the WAV files of ``audio_dir`` (one sub-folder per class,
    as the export writes them) in the set's own feature settings, normalised with ``stats`` (default: the
    set's).  Clips are labelled by folder and mapped to the set's class order; a class the set does not have is
    an error naming it."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.features.dataset import extract_clip_features

    stats = stats or syn.stats
    if stats is None:
        raise ValueError("the distilled set carries no normalisation statistics and none were given")
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir} does not exist: reconstruct the set as audio first "
                                "(`ddfad-apps reconstruct FOLDER`)")
    clips = list_clips(str(audio_dir), "all", None, syn.meta.get("sample_rate"), syn.meta.get("duration"))
    unknown = [c for c in clips.classes if c not in syn.classes]
    if unknown:
        raise ValueError(f"{audio_dir} holds class folder(s) {unknown} that the set does not have ({syn.classes})")
    raw = extract_clip_features(clips, syn.feature_config, use_cache=False, progress=False)
    index = torch.tensor([syn.classes.index(c) for c in clips.classes], dtype=torch.long)
    meta = {**syn.meta, "round_trip": str(audio_dir)}
    return SyntheticSet(stats.apply(raw.features), index[raw.labels], list(syn.classes), syn.method, syn.lr,
                        syn.stats, meta)


@dataclass
class RoundTrip:
    """The protocol's evaluation of the distilled features and of their round trip through audio, same seeds."""

    features: SetEvaluation
    audio: SetEvaluation

    @property
    def difference(self) -> Summary:
        """Paired (by evaluation seed) difference audio - features."""
        return paired_difference(self.audio.by_seed, self.features.by_seed)

    def as_dict(self) -> dict[str, Any]:
        return {"features": self.features.as_dict(), "audio": self.audio.as_dict(),
                "audio_minus_features": self.difference.as_dict(),
                "verdict": verdict("audio", "features", self.difference)}


def round_trip(
    syn: SyntheticSet, audio: SyntheticSet | str | Path, carved: Carved, test: FeatureSet, protocol: EvalProtocol,
    seeds: int | Sequence[int] = 3, device: torch.device | str = "cpu", features: SetEvaluation | None = None,
    progress: bool = False,
) -> RoundTrip:
    """Accuracy of networks trained on the set's round-tripped audio (``audio``: the set :func:`audio_set` made,
    or the folder of WAV files) beside networks trained on ``syn`` itself, both through ``protocol`` on the same
    ``seeds``.  ``features`` reuses an evaluation of ``syn`` already made with this protocol and these seeds."""
    if not isinstance(audio, SyntheticSet):
        audio = audio_set(syn, audio)
    if features is None:
        features = evaluate_set(syn, carved, test, protocol, seeds, device, name=syn.method, progress=progress)
    elif features.protocol != protocol.as_dict():
        raise ValueError("the given evaluation of the features was made with another protocol")
    rt = evaluate_set(audio, carved, test, protocol, features.seeds, device, name=f"{syn.method} via audio",
                      progress=progress)
    return RoundTrip(features, rt)
