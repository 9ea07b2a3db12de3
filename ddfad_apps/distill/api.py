"""One call for every method: real features in, ``cpc`` clips per class out.

This is the engine's public face, used by the CLI, by continual learning (a distilled replay memory) and by
NAS (a distilled proxy)::

    from ddfad_apps.distill import distill
    syn = distill(splits.train, cpc=10, method="mtt", preset="fast")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ddfad_apps.distill.compat import check_finite
from ddfad_apps.distill.coreset import coreset
from ddfad_apps.distill.dc import distill_dc
from ddfad_apps.distill.dm import distill_dm
from ddfad_apps.distill.experts import ExpertSettings, train_experts
from ddfad_apps.distill.mtt import distill_mtt
from ddfad_apps.distill.presets import CORESET_METHODS, METHODS, MTTPlan, method_settings
from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.features.normalize import FeatureStats

StepCallback = Callable[[dict[str, float]], None]


def distill(
    train: FeatureSet,
    cpc: int,
    method: str = "mtt",
    preset: str = "fast",
    *,
    settings: Any = None,
    model: str = "convnet",
    model_kwargs: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    test: FeatureSet | None = None,
    stats: FeatureStats | None = None,
    expert_root: str | Path | None = None,
    checkpoint: str | Path | None = None,
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> SyntheticSet:
    """Distil (or select) ``cpc`` clips per class of ``train`` with ``method`` ('mtt', 'dc', 'dsa', 'dm',
    'random', 'herding', 'kcenter').

    ``settings`` replaces the preset's settings object (for MTT an :class:`MTTPlan`); ``model``/``model_kwargs``
    override the network the method distils with (MTT's experts and student alike).  ``test`` only reports the
    experts' accuracy; ``stats`` is stored with the result so its audio can be reconstructed; ``checkpoint``
    makes MTT resumable; ``embed`` is herding's/k-center's embedding network (default: raw features).
    Raises :class:`~ddfad_apps.distill.NotEnoughClipsError` when a class has fewer than ``cpc`` clips,
    :class:`~ddfad_apps.distill.compat.NonFiniteInputError` when ``train`` holds NaN/inf features and
    :class:`~ddfad_apps.training.loops.NonFiniteLossError` when a loss diverges.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    check_clips_per_class(train, cpc)
    # NaN/inf in the inputs would otherwise surface as a diverging loss blamed on the learning rate.
    check_finite(train.features, "the training features")
    generator = torch.Generator().manual_seed(seed)
    settings = settings if settings is not None else method_settings(method, preset, cpc, len(train))
    if method in CORESET_METHODS:
        result = coreset(train, cpc, method, embed=embed, generator=generator)
    elif method == "mtt":
        plan: MTTPlan = settings
        experts: ExpertSettings = plan.experts
        kwargs = {**experts.model_kwargs, **(model_kwargs or {})}
        experts = replace(experts, model=model, model_kwargs=kwargs)
        bank = train_experts(train, experts, test=test, device=device,
                             root=Path(expert_root) if expert_root else None, progress=progress)
        result = distill_mtt(train, cpc, bank, plan.mtt, model, kwargs, device, seed,
                             Path(checkpoint) if checkpoint else None, progress, on_step)
        result.meta.update({"experts": {"folder": str(bank.folder), "test_accuracy": bank.test_accuracy,
                                        "num_experts": experts.num_experts, "epochs": experts.epochs}})
    else:
        settings = replace(settings, model=model,
                           model_kwargs={**settings.model_kwargs, **(model_kwargs or {})})
        fn = distill_dm if method == "dm" else distill_dc
        result = fn(train, cpc, settings, device, generator, progress, on_step)
        result.method = method
    result.stats = stats
    result.meta.setdefault("preset", preset)
    result.meta.setdefault("dataset", train.meta.get("dataset"))
    result.meta.setdefault("features", train.meta.get("features"))
    for key in ("sample_rate", "duration"):  # what the set must match to be evaluated on other data (compat)
        if train.meta.get(key) is not None:
            result.meta.setdefault(key, train.meta[key])
    return result
