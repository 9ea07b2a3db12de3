"""How good is a distilled set?  Train fresh networks on it alone and test them on the real test split.

As in DC/DSA/MTT: several seeds (mean and std), SGD with momentum, the learning rate stepped down 10x at
half the epochs, the differentiable augmentation on, and the learned learning rate of MTT used
when there is one.  Cross-architecture evaluation is the same call with another ``model``.

That fixed-lr recipe (:data:`FIXED_LR_PROTOCOL`) favours a set with a learned rate; to compare sets, use
``ddfad_apps.evidence`` (the lr chosen for every set alike on a validation split carved from the training data,
intervals and paired differences), which trains its networks with :func:`train_on_set` from here.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ddfad_apps.distill.augment import AudioAugment
from ddfad_apps.distill.compat import check_compatible
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import build_model
from ddfad_apps.training.loops import TrainConfig, accuracy, train_model


@dataclass
class EvalSettings:
    """Training recipe for networks trained on a distilled set (small sets need many epochs, and augmentation).

    ``lr=None`` takes the set's learned learning rate (MTT) and else 0.01.  ``noise_std`` adds Gaussian noise
    of that standard deviation (in normalised feature units) to every clip once, before training: the
    paper's robustness test.
    """

    epochs: int = 300
    lr: float | None = None
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    noise_std: float = 0.0
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def eval_settings_for(preset: str = "fast", width: int | None = None, epochs: int | None = None) -> EvalSettings:
    """The evaluation recipe of a preset: ``fast`` trains a width-64 ConvNet for 300 epochs (~30 s per seed on
    2 cores at 100 clips), ``paper`` the width-128 ConvNet-3 for 1000 epochs as MTT does."""
    base = EvalSettings(epochs=300, model_kwargs={"width": 64}) if preset == "fast" else \
        EvalSettings(epochs=1000, model_kwargs={"width": 128})
    if width is not None:
        base.model_kwargs = {**base.model_kwargs, "width": width}
    if epochs is not None:
        base.epochs = epochs
    return base


@dataclass
class EvalResult:
    model: str
    accuracies: list[float]
    settings: dict[str, Any]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.model}: {100 * self.mean:.2f} +- {100 * self.std:.2f} % over {len(self.accuracies)} seeds"


def evaluate(
    syn: SyntheticSet | FeatureSet, test: FeatureSet, model: str = "convnet", seeds: int = 3,
    settings: EvalSettings | None = None, device: torch.device | str = "cpu", progress: bool = True,
    first_seed: int = 0,
) -> EvalResult:
    """Test accuracy of ``seeds`` fresh ``model`` networks trained on ``syn`` only.

    Raises :class:`~ddfad_apps.distill.compat.IncompatibleSetError` when ``syn`` does not describe ``test``'s data.
    """
    if isinstance(syn, SyntheticSet):
        check_compatible(syn, test)
    settings = settings or EvalSettings()
    data = syn.as_feature_set() if isinstance(syn, SyntheticSet) else syn
    learned = syn.lr if isinstance(syn, SyntheticSet) else None
    lr = settings.lr if settings.lr is not None else (learned if learned else 0.01)
    accs = []
    for s in range(first_seed, first_seed + seeds):
        net = train_on_set(data, test.num_classes, test.input_shape, model, settings, lr, s, device, progress)
        accs.append(accuracy(net, test))
    return EvalResult(model, accs, {**asdict(settings), "lr_used": lr})


def train_on_set(
    data: FeatureSet, num_classes: int, input_shape: tuple[int, int, int], model: str, settings: EvalSettings,
    lr: float, seed: int, device: torch.device | str = "cpu", progress: bool = False,
) -> torch.nn.Module:
    """One fresh ``model`` trained on ``data`` at ``lr`` with ``settings``' recipe; ``seed`` alone decides its
    initial weights, batch order, augmentation and (``noise_std``) noise, so different seeds train different nets.
    """
    gen = torch.Generator().manual_seed(10_000 + seed)
    train = data
    if settings.noise_std > 0:
        noise = torch.randn(data.features.shape, generator=gen) * settings.noise_std
        train = FeatureSet(data.features + noise, data.labels, data.classes, dict(data.meta))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000 + seed)
        net = build_model(model, num_classes, input_shape, **settings.model_kwargs)
    aug = AudioAugment() if settings.augment else None
    augment = (lambda x, a=aug, g=gen: a(x, generator=g)) if aug is not None else None
    cfg = TrainConfig(epochs=settings.epochs, lr=lr, batch_size=settings.batch_size, momentum=settings.momentum,
                      weight_decay=settings.weight_decay, schedule="step")
    train_model(net, train, cfg, test=None, augment=augment, device=device, generator=gen, progress=progress,
                desc=f"eval {model} seed {seed} lr {lr:g}")
    return net


# How :func:`evaluate` picks the learning rate, recorded with its results so that they are never mistaken for
# numbers of ``ddfad_apps.evidence``'s protocol (lr chosen per set on a validation split, same grid for all sets).
FIXED_LR_PROTOCOL: dict[str, Any] = {
    "name": "fixed-lr", "version": 1,
    "lr_rule": "EvalSettings.lr if given, else the set's learned lr, else 0.01; no selection, no validation split",
}

# CPU-sized widths of the cross-architecture networks (as in ``ddfad-apps train``); VGG11 uses batch norm.
CROSS_ARCH_KWARGS: dict[str, dict[str, Any]] = {"resnet18": {"width": 16}, "vgg11": {"width": 32, "norm": "batchnorm"}}


def evaluate_models(
    syn: SyntheticSet | FeatureSet, test: FeatureSet, models: list[str], seeds: int = 3, preset: str = "fast",
    device: torch.device | str = "cpu", progress: bool = True, noise_std: float = 0.0, width: int | None = None,
    epochs: int | None = None, report: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` on each of ``models`` with the preset's recipe; ``{model: {mean, std, accuracies, settings}}``.

    ConvNet takes the preset's width (or ``width``); ResNet18 and VGG11 their :data:`CROSS_ARCH_KWARGS`.
    """
    results = {}
    for name in models:
        settings = eval_settings_for(preset, width, epochs)
        settings.noise_std = noise_std
        if name in CROSS_ARCH_KWARGS:
            settings.model_kwargs = dict(CROSS_ARCH_KWARGS[name])
        res = evaluate(syn, test, name, seeds, settings, device, progress)
        results[name] = {"mean": res.mean, "std": res.std, "accuracies": res.accuracies, "settings": res.settings,
                         "protocol": FIXED_LR_PROTOCOL}
        if report is not None:
            report(f"  {res}")
    return results
