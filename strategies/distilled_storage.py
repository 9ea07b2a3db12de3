"""Distilled replay memory: each new class becomes ``k`` synthetic inputs made by the distillation engine.

After each experience the classes it brought are distilled together (their rows relabelled ``0..n-1``, the
engine's convention) with :func:`ddfad_apps.distill.distill` - DM by default (it measures best as a memory:
scripts/bench_memory.py), any engine method by
``method`` - and the result is stored per class.  Only the stream's inputs are used, so it works on any stream
whose inputs the distillation network accepts.

Which network distils: the toolkit's registry network ``model`` (ConvNet by default, see
:data:`ddfad_apps.models.MODEL_NAMES`), built fresh for the stream's input shape, since MTT's experts and
student and DC's networks are built by registry name.  The registry networks take ``(C, H, W)`` inputs (audio
features, images, random tensors); any other shape (flat vectors for an MLP) is refused by
:meth:`DistilledMemory.check_inputs` before training, naming the shape and the network.  DM only draws fresh
networks and embeds with them, so ``model="strategy"`` (:data:`STRATEGY_MODEL`) distils a DM memory with fresh
copies of the strategy's own model (:class:`~ddfad_apps.models.copies.FreshCopies`: every layer re-initialised,
the embedding is the input of its last ``nn.Linear``), for inputs of any shape that model takes.  A class seen
before is re-distilled from its new rows together with its old synthetic rows (which stand in for the old data
they summarise).  Integer inputs (e.g. ``uint8`` images) are distilled as float32 on the same scale and the
memory stays float32 (rounding would undo the distillation); a warning says
so, and replay batches then reach the model as float32 (``torch.cat`` promotes).  One line in a plain
Avalanche experiment::

    ReplayPlugin(mem_size=200, storage_policy=DistilledMemory(200, mem_per_class=20, method="dm"))
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Any

import torch

from ddfad_apps.distill import distill, method_settings
from ddfad_apps.distill.coreset import CORESET_METHODS, MODEL_HERDING
from ddfad_apps.distill.presets import STEP_RULE_SETTINGS, step_rule_settings, with_network
from ddfad_apps.distill.range_guard import STEP_RULES
from strategies.class_memory import ClassMemoryBuffer, model_embedding
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import MODEL_NAMES
from ddfad_apps.models.copies import FreshCopies
from strategies.exemplar_storage import local_feature_set

# ``DistilledMemory(model=STRATEGY_MODEL)``: DM distils with fresh copies of the strategy's own model.
STRATEGY_MODEL = "strategy"


# MTT as a memory: the scale-free steps (see the class docstring) and a short matching budget.  On the digits
# stream (scripts/bench_memory.py, 3 seeds, cold caches) final accuracy fell with every further iteration: 2
# iterations 84.89 %, 10: 84.37 %, 30: 77.85 %, the preset's 150: 47.11 % (random clips 82.45 %, DM 85.26 %);
# matching a 2-class experience's trajectories sharpens only what tells those two classes apart, which the replay
# of a growing class set does not need.  10 iterations cost 10.2 s an experience there, 1.15x DM's 8.9 s.
# Measured with the fast preset only; the paper preset (GPU) keeps its own iterations.
MEMORY_MTT_ITERATIONS: dict[str, int] = {"fast": 10}
# The start the fast MTT memory was measured with at every memory size (herding in the raw inputs): the whole-data
# preset's DM start at CPC 10 (presets.FAST_DM_START_CPCS) was measured on whole data sets, not as a memory.
MEMORY_MTT_INIT: dict[str, str] = {"fast": "herding"}
# Every method with step rules (DM, MTT) moves a memory's clips by the scale-free rule (steps in the inputs' spread,
# distill/range_guard.py): the absolute steps were set on ConvNet and audio features, and DM's fast lr_img 10 threw
# VGG11's FSDD memory to 4x the data's spread (final accuracy 13.22 % against 85.44 % for herding); with the
# scale-free rule 80.22 %.  On ConvNet, paired by seed, the two rules are level at 1, 2, 5 and 20 per class on FSDD
# (5 seeds; 77.13 against 76.27 % at 1) and RAVDESS (3 seeds; docs/continual.md, "One step rule").
MEMORY_STEP_RULE = "scale_free"
# The scale-free rule starts the student at its experts' own rate (lr_init="experts", the MTT authors' start), not
# at the rate fitted to the experts' first-order move (lr_init=None, MTTDistiller.fit_lr): on a 2-class RAVDESS
# experience that fit gave 0.002-0.004 against the experts' 0.05, and clips made so that 12 steps at such a rate
# cover the experts' move did not carry to new actors: up to 17 points below their herding start on the test
# actors, 3 on the training actors (scripts/bench_memory_experience.py).  In cicl (RAVDESS, 20 per class,
# 3 seeds) the memory went from 39.44 % to 48.19 %, level with herding (49.17 %); FSDD 96.44 -> 96.56 %; the
# digits stream 82.59 -> 84.37 % (docs/continual.md).


class DistilledMemory(ClassMemoryBuffer):
    """Storage policy keeping ``k`` distilled inputs per class (see the module docstring).

    ``method``/``preset``/``settings`` go to :func:`ddfad_apps.distill.distill`, distilling with ``model`` /
    ``model_kwargs`` (put into the settings by :func:`~ddfad_apps.distill.presets.with_network`).
    ``steps`` is the step rule of a method that has them (DM, MTT; ``presets.STEP_RULE_SETTINGS``): scale-free by
    default (``MEMORY_STEP_RULE``), ``"absolute"`` for the paper's steps.
    MTT distils with the scale-free step rule (``SCALE_FREE_STEPS``), its student starting at the experts' lr and,
    on the fast preset, 10 iterations (``MEMORY_MTT_ITERATIONS``), all under the user's ``overrides``: an
    experience's experts barely move, the MTT authors' absolute steps blew its clips up to +-30,000, a student rate
    fitted to the experts' move made clips that did not carry to new speakers, and longer matching replayed worse.
    Without ``settings``, the preset's settings with the fields in ``overrides`` replaced - the standard ones,
    not those the engine picks for small training sets: an experience's few classes are learnt within a few
    epochs, and MTT matched to 25 such epochs collapsed (FSDD: final accuracy 26% against 92% for random
    clips, docs/continual.md).  ``device`` is where distillation runs.
    ``overrides={"init": "model-herding"}`` starts a synthetic method from EEIL's own exemplars (herding in the
    embedding of the strategy's model, :data:`~ddfad_apps.distill.coreset.MODEL_HERDING`) instead of herding in
    the raw inputs.
    ``results`` keeps each distillation's metadata (method, learned lr, seconds) for logging.  Synthetic rows
    of a class are unordered, so a shrinking quota keeps the first.
    """

    kind = "distilled"

    def __init__(self, max_size: int, mem_per_class: int | None = None, method: str = "dm", preset: str = "fast",
                 *, settings: Any = None, overrides: dict[str, Any] | None = None, model: str = "convnet",
                 model_kwargs: dict | None = None, device: torch.device | str = "cpu", seed: int = 0,
                 progress: bool = False, num_classes: int | None = None, context: bool = False,
                 steps: str = MEMORY_STEP_RULE) -> None:
        super().__init__(max_size, mem_per_class, seed, num_classes=num_classes)
        if settings is not None and overrides:
            raise ValueError("pass either settings or overrides, not both")
        if steps not in STEP_RULES:  # here, before any training
            raise ValueError(f"unknown step rule {steps!r}; use one of {', '.join(STEP_RULES)}")
        if model == STRATEGY_MODEL and method not in ("dm", *CORESET_METHODS):
            raise ValueError(f"model={STRATEGY_MODEL!r} distils with fresh copies of your strategy's model, which "
                             f"only DM can use; {method!r} builds its networks by registry name (one of "
                             f"{', '.join(MODEL_NAMES)}): use method='dm' or a registry model")
        self.steps = steps
        self.method, self.preset, self.settings, self.overrides = method, preset, settings, dict(overrides or {})
        self.model, self.model_kwargs, self.device, self.progress = model, model_kwargs, device, progress
        self.context = context
        self.results: list[dict[str, Any]] = []
        self._warned = False
        if settings is None:  # settings the overrides cannot make (an unknown init, field) refused here, not after
            self.settings_for(1)  # an experience has trained

    @property
    def own_network(self) -> bool:
        """Whether DM distils with fresh copies of the strategy's own model (``model="strategy"``)."""
        return self.model == STRATEGY_MODEL

    @property
    def starts_from_model(self) -> bool:
        """Whether a synthetic method starts from EEIL's exemplars (herding in the strategy model's embedding)."""
        return self.overrides.get("init") == MODEL_HERDING

    def settings_for(self, k: int) -> Any:
        """The settings distilling ``k`` inputs per class of an experience (see the class docstring)."""
        model = None if self.own_network else self.model  # the strategy's copies replace the registry network
        if self.settings is not None:
            return with_network(self.settings, model, self.model_kwargs)
        overrides = self.overrides
        if self.starts_from_model:  # the engine's herding start, in the space select() passes
            overrides = {**overrides, "init": "herding"}
        if self.method in STEP_RULE_SETTINGS:  # a "steps" override picks its rule's settings, as ``steps`` does
            overrides = {**step_rule_settings(self.method, overrides.get("steps", self.steps)), **overrides}
        if self.method == "mtt":
            measured = {field: values[self.preset] for field, values in (("iterations", MEMORY_MTT_ITERATIONS),
                                                                         ("init", MEMORY_MTT_INIT))
                        if self.preset in values}
            # exact meta-gradients: the memory's settings were measured with them (docs/continual.md)
            overrides = {"backprop_steps": None, **measured, **overrides}
        return method_settings(self.method, self.preset, k, model=model, model_kwargs=self.model_kwargs,
                               **overrides)

    def check_inputs(self, example: Any, agent: Any = None) -> None:
        """Refuse inputs the distillation network cannot take (module docstring), before anything trains."""
        super().check_inputs(example, agent)
        settings = self.settings_for(1)
        if settings is None:
            return  # coreset "distillation" (random/herding/k-center) takes any shape
        if self.own_network:
            self._check_own_network(example, agent)
            return
        shape = tuple(example.shape)
        own = f" (not your strategy's {type(agent.model).__name__})" if getattr(agent, "model", None) else ""
        problem = f"inputs of shape {shape} are not (C, H, W)" if len(shape) != 3 else None
        if problem is None:
            from ddfad_apps.models import build_model

            try:
                build_model(settings.model, 2, shape, **settings.model_kwargs)
            except (ValueError, RuntimeError) as exc:
                problem = f"it cannot take inputs of shape {shape}: {exc}"
        if problem:
            raise ValueError(
                f"DistilledMemory distils with the toolkit's {settings.model!r} network{own}, and {problem}; "
                "reshape the stream's inputs to (C, H, W), or use HerdingMemory/RandomMemory, which store any shape"
            )
        if not example.is_floating_point() and self.method not in CORESET_METHODS and not self._warned:
            self._warned = True
            warnings.warn(f"DistilledMemory: the stream's inputs are {example.dtype}; the memory is distilled and kept "
                          "as float32 on the same scale (rounding would undo the distillation), so replayed rows "
                          "reach the model as float32", stacklevel=2)

    def _check_own_network(self, example: torch.Tensor, agent: Any) -> None:
        """With ``model="strategy"``: a fresh copy of the strategy's model must embed ``example``, checked before
        training (without a strategy, as in ``check_stream``, there is nothing to check yet)."""
        model = getattr(agent, "model", None)
        if model is None:
            return
        try:
            with torch.no_grad():
                # a generator of its own: the check must not move the global RNG the user's training draws from
                fresh = FreshCopies(model)(torch.Generator().manual_seed(0), torch.device("cpu"))
                fresh.eval().embed(example[None].float().cpu())
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"DistilledMemory(model={STRATEGY_MODEL!r}) embeds with fresh copies of your "
                             f"{type(model).__name__}, and one failed on an input of shape {tuple(example.shape)}: "
                             f"{exc}") from exc

    def select(self, x: torch.Tensor, y: torch.Tensor, new_classes: list[int], k: int,
               agent: Any) -> dict[int, torch.Tensor]:
        data, context = self.distillation_data(x.float(), y, new_classes)
        settings, network = self.settings_for(k), None
        if self.own_network and settings is not None:
            if getattr(agent, "model", None) is None:
                raise ValueError(f"DistilledMemory(model={STRATEGY_MODEL!r}) distils with the strategy's model, "
                                 "and no strategy model was given")
            network = FreshCopies(agent.model)
            if x.dim() != 4:  # DM's augmentation shifts and masks (C, H, W) inputs only
                settings = replace(settings, augment=False)
        embed = None
        if self.starts_from_model:
            model = getattr(agent, "model", None)
            if model is None:
                raise ValueError(f"DistilledMemory(init={MODEL_HERDING!r}) starts from herding in the strategy's "
                                 "model, and no strategy model was given; use init='herding' (raw inputs)")
            embed = model_embedding(model)
        start = time.perf_counter()
        syn = distill(data, k, self.method, self.preset, settings=settings, device=self.device,
                      seed=self.seed * 1000 + self.updates, embed=embed, progress=self.progress, network=network)
        self.results.append({"classes": new_classes, "context_classes": context, "method": syn.method,
                             "lr": syn.lr, "seconds": round(time.perf_counter() - start, 2),
                             "network": f"{STRATEGY_MODEL}: {network.name}" if network else self.model})
        dtype = x.dtype if self.method in CORESET_METHODS else torch.float32  # real rows keep theirs
        return {c: syn.features[syn.labels == i].to(dtype) for i, c in enumerate(new_classes)}

    def distillation_data(self, x: torch.Tensor, y: torch.Tensor,
                          new_classes: list[int]) -> tuple[FeatureSet, list[int]]:
        """The rows distilled for ``new_classes`` (labels ``0..n-1``), plus, with ``context``, every other class
        the memory holds (labels ``n..``; the classes in the returned list), its kept rows repeated to about a
        new class's count, as the replay batches balance them.  Trajectory matching then learns the new classes
        against every class the model must still tell them from, not against each other only; the context
        classes' own synthetic rows are discarded (their memory stays as it was)."""
        context = [c for c in self.classes if c not in new_classes] if self.context else []
        if not context:
            return local_feature_set(x, y, new_classes), []
        per_class = max(1, round(len(y) / len(new_classes)))
        rows = [self.memory[c].float() for c in context]
        reps = [max(1, round(per_class / len(r))) for r in rows]
        xs = torch.cat([x, *(r.repeat(n, *([1] * (r.dim() - 1))) for r, n in zip(rows, reps))])
        ys = torch.cat([y, *(torch.full((len(r) * n,), c, dtype=torch.long) for c, r, n in zip(context, rows, reps))])
        return local_feature_set(xs, ys, new_classes + context), context
