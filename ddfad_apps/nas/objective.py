"""One trial: suggest an architecture, train it on the proxy, return its test accuracy.

Every trial records ``arch`` (its key; a queued trial has it from its creation, see
:func:`ddfad_apps.nas.workers.prepare_study`), ``seconds`` (training cost) and ``num_params``; the worker that
runs it records itself with :func:`record_owner`.  An architecture that
cannot be built for the input or whose loss diverges is a FAILED trial with ``fail_reason`` and ``error``
(the objective returns NaN, which Optuna records as a failure without raising), never a crash.

A trial that evaluates nothing is a FAIL trial too, never PRUNED (which in Optuna means "stopped early by a
pruner on its intermediate values"): ``skipped`` says why, and it never counts as a result (:func:`holds`):

* a **duplicate** (a sampler proposed an architecture another trial holds): ``fail_reason="duplicate"`` and
  ``duplicate_of`` = that trial's number.  FAIL rather than COMPLETE with a copied value, because the earlier
  trial may still be running (no value yet) or have failed, and because COMPLETE would count the architecture
  as trained twice; the sampler learns nothing from it (TPE ignores FAIL trials) and it costs no training;
* an **empty queue** (another worker popped the last queued trial between this worker's check and its ask):
  ``fail_reason="queue_empty"``.

Only Optuna's public API is used (``Trial.set_user_attr``/``user_attrs``); the test
``test_nas_code_uses_no_optuna_internals`` keeps it so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from ddfad_apps.distill.evaluate import EvalSettings, evaluate
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.nas.job import NASJob
from ddfad_apps.nas.proxies import ProxySpec
from ddfad_apps.nas.space import build, suggest
from ddfad_apps.nas.study import worker_identity
from ddfad_apps.training.loops import (
    NonFiniteLossError,
    TrainConfig,
    accuracy,
    train_model,
)
from search_spaces import SearchSpace

OWNER_ATTR = "nas:owner"
SKIPPED_ATTR = "skipped"
DUPLICATE_ATTR = "duplicate_of"
FAIL_REASONS = ("input_too_small", "nan_loss")  # the architecture itself failed: a result (ranked last)


def record_owner(trial: optuna.Trial) -> None:
    """Record this process on ``trial``, so that a sweep can tell its trial from a dead worker's."""
    trial.set_user_attr(OWNER_ATTR, {**worker_identity(), "number": trial.number})


def owner_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The live process recorded on ``trial`` (a retried copy inherits a stale owner: ignored).

    Studies written before the owner became a user attr hold it as a system attr: read there too.
    """
    owner = trial.user_attrs.get(OWNER_ATTR) or trial.system_attrs.get(OWNER_ATTR)
    return owner if owner and owner.get("number") == trial.number else None


def holds(trial: optuna.trial.FrozenTrial) -> bool:
    """Does ``trial`` stand for its architecture's result (finished for good, or being evaluated)?"""
    if SKIPPED_ATTR in trial.user_attrs:
        return False  # a duplicate or an empty-queue trial: nothing evaluated
    if trial.state in (TrialState.COMPLETE, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and "fail_reason" in trial.user_attrs


def train_and_score(spec: ProxySpec, space: SearchSpace, config: dict[str, Any], model: torch.nn.Module,
                    train: FeatureSet, test: FeatureSet, *, seed: int = 0, device: str = "cpu",
                    learned_lr: float | None = None,
                    on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> float:
    """Train ``model`` (architecture ``config``) with ``spec``'s recipe on ``train``; its accuracy on ``test``.

    The one training recipe of every trial, ground truth and anytime search, so they cannot drift apart.
    Whole-data recipes train like ``ddfad-apps train`` (cosine schedule); with ``on_epoch`` they also measure
    ``test`` after every epoch and call ``on_epoch(epoch, metrics)`` (``metrics["test_accuracy"]``), which may
    raise to stop early (a pruned trial).  Small sets train like the engine's evaluation.
    Raises :class:`NonFiniteLossError` when the loss diverges.
    """
    lr = spec.lr if spec.lr is not None else (learned_lr or 0.01)
    if spec.whole_data:
        cfg = TrainConfig(epochs=spec.epochs, lr=lr, batch_size=spec.batch_size)
        gen = torch.Generator().manual_seed(seed)
        train_model(model, train, cfg, test=test if on_epoch else None, device=device, generator=gen,
                    progress=False, desc="nas", on_epoch=on_epoch)
        return accuracy(model, test)
    if on_epoch is not None:
        raise ValueError(f"proxy {spec.name!r} trains on a small set: no per-epoch reports")
    settings = EvalSettings(epochs=spec.epochs, lr=lr, batch_size=spec.batch_size, augment=spec.augment,
                            model_kwargs=space.model_kwargs(config))
    result = evaluate(train, test, space.model, seeds=1, settings=settings, device=device, progress=False,
                      first_seed=seed)
    return result.mean


class Objective:
    """Callable for ``study.optimize``; data and the proxy set are loaded once per worker, not per trial."""

    def __init__(self, job: NASJob, train: FeatureSet, test: FeatureSet, learned_lr: float | None = None) -> None:
        self.job, self.train, self.test, self.learned_lr = job, train, test, learned_lr
        self.space = job.search_space()

    def __call__(self, trial: optuna.Trial) -> float:
        if self.job.queued and "arch" not in trial.user_attrs:
            # every queued trial carries its arch from its creation; a trial without one was created by
            # study.optimize because the queue ran dry between this worker's check and its ask
            return self._skip(trial, "queue_empty", "queue empty")
        config = suggest(trial, self.space, self.job.archs)
        key = self.space.key(config)
        trial.set_user_attr("arch", key)
        earlier = [t.number for t in trial.study.get_trials(deepcopy=False)
                   if t.number != trial.number and t.user_attrs.get("arch") == key and holds(t)
                   and (t.state != TrialState.RUNNING or t.number < trial.number)]
        if earlier:
            trial.set_user_attr(DUPLICATE_ATTR, earlier[0])
            return self._skip(trial, "duplicate", f"duplicate of trial {earlier[0]}")
        try:
            torch.manual_seed(self.job.seed)
            model = build(self.space, config, self.train.num_classes, self.train.input_shape)
        except (ValueError, RuntimeError) as exc:
            return self._fail(trial, "input_too_small", exc)
        trial.set_user_attr("num_params", sum(p.numel() for p in model.parameters()))
        started = time.perf_counter()
        try:
            acc = self._train(model, config)
        except NonFiniteLossError as exc:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            return self._fail(trial, "nan_loss", exc)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        return acc

    def _train(self, model: torch.nn.Module, config: dict[str, Any]) -> float:
        return train_and_score(self.job.proxy, self.space, config, model, self.train, self.test, seed=self.job.seed,
                               device=self.job.device, learned_lr=self.learned_lr)

    @staticmethod
    def _fail(trial: optuna.Trial, reason: str, exc: BaseException) -> float:
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("error", str(exc)[:1000])
        return math.nan  # Optuna records a FAIL trial and carries on

    @staticmethod
    def _skip(trial: optuna.Trial, reason: str, why: str) -> float:
        """A trial that evaluates nothing: FAIL (NaN) with ``skipped`` and ``fail_reason`` (see the module doc)."""
        trial.set_user_attr(SKIPPED_ATTR, why)
        trial.set_user_attr("fail_reason", reason)
        return math.nan
