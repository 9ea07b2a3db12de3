"""Coreset baselines: pick ``cpc`` real clips per class (random, herding, k-center).

They answer "how good is a small *real* subset?", the bar every distillation method has to clear, and random
selection is also how synthetic sets are initialised.  Herding is also the exemplar selection of iCaRL/EEIL in
continual learning, where the caller passes the current network's ``embed``.  Without one, herding and k-center
work on the raw (normalised, flattened) features: no network to train, but also no notion of what the classifier
finds similar, so pass a trained network's ``embed`` where one exists.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.features.dataset import FeatureSet

Embed = Callable[[torch.Tensor], torch.Tensor]
CORESET_METHODS: tuple[str, ...] = ("random", "herding", "kcenter")


def select_random(data: FeatureSet, cpc: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``cpc`` clips per class drawn uniformly without replacement, grouped by class."""
    picks = []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:cpc]])
    return torch.cat(picks)


@torch.no_grad()
def embed_features(data: FeatureSet, embed: Embed | None = None, batch_size: int = 512) -> torch.Tensor:
    """``(N, D)`` float CPU embeddings of every row: ``embed`` applied in batches, or the flattened features.

    ``embed`` receives CPU batches (wrap it to move them to the network's device) and should be in the mode
    the caller wants (usually ``eval()``); its output is flattened and brought back to the CPU.
    """
    if embed is None:
        return data.features.reshape(len(data), -1).float()
    parts = [embed(data.features[i : i + batch_size]).flatten(1).float().cpu()
             for i in range(0, len(data), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, 0)


def herding_order(emb: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of ``k`` rows of ``emb`` picked greedily so the running mean stays closest to the mean of all.

    Step ``t`` picks ``argmin_i ||mu - (sum_selected + e_i) / t||`` over rows not yet picked (iCaRL, Alg. 4);
    the order is meaningful: its first ``j`` entries are the herding choice for ``j`` exemplars.
    """
    mu = emb.mean(0)
    total = torch.zeros_like(mu)
    free = torch.ones(len(emb), dtype=torch.bool)
    order = []
    for t in range(1, k + 1):
        dist = ((mu - (total + emb) / t) ** 2).sum(1)
        dist[~free] = float("inf")
        i = int(dist.argmin())
        order.append(i)
        free[i] = False
        total += emb[i]
    return torch.tensor(order, dtype=torch.long)


def select_herding(data: FeatureSet, cpc: int, embed: Embed | None = None, batch_size: int = 512,
                   normalize: bool = True) -> torch.Tensor:
    """Indices of ``cpc`` clips per class by Welling's herding (iCaRL/EEIL exemplars), grouped by class.

    Embeddings are raw flattened features unless ``embed`` is given (continual learning passes the trained
    network's ``embed``); like iCaRL they are L2-normalised first (``normalize=False`` to skip).  Within a class
    the indices are in selection order, so truncating a class's list keeps a valid herding set.
    """
    check_clips_per_class(data, cpc)
    emb = embed_features(data, embed, batch_size)
    if normalize:
        emb = F.normalize(emb, dim=1)
    picks = []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        picks.append(idx[herding_order(emb[idx], cpc)])
    return torch.cat(picks)


def kcenter_order(emb: torch.Tensor, k: int, first: int) -> torch.Tensor:
    """Greedy k-center (farthest-point) positions: start at ``first``, then the row farthest from all chosen."""
    order = [first]
    dist = torch.cdist(emb, emb[first : first + 1]).squeeze(1)
    for _ in range(k - 1):
        i = int(dist.argmax())
        order.append(i)
        dist = torch.minimum(dist, torch.cdist(emb, emb[i : i + 1]).squeeze(1))
    return torch.tensor(order, dtype=torch.long)


def select_kcenter(data: FeatureSet, cpc: int, embed: Embed | None = None,
                   generator: torch.Generator | None = None, start: str = "mean",
                   batch_size: int = 512) -> torch.Tensor:
    """Indices of ``cpc`` clips per class by greedy k-center (Sener & Savarese), grouped by class.

    Each class starts from the clip nearest its mean (``start='mean'``, deterministic) or a random one
    (``start='random'``, drawn with ``generator``) and adds the clip farthest from those already chosen, so
    the picks cover the class's spread, outliers included.  Embeddings as in :func:`select_herding` but not
    normalised (distances in feature units).
    """
    if start not in ("mean", "random"):
        raise ValueError(f"unknown k-center start {start!r}; use 'mean' or 'random'")
    check_clips_per_class(data, cpc)
    emb = embed_features(data, embed, batch_size)
    picks = []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        e = emb[idx]
        if start == "mean":
            first = int(((e - e.mean(0)) ** 2).sum(1).argmin())
        else:
            first = int(torch.randint(len(idx), (1,), generator=generator))
        picks.append(idx[kcenter_order(e, cpc, first)])
    return torch.cat(picks)


INITS: tuple[str, ...] = ("random", "herding")
# A continual-learning memory's further start (strategies.DistilledMemory): EEIL's own exemplars, herding in the
# embedding of the network just trained (as HerdingMemory keeps them), not in the raw inputs.  An option, not the
# default: on FSDD at 1 per class the DM memory scored lower from it on each of 3 seeds (docs/continual.md).
MODEL_HERDING = "model-herding"
MEMORY_INITS: tuple[str, ...] = (*INITS, MODEL_HERDING)


def check_init(init: str, allowed: tuple[str, ...]) -> None:
    """Refuse a start a method cannot make, naming the ones it can (settings check theirs when made)."""
    if init not in allowed:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(allowed)}")


def initial_clips(data: FeatureSet, cpc: int, init: str, generator: torch.Generator | None = None,
                  embed: Embed | None = None) -> torch.Tensor:
    """Indices of the real clips a synthetic set starts from: ``random`` (MTT, DM, DC) or ``herding``.

    Starting from the herding clips (closest to the class mean) gives the optimiser a better set to refine,
    which matters most when few iterations are affordable (MTT at 1 clip per class, continual-learning memories).
    ``embed`` is the space herding runs in (default: the raw features); a continual-learning memory passes the
    network just trained, so its start is EEIL's own exemplars.
    """
    if init in ("random", "real"):
        return select_random(data, cpc, generator)
    if init == "herding":
        return select_herding(data, cpc, embed)
    raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}")


def coreset(data: FeatureSet, cpc: int, method: str = "random", embed: Embed | None = None,
            generator: torch.Generator | None = None) -> SyntheticSet:
    """``cpc`` real clips per class chosen by ``method`` ('random' | 'herding' | 'kcenter'), as a SyntheticSet.

    Rows are copies of ``data.features`` (so normalised like it), grouped by class; ``meta['indices']`` holds
    their row numbers in ``data``.  ``embed`` is used by herding/k-center only, ``generator`` by random only.
    """
    check_clips_per_class(data, cpc)
    if method == "random":
        idx = select_random(data, cpc, generator)
    elif method == "herding":
        idx = select_herding(data, cpc, embed)
    elif method == "kcenter":
        idx = select_kcenter(data, cpc, embed)
    else:
        raise ValueError(f"unknown coreset method {method!r}; use one of {', '.join(CORESET_METHODS)}")
    meta = {"clips_per_class": cpc, "indices": idx.tolist(),
            "embedding": "features" if embed is None or method == "random" else "custom",
            "dataset": data.meta.get("dataset")}
    return SyntheticSet(data.features[idx].clone(), data.labels[idx].clone(), list(data.classes), method, None,
                        None, meta)
