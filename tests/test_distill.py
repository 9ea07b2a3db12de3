"""The distillation engine's MTT path, the one-call API, evaluation and run folders, on real FSDD features.

Networks are narrow (width 8-16) and data small (20 clips per class) so each test takes seconds on 2 cores;
accuracy figures come from ``scripts/bench_distill.py`` and the slow end-to-end test, not from here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ddfad_apps.distill import METHODS, NotEnoughClipsError, SyntheticSet, distill, evaluate, method_settings
from ddfad_apps.distill import api as api_mod
from ddfad_apps.distill import experts as experts_mod
from ddfad_apps.distill.evaluate import EvalSettings
from ddfad_apps.distill.experts import ExpertBank, ExpertSettings, train_experts
from ddfad_apps.distill.mtt import MTTDistiller, MTTSettings, SyntheticRangeError
from ddfad_apps.distill.range_guard import InputRange
from ddfad_apps.distill.presets import MTTPlan
from ddfad_apps.distill.run_folder import ForeignRunError, prepare_run_folder, read_request
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.training.loops import NonFiniteLossError

TINY = {"width": 8}


@pytest.fixture(scope="module")
def fsdd(fsdd_splits):
    torch.set_num_threads(1)
    return fsdd_splits


@pytest.fixture(scope="module")
def small(fsdd) -> FeatureSet:
    """20 real clips per class of FSDD's training split."""
    idx = torch.cat([fsdd.train.class_indices(c)[:20] for c in range(fsdd.train.num_classes)])
    return fsdd.train.subset(idx)


def tiny_experts(num: int = 1, epochs: int = 3) -> ExpertSettings:
    return ExpertSettings(model_kwargs=TINY, num_experts=num, epochs=epochs, batch_size=50)


def tiny_mtt(**kw) -> MTTSettings:
    base = MTTSettings(syn_steps=3, expert_epochs=1, max_start_epoch=1, iterations=4, batch_syn=10,
                       checkpoint_every=2)
    return replace(base, **kw)


def test_experts_are_cached_and_an_interrupted_expert_resumes_exactly(small, tmp_path, monkeypatch):
    clean = train_experts(small, tiny_experts(), root=tmp_path / "a", progress=False)
    assert clean.trajectories[0].shape[0] == 4  # initial + 3 epochs
    assert not torch.equal(clean.trajectories[0][0], clean.trajectories[0][-1])

    real_flatten = experts_mod.flatten_params
    calls = {"n": 0}

    def interrupt_after_first_epoch(model):
        calls["n"] += 1
        if calls["n"] == 3:  # initial params, epoch 1, then epoch 2 -> interrupted
            raise KeyboardInterrupt
        return real_flatten(model)

    monkeypatch.setattr(experts_mod, "flatten_params", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_experts(small, tiny_experts(), root=tmp_path / "b", progress=False)
    folder = next(p for p in (tmp_path / "b").iterdir() if p.is_dir())
    assert list(folder.glob("*.partial.pt")) and not list(folder.glob("*.safetensors"))
    monkeypatch.setattr(experts_mod, "flatten_params", real_flatten)
    resumed = train_experts(small, tiny_experts(), root=tmp_path / "b", progress=False)
    torch.testing.assert_close(resumed.trajectories[0], clean.trajectories[0])

    # A finished bank is loaded, not trained again.
    monkeypatch.setattr(experts_mod, "build_model", lambda *a, **k: pytest.fail("experts were retrained"))
    again = train_experts(small, tiny_experts(), root=tmp_path / "b", progress=False)
    torch.testing.assert_close(again.trajectories[0], clean.trajectories[0])
    # ... and other settings get another folder.
    assert experts_mod.expert_folder(small, replace(tiny_experts(), lr=0.1), tmp_path) != \
        experts_mod.expert_folder(small, tiny_experts(), tmp_path)


def test_mtt_moves_the_clips_and_the_learning_rate_and_resumes_from_a_checkpoint(small, tmp_path):
    bank = train_experts(small, tiny_experts(), root=tmp_path, progress=False)
    full = MTTDistiller(small, 2, bank, tiny_mtt(), "convnet", TINY, seed=3)
    start = full.syn.detach().clone()
    result = full.run(progress=False)
    assert result.features.shape == (20, *small.input_shape)
    assert torch.equal(result.labels, torch.arange(10).repeat_interleave(2))
    assert (result.features - start).abs().max() > 1e-4
    assert result.lr != pytest.approx(0.01, abs=1e-9) and result.lr > 0
    assert len(result.meta["losses"]) == 4 and all(0 < v < 10 for v in result.meta["losses"])

    ckpt = tmp_path / "ckpt.pt"
    half = MTTDistiller(small, 2, bank, tiny_mtt(iterations=2), "convnet", TINY, seed=3)
    half.run(checkpoint=ckpt, progress=False)
    assert ckpt.exists()
    rest = MTTDistiller(small, 2, bank, tiny_mtt(), "convnet", TINY, seed=3)
    resumed = rest.run(checkpoint=ckpt, progress=False)
    assert rest.iteration == 4
    torch.testing.assert_close(resumed.features, result.features)
    assert resumed.lr == pytest.approx(result.lr)


def test_mtt_refuses_a_diverging_loss_with_a_clear_error(small, tmp_path):
    bank = train_experts(small, tiny_experts(), root=tmp_path, progress=False)
    d = MTTDistiller(small, 1, bank, tiny_mtt(), "convnet", TINY)
    with torch.no_grad():
        d.syn[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="MTT loss"):
        d.step()


def test_mtt_checks_expert_length_and_architecture(small, tmp_path):
    bank = train_experts(small, tiny_experts(epochs=2), root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="exceeds"):
        MTTDistiller(small, 1, bank, tiny_mtt(max_start_epoch=2), "convnet", TINY)
    with pytest.raises(ValueError, match="another architecture"):
        MTTDistiller(small, 1, bank, tiny_mtt(), "convnet", {"width": 16})


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_cpc_clips_per_class(small, method, tmp_path):
    settings = method_settings(method, "fast")
    if method == "mtt":
        settings = MTTPlan(tiny_experts(), tiny_mtt(iterations=1))
    elif settings is not None:
        settings = replace(settings, iterations=1, model_kwargs=TINY)
    syn = distill(small, 2, method, settings=settings, expert_root=tmp_path, progress=False, seed=1)
    assert isinstance(syn, SyntheticSet) and syn.method == method
    assert torch.equal(torch.bincount(syn.labels, minlength=10), torch.full((10,), 2))
    assert syn.features.shape[1:] == small.features.shape[1:]
    assert torch.isfinite(syn.features).all()
    if method in ("random", "herding", "kcenter"):  # real clips, each from its own class
        idx = torch.tensor(syn.meta["indices"])
        assert torch.equal(small.labels[idx], syn.labels)


def test_fast_experts_take_more_smaller_steps_on_small_training_sets(small, monkeypatch):
    large_plan = method_settings("mtt", "fast", 10, num_train=2700)
    few_plan = method_settings("mtt", "fast", 10, num_train=1200)
    large, few = large_plan.experts, few_plan.experts
    assert (large.batch_size, large.epochs) == (64, 8) and (few.batch_size, few.epochs) == (32, 25)
    assert few_plan.mtt.max_start_epoch == 10 and large_plan.mtt.max_start_epoch == 5  # later epochs matched
    assert method_settings("mtt", "fast", 10).experts == large  # size unknown: the large-set values
    # distill() sizes the preset's experts to the training set it is given (``small`` has 200 clips)
    seen: list[ExpertSettings] = []

    def capture(train, settings, **kwargs):
        seen.append(settings)
        raise RuntimeError("captured")

    monkeypatch.setattr(api_mod, "train_experts", capture)
    with pytest.raises(RuntimeError, match="captured"):
        distill(small, 1, "mtt", progress=False)
    assert (seen[0].batch_size, seen[0].epochs) == (32, 25)


def test_the_network_travels_in_the_settings_and_labels_say_what_ran(small, monkeypatch):
    from ddfad_apps.distill.dc import DCSettings
    from ddfad_apps.distill.presets import with_network

    plan = method_settings("mtt", "fast", 2, model="resnet18", model_kwargs={"width": 8})
    assert (plan.model, plan.experts.model, plan.model_kwargs["width"]) == ("resnet18", "resnet18", 8)
    assert method_settings("dm", "fast", model="vgg11").model_kwargs == {"width": 32}  # the preset's width kept
    assert with_network(None, "vgg11") is None  # coresets have no network
    seen = {}

    def capture(train, settings, **kwargs):  # MTT's experts are trained with the settings' network
        seen["model"] = (settings.model, settings.model_kwargs)
        raise RuntimeError("captured")

    monkeypatch.setattr(api_mod, "train_experts", capture)
    with pytest.raises(RuntimeError, match="captured"):
        distill(small, 1, "mtt", settings=plan, progress=False)
    assert seen["model"] == ("resnet18", {"width": 8})
    # settings of another method are refused, not silently reinterpreted
    with pytest.raises(TypeError, match="method 'dm' takes DMSettings, got DCSettings"):
        distill(small, 1, "dm", settings=DCSettings(iterations=1))
    with pytest.raises(TypeError, match="takes no settings"):
        distill(small, 1, "random", settings=DCSettings(iterations=1))
    # DC settings with augmentation on are DSA, and are labelled so even when asked for as "dc"
    dsa = replace(method_settings("dc", "fast"), iterations=1, outer_loops=1, inner_loops=1, dsa=True,
                  model_kwargs=TINY)
    assert distill(small, 1, "dc", settings=dsa, progress=False).method == "dsa"
    assert distill(small, 1, "dsa", settings=replace(dsa, dsa=False), progress=False).method == "dsa"


def test_distill_refuses_more_clips_than_a_class_has(small):
    with pytest.raises(NotEnoughClipsError, match="only 20"):
        distill(small, 21, "random")
    with pytest.raises(ValueError, match="unknown method"):
        distill(small, 1, "magic")


def test_evaluate_trains_fresh_networks_and_reports_seeds(fsdd, small):
    syn = distill(small, 5, "random", seed=0)
    settings = EvalSettings(epochs=100, lr=0.05, model_kwargs={"width": 16})
    res = evaluate(syn, fsdd.test, seeds=2, settings=settings, progress=False)
    assert len(res.accuracies) == 2 and res.std >= 0
    assert res.mean > 0.3  # 50 real clips of 10 digits: far above chance (0.1)
    noisy = evaluate(syn, fsdd.test, seeds=1, settings=replace(settings, noise_std=50.0), progress=False)
    assert noisy.mean < res.mean  # the robustness option really perturbs the training set


def test_run_folder_refuses_foreign_runs_and_resumes_its_own(tmp_path):
    out = tmp_path / "run"
    req = {"dataset": "fsdd", "method": "mtt", "cpc": 10}
    assert prepare_run_folder(out, req) == "new"
    assert read_request(out) == req
    assert prepare_run_folder(out, req) == "resume"
    (out / "distilled.json").write_text("{}")
    assert prepare_run_folder(out, req) == "complete"
    with pytest.raises(ForeignRunError, match="differs in: cpc"):
        prepare_run_folder(out, {**req, "cpc": 1})
    assert prepare_run_folder(out, {**req, "cpc": 1}, force=True) == "new"
    assert not (out / "distilled.json").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ForeignRunError, match="not a ddfad-apps"):
        prepare_run_folder(other, req, force=True)
    assert (other / "notes.txt").exists()


# --- MTT settings that follow the data (issue 12) -----------------------------------------------------------------
def test_mtt_raises_when_the_clips_leave_the_data_range_instead_of_returning_them(small, tmp_path):
    bank = train_experts(small, tiny_experts(), root=tmp_path, progress=False)
    d = MTTDistiller(small, 1, bank, tiny_mtt(lr_img=1e4), "convnet", TINY)  # one step moves the clips ~1e4 spreads
    with pytest.raises(SyntheticRangeError, match="left the real inputs' range at iteration 1"):
        d.run(progress=False)


def test_dm_raises_when_the_clips_leave_the_data_range_and_scale_free_steps_follow_the_inputs(small):
    """DM's absolute steps depend on the network's gradients (the fast lr_img 10 threw VGG11's memory clips to 4x
    the data's spread): far outside the range is an error naming the way out; scale-free steps are measured in the
    inputs' spread, so inputs x1000 give the same set x1000 (instance norm makes the network scale-free; DM works in
    the inputs' own units, so an offset would meet the zero padding and is left out)."""
    from ddfad_apps.distill.dm import SCALE_FREE_DM_STEPS, DMSettings

    # the limit leaves room for DM's good far-out sets (Table I's ConvNet CPC 1 sets lie up to 18.4 spreads out;
    # a limit of 10 stopped RAVDESS's set seeds 3 and 4)
    assert DMSettings().max_range == DMSettings.fast().max_range > 18.4
    tiny = DMSettings(iterations=3, batch_real=8, model_kwargs={"width": 8, "depth": 2})
    with pytest.raises(SyntheticRangeError, match="DM synthetic clips left the real inputs' range at iteration 1.*"
                                                  "scale-free step rule"):
        distill(small, 1, "dm", settings=replace(tiny, lr_img=1e7), seed=0, progress=False)
    sf = replace(tiny, **SCALE_FREE_DM_STEPS, iterations=5)
    scaled = FeatureSet(small.features * 1000.0, small.labels, small.classes, dict(small.meta))
    a = distill(small, 1, "dm", settings=sf, seed=1, progress=False)
    b = distill(scaled, 1, "dm", settings=sf, seed=1, progress=False)
    start = distill(small, 1, "dm", settings=replace(sf, iterations=0), seed=1, progress=False)
    assert float((a.features - start.features).abs().max()) > 1e-3  # the clips did move
    off = (b.features - a.features * 1000.0).abs() / 1000.0  # in the inputs' spreads (~1)
    assert float(off.max()) < 5e-3
    absolute = replace(tiny, iterations=5, lr_img=1.0)  # the same rate on raw gradients: not scale-free
    c = distill(small, 1, "dm", settings=absolute, seed=1, progress=False)
    d = distill(scaled, 1, "dm", settings=absolute, seed=1, progress=False)
    assert float(((d.features - c.features * 1000.0).abs() / 1000.0).max()) > 0.1


@pytest.mark.parametrize("lr_init", [None, "experts"])
def test_mtt_is_scale_free_inputs_times_1000_give_the_set_times_1000(small, tmp_path, lr_init):
    scaled = FeatureSet(small.features * 1000.0 + 5.0, small.labels, small.classes, dict(small.meta))
    plan = MTTPlan(tiny_experts(), tiny_mtt(lr_init=lr_init))
    a = distill(small, 1, "mtt", settings=plan, seed=1, expert_root=tmp_path / "a", progress=False)
    b = distill(scaled, 1, "mtt", settings=plan, seed=1, expert_root=tmp_path / "b", progress=False)
    assert b.lr == pytest.approx(a.lr, rel=1e-3)
    if lr_init is None:  # the fitted rate: the same set to float precision
        torch.testing.assert_close(b.features, a.features * 1000.0 + 5.0, rtol=1e-3, atol=0.05)
        return
    # at the experts' larger rate float rounding of the standardised inputs moves a few elements slightly
    off = (b.features - (a.features * 1000.0 + 5.0)).abs() / 1000.0  # in the inputs' spreads (~1)
    assert float(off.quantile(0.99)) < 1e-3 and float(off.max()) < 0.05


def test_mtt_matches_only_start_epochs_where_the_experts_still_move(small, tmp_path):
    bank = train_experts(small, tiny_experts(epochs=3), root=tmp_path, progress=False)
    traj = bank.trajectories[0]
    still = torch.cat([traj, traj[-1:].repeat(3, 1)])  # 3 moving epochs, then 3 epochs without any movement
    stopped = ExpertBank(bank.folder, [still], bank.test_accuracy, bank.lr)
    d = MTTDistiller(small, 1, stopped, tiny_mtt(max_start_epoch=5, iterations=6), "convnet", TINY)
    assert d.starts == [[0, 1, 2]]
    d.run(progress=False)
    assert {h["start_epoch"] for h in d.history} <= {0, 1, 2}
    assert all(0 < h["loss"] < 10 for h in d.history)
    converged = ExpertBank(bank.folder, [traj[-1:].repeat(7, 1)], bank.test_accuracy, bank.lr)
    with pytest.raises(ValueError, match="converged before max_start_epoch"):
        MTTDistiller(small, 1, converged, tiny_mtt(max_start_epoch=5), "convnet", TINY)


def test_mtt_fits_its_starting_lr_to_the_experts_move(small, tmp_path):
    bank = train_experts(small, tiny_experts(), root=tmp_path, progress=False)
    fitted = MTTDistiller(small, 1, bank, tiny_mtt(lr_init=None), "convnet", TINY)
    given = MTTDistiller(small, 1, bank, tiny_mtt(lr_init=0.05), "convnet", TINY)
    assert given.syn_lr.item() == pytest.approx(0.05)
    lr = fitted.syn_lr.item()
    assert lr > 0 and lr != pytest.approx(0.01)
    # the fitted rate's first-order move covers the experts' move better than 10x or 0.1x of it would
    d = fitted
    t = d.starts[0][0]
    start, target = bank.trajectories[0][t], bank.trajectories[0][t + 1]
    g = torch.func.grad(d._loss)(start, d.syn.detach(), d.labels) * d.s.syn_steps
    err = {f: float((start - f * lr * g - target).norm()) for f in (0.1, 1.0, 10.0)}
    assert err[1.0] < err[0.1] and err[1.0] < err[10.0]


def test_mtt_starts_its_student_at_the_experts_rate_by_default(small, tmp_path):
    """lr_init='experts' (the scale-free rule's) is the rate the experts trained at, from the bank; a bank that does
    not know its rate, or an lr_init that is neither a rate, 'experts' nor None, is refused by name."""
    bank = train_experts(small, replace(tiny_experts(), lr=0.07), root=tmp_path, progress=False)
    assert bank.lr == pytest.approx(0.07)
    d = MTTDistiller(small, 1, bank, tiny_mtt(lr_init="experts"), "convnet", TINY)
    assert d.syn_lr.item() == pytest.approx(0.07) and d.meta["lr_init_used"] == pytest.approx(0.07)
    assert MTTSettings().lr_init == "experts"
    unknown = ExpertBank(bank.folder, bank.trajectories, bank.test_accuracy)  # built by hand: no rate recorded
    with pytest.raises(ValueError, match="does not record one"):
        MTTDistiller(small, 1, unknown, tiny_mtt(lr_init="experts"), "convnet", TINY)
    with pytest.raises(ValueError, match="lr_init must be a positive rate"):
        MTTDistiller(small, 1, bank, tiny_mtt(lr_init="expert"), "convnet", TINY)


def test_presets_use_the_absolute_steps_and_memories_the_scale_free_ones() -> None:
    """Whole audio data sets distil with the MTT authors' absolute steps (measured better on FSDD), a
    continual-learning memory with the scale-free rule; an unknown rule is refused by name."""
    from ddfad_apps.distill.mtt import ABSOLUTE_STEPS, SCALE_FREE_STEPS
    from strategies import DistilledMemory

    for preset, cpc in (("fast", 1), ("fast", 10), ("paper", 10)):
        mtt = method_settings("mtt", preset, cpc).mtt
        assert {k: getattr(mtt, k) for k in ABSOLUTE_STEPS} == ABSOLUTE_STEPS
    memory = DistilledMemory(40, mem_per_class=2, method="mtt", overrides={"lr_img": 0.05})
    plan = memory.settings_for(2)
    assert plan.mtt.steps == "scale_free" and plan.mtt.lr_img == 0.05  # the user's override wins
    # a memory's student starts at its experts' own rate, not at the rate fitted to their first-order move
    assert plan.mtt.lr_init == "experts"
    assert DistilledMemory(40, 2, method="mtt", overrides={"lr_init": None}).settings_for(2).mtt.lr_init is None
    assert DistilledMemory(40, 2, method="mtt", overrides={"lr_init": 0.02}).settings_for(2).mtt.lr_init == 0.02
    assert DistilledMemory(40, mem_per_class=2, method="dm").settings_for(2).__class__.__name__ == "DMSettings"


def test_fast_mtt_starts_from_the_dm_set_only_at_the_clips_per_class_it_was_measured_at() -> None:
    """The fast preset starts MTT from the DM set at CPC 10 (measured better there, presets.FAST_DM_START_CPCS) and
    from the herding clips elsewhere (at CPC 1 the DM set lies beyond max_range); the paper preset from random
    clips; the start is part of the preset's digest, so report cells made with the herding start are not reused."""
    from ddfad_apps.distill.presets import FAST_DM_START_CPCS, preset_digest

    assert FAST_DM_START_CPCS == (10,)
    starts = {cpc: method_settings("mtt", "fast", cpc).mtt.init for cpc in (1, 2, 5, 10, 20, 50)}
    assert starts == {1: "herding", 2: "herding", 5: "herding", 10: "dm", 20: "herding", 50: "herding"}
    assert method_settings("mtt", "fast", 10, 300).mtt.init == "dm"  # small training sets alike
    assert method_settings("mtt", "paper", 10).mtt.init == "random"
    assert method_settings("mtt", "fast", 10, init="herding").mtt.init == "herding"  # an override wins
    assert preset_digest("mtt", "fast", 10) != preset_digest("mtt", "fast", 20)


def test_absolute_steps_are_plain_sgd_on_the_meta_gradients(small, tmp_path) -> None:
    """The 'absolute' rule moves clips by -lr_img x their raw gradient (momentum starts at 0) and the lr by
    -lr_lr x its gradient: the MTT authors' update, which the presets' earlier figures were measured with."""
    from ddfad_apps.distill.mtt import ABSOLUTE_STEPS

    bank = train_experts(small, tiny_experts(), root=tmp_path, progress=False)
    d = MTTDistiller(small, 1, bank, tiny_mtt(**{**ABSOLUTE_STEPS, "lr_img": 1.0, "lr_lr": 1e-3}), "convnet", TINY)
    before, lr_before = d.syn.detach().clone(), float(d.syn_lr)
    grads: dict[str, torch.Tensor] = {}
    d.syn.register_hook(lambda g: grads.setdefault("syn", g.detach().clone()))
    d.syn_lr.register_hook(lambda g: grads.setdefault("lr", g.detach().clone()))
    d.step()
    torch.testing.assert_close(d.syn.detach(), before - 1.0 * grads["syn"])
    assert float(d.syn_lr) == pytest.approx(max(lr_before - 1e-3 * float(grads["lr"]), 1e-6), rel=1e-5)
    with pytest.raises(ValueError, match="unknown MTT step rule 'adam'"):
        MTTDistiller(small, 1, bank, tiny_mtt(steps="adam"), "convnet", TINY)


def test_benchmark_variants_parse_to_a_method_and_its_settings_fields() -> None:
    """``--variant NAME=METHOD,FIELD:VALUE`` of the memory benchmarks: values read as JSON (``null`` is None), words
    kept; a missing method or a name the benchmark already uses is refused, naming the text."""
    from ddfad_apps.distill.presets import parse_variants

    got = parse_variants(["fit=mtt,lr_init:null,iterations:2", "full=mtt,unroll:full", "plain=dm"], ("mtt", "dm"))
    assert got == {"fit": ("mtt", {"lr_init": None, "iterations": 2}), "full": ("mtt", {"unroll": "full"}),
                   "plain": ("dm", {})}
    for bad in ("nomethod=", "mtt=mtt,iterations:2", "x=mtt,iterations"):
        with pytest.raises(ValueError, match=bad.split(",")[0]):
            parse_variants([bad], ("mtt", "dm"))
    from ddfad_apps.distill.presets import parse_memories

    assert parse_memories(" dm, fit ,", ["fit=mtt,iterations:2"], ("mtt", "dm")) == (
        ["dm", "fit"], {"fit": ("mtt", {"iterations": 2})})
    with pytest.raises(ValueError, match="unknown memory 'nope'"):
        parse_memories("dm,nope", [], ("mtt", "dm"))
    with pytest.raises(ValueError, match="--variant"):
        parse_memories("dm", ["mtt=mtt"], ("mtt", "dm"))


def test_mtt_can_start_from_the_dm_set_of_the_same_data_and_seed(small, tmp_path, monkeypatch):
    """init='dm': the student's clips start as the fast DM set that the same seed makes from the same data (not real
    clips), in MTT's standardised space; an unknown start, or one beyond max_range, is refused by name."""
    from ddfad_apps.distill.dm import DMSettings, distill_dm

    # a tinier "fast" DM, so that the four starts below take seconds
    monkeypatch.setattr(DMSettings, "fast", classmethod(lambda cls: cls(iterations=40, lr_img=10.0, batch_real=16,
                                                                         model_kwargs={"width": 8})))
    bank = train_experts(small, tiny_experts(), root=tmp_path, progress=False)
    d = MTTDistiller(small, 1, bank, tiny_mtt(init="dm", max_range=1000.0), "convnet", TINY, seed=3)
    dm = distill_dm(small, 1, DMSettings.fast(), generator=torch.Generator().manual_seed(3), progress=False)
    assert torch.allclose(d.scale.from_unit(d.syn.detach()), dm.features, atol=1e-5)
    assert d.labels.tolist() == dm.labels.tolist() == list(range(small.num_classes))
    # DM moved the clips: no real clip is the start
    assert torch.cdist(dm.features.flatten(1), small.features.flatten(1)).min() > 1e-3
    with pytest.raises(ValueError, match="unknown init .dms.; use one of random, herding, dm"):
        MTTDistiller(small, 1, bank, tiny_mtt(init="dms"), "convnet", TINY)
    # a start beyond what max_range allows is refused before the first iteration, naming the start
    beyond = InputRange(*d.range, 1.0).overshoot(d.syn)
    assert beyond > 0.0  # DM at CPC 1 moves its clips out of the real range
    with pytest.raises(SyntheticRangeError, match=rf"MTT's 'dm' start lies {beyond:.1f} spreads beyond"):
        MTTDistiller(small, 1, bank, tiny_mtt(init="dm", max_range=beyond / 2), "convnet", TINY, seed=3)
    MTTDistiller(small, 1, bank, tiny_mtt(init="dm", max_range=beyond * 2), "convnet", TINY, seed=3)  # within: runs
