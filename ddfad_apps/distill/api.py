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

import torch

from ddfad_apps.distill.compat import check_finite
from ddfad_apps.distill.coreset import coreset
from ddfad_apps.distill.dc import DCSettings, distill_dc
from ddfad_apps.distill.dm import DMSettings, distill_dm
from ddfad_apps.distill.experts import train_experts
from ddfad_apps.distill.mtt import distill_mtt
from ddfad_apps.distill.presets import (
    CORESET_METHODS, METHODS, SETTINGS_TYPES, MethodSettings, MTTPlan, method_settings,
)
from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.features.normalize import FeatureStats
from ddfad_apps.models.copies import NetworkFactory

StepCallback = Callable[[dict[str, float]], None]


def distill(
    train: FeatureSet,
    cpc: int,
    method: str = "mtt",
    preset: str = "fast",
    *,
    settings: MethodSettings = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    stats: FeatureStats | None = None,
    test: FeatureSet | None = None,
    expert_root: str | Path | None = None,
    checkpoint: str | Path | None = None,
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
    network: NetworkFactory | None = None,
) -> SyntheticSet:
    """Distil (or select) ``cpc`` clips per class of ``train`` with ``method`` ('mtt', 'dc', 'dsa', 'dm',
    'random', 'herding', 'kcenter').

    ``settings`` replaces the preset's settings object (:func:`method_settings` makes one: an :class:`MTTPlan`
    for MTT, :class:`DCSettings` for DC/DSA, :class:`DMSettings` for DM, ``None`` for coresets); the network a
    method distils with is part of it (``method_settings(..., model="resnet18")``).  ``seed`` is the one source
    of randomness of every method (initial clips, networks, batches).  ``stats`` is stored with the result so
    its audio can be reconstructed; ``test`` only reports MTT's experts' accuracy; ``checkpoint`` makes MTT
    resumable; ``embed`` is herding's/k-center's embedding network (default: raw features), also the space a
    synthetic method's ``herding`` start is chosen in.  ``network`` (DM only) draws DM's fresh networks from a
    factory, e.g. :class:`~ddfad_apps.models.copies.FreshCopies` of a user's own model, instead of the settings'
    registry network, so inputs of any shape that model takes can be distilled.
    Raises :class:`~ddfad_apps.distill.NotEnoughClipsError` when a class has fewer than ``cpc`` clips,
    :class:`~ddfad_apps.distill.compat.NonFiniteInputError` when ``train`` holds NaN/inf features,
    ``TypeError`` for settings of another method and :class:`~ddfad_apps.training.loops.NonFiniteLossError`
    when a loss diverges.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    check_clips_per_class(train, cpc)
    # NaN/inf in the inputs would otherwise surface as a diverging loss blamed on the learning rate.
    check_finite(train.features, "the training features")
    settings = settings if settings is not None else method_settings(method, preset, cpc, len(train))
    expected = SETTINGS_TYPES[method]
    if expected is None and settings is not None or expected is not None and not isinstance(settings, expected):
        want = "no settings (None)" if expected is None else expected.__name__
        raise TypeError(f"method {method!r} takes {want}, got {type(settings).__name__}; "
                        f"make them with method_settings({method!r}, ...)")
    if network is not None and not isinstance(settings, DMSettings):
        raise ValueError(f"network= (a factory of fresh networks) is DM's; {method!r} builds its networks from "
                         "its settings' registry model")
    generator = torch.Generator().manual_seed(seed)
    if method in CORESET_METHODS:
        result = coreset(train, cpc, method, embed=embed, generator=generator)
    elif isinstance(settings, MTTPlan):
        bank = train_experts(train, settings.experts, test=test, device=device,
                             root=Path(expert_root) if expert_root else None, progress=progress)
        result = distill_mtt(train, cpc, bank, settings.mtt, settings.model, settings.model_kwargs, device, seed,
                             Path(checkpoint) if checkpoint else None, progress, on_step, embed)
        result.meta.update({"experts": {"folder": str(bank.folder), "test_accuracy": bank.test_accuracy,
                                        "num_experts": settings.experts.num_experts,
                                        "epochs": settings.experts.epochs}})
    else:
        if method == "dsa" and isinstance(settings, DCSettings) and not settings.dsa:
            settings = replace(settings, dsa=True)  # asking for DSA means augmentation on
        if isinstance(settings, DMSettings):
            result = distill_dm(train, cpc, settings, device, generator, progress, on_step, embed, network)
        else:
            result = distill_dc(train, cpc, settings, device, generator, progress, on_step, embed)
        # the label says what ran: DC settings with augmentation on are DSA, whatever name was asked for
        result.method = ("dsa" if settings.dsa else "dc") if isinstance(settings, DCSettings) else "dm"
    result.stats = stats
    result.meta.setdefault("preset", preset)
    result.meta.setdefault("dataset", train.meta.get("dataset"))
    result.meta.setdefault("features", train.meta.get("features"))
    for key in ("sample_rate", "duration"):  # what the set must match to be evaluated on other data (compat)
        if train.meta.get(key) is not None:
            result.meta.setdefault(key, train.meta[key])
    return result
