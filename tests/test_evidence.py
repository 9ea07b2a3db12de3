"""The evaluation protocol and its statistics (issue 11): one lr selection for every set, on a validation split
carved from the training data, never the test split; intervals that are right; seeds that really differ.

Statistics are checked on hand-computed and synthetic numbers; the protocol on real FSDD features (a few clips per
class, tiny ConvNets, a few epochs) from the ``fsdd_splits`` fixture, which fails when the data is missing.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import torch

from ddfad_apps.distill.coreset import coreset
from ddfad_apps.distill.evaluate import EvalSettings, train_on_set
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.evidence import (
    Comparison, EvalProtocol, MethodResult, SetEvaluation, compare, eval_seeds_for, validated_choice,
    validation_score, evaluate_set, paired_difference, summarize, t_interval, verdict,
)
from ddfad_apps.evidence.protocol import check_not_from_validation
from ddfad_apps.features.dataset import FeatureSet

PER_CLASS = 30


pytestmark = pytest.mark.usefixtures("one_thread")


# --- statistics -------------------------------------------------------------------------------------------


def test_t_interval_matches_hand_computation():
    # mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.7764451; half width = 2.7764451 * 1.5811388 / sqrt(5) = 1.9632432
    low, high = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert low == pytest.approx(3 - 1.9632432, abs=1e-6) and high == pytest.approx(3 + 1.9632432, abs=1e-6)
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.std == pytest.approx(math.sqrt(2.5)) and s.n == 5  # sample std (n - 1), not population


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = random.Random(1234)
    hits = 0
    for _ in range(1000):
        low, high = t_interval([rng.gauss(0.7, 0.05) for _ in range(4)])
        hits += low <= 0.7 <= high
    assert 930 <= hits <= 970  # binomial sd ~7 draws around 950


def test_identical_results_give_zero_difference_and_no_claim():
    d = paired_difference([0.9, 0.8, 0.85], [0.9, 0.8, 0.85])
    assert (d.mean, d.std, d.low, d.high) == (0.0, 0.0, 0.0, 0.0)
    assert "indistinguishable at 3 seeds" in verdict("mtt", "herding", d)


def test_verdict_claims_a_win_only_when_the_paired_interval_excludes_zero():
    # the same 3-point gain on every seed: paired, the win is certain even though the seeds vary a lot
    a, b = [0.70, 0.90, 0.80], [0.67, 0.87, 0.77]
    assert verdict("mtt", "herding", paired_difference(a, b)).startswith("mtt beats herding by 3.00 points")
    assert verdict("herding", "mtt", paired_difference(b, a)).startswith("mtt beats herding")
    # noisy gains straddling zero: no claim
    noisy = paired_difference([0.80, 0.70, 0.90], [0.75, 0.74, 0.86])
    assert noisy.low < 0 < noisy.high
    assert "indistinguishable at 3 seeds" in verdict("mtt", "herding", noisy)
    # one seed: no interval, no claim
    one = summarize([0.5])
    assert math.isinf(one.half_width) and not one.excludes_zero() and one.as_dict()["ci_low"] is None


def _evaluation(name: str, acc: float, val: float, lr: float = 0.01) -> SetEvaluation:
    return SetEvaluation(name, "convnet", [0, 1], [acc, acc], lr, "grid", {0.003: 0.0, lr: val}, None, {}, {}, {})


def test_validated_choice_keeps_per_seed_the_set_that_scored_higher_on_validation():
    """Per set seed the start's evaluation replaces the method's only where its validation score at its chosen lr
    is higher (a tie or a missing score keeps the method's); the derived method pairs like any other."""
    mtt = MethodResult("mtt", {0: _evaluation("mtt", 0.80, 0.70), 1: _evaluation("mtt", 0.90, 0.60),
                               2: _evaluation("mtt", 0.85, 0.50), 3: _evaluation("mtt", 0.70, math.nan)})
    dm = MethodResult("dm", {0: _evaluation("dm", 0.60, 0.80, lr=0.03), 1: _evaluation("dm", 0.95, 0.60),
                             2: _evaluation("dm", 0.75, 0.40), 3: _evaluation("dm", 0.75, 0.90)})
    assert validation_score(dm.runs[0]) == 0.80  # at its own chosen lr, not the grid's first
    learned = _evaluation("mtt", 0.9, 0.75, lr=0.039578575640916824)
    assert validation_score(SetEvaluation.from_dict(learned.as_dict())) == 0.75  # read back: key printed as %g
    chosen = validated_choice(mtt, dm)
    assert chosen.name == "mtt|val"
    assert [chosen.runs[s].name for s in range(4)] == ["dm", "mtt", "mtt", "mtt"]
    assert chosen.per_set_seed == {0: 0.60, 1: 0.90, 2: 0.85, 3: 0.70}
    comparison = Comparison({"mtt": mtt, "dm": dm}, {}, {})
    comparison.add(chosen, [("mtt|val", "mtt")])
    assert comparison.differences["mtt|val", "mtt"].mean == pytest.approx((-0.20 + 0 + 0 + 0) / 4)
    with pytest.raises(ValueError, match="already in the comparison"):
        comparison.add(chosen, [])
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['kcenter'\]"):
        comparison.add(MethodResult("other", mtt.runs), [("other", "kcenter")])
    assert "other" not in comparison.methods  # refused before anything was added
    with pytest.raises(ValueError, match="no evaluation at set seed"):
        validated_choice(mtt, MethodResult("dm", {0: dm.runs[0]}))


def test_paired_difference_refuses_unmatched_seeds():
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference({0: 0.1, 1: 0.2}, {0: 0.1, 2: 0.2})
    assert paired_difference({1: 0.5, 0: 0.3}, {0: 0.1, 1: 0.2}).mean == pytest.approx(0.25)


# --- the protocol on real FSDD features -------------------------------------------------------------------


TINY = EvalProtocol(lr_grid=(0.003, 0.01, 0.03), epochs=4, select_epochs=3, model_kwargs={"width": 8, "depth": 2},
                    val_fraction=0.2)


@pytest.fixture(scope="module")
def small(fsdd_splits):
    """30 training clips per class carved into fit/val, and 100 test clips."""
    train = fsdd_splits.train
    idx = torch.cat([train.class_indices(c)[:PER_CLASS] for c in range(train.num_classes)])
    sub = train.subset(idx)
    return sub, TINY.carve(sub), fsdd_splits.test.subset(list(range(0, 300, 3)))


def test_carve_is_stratified_disjoint_and_covers_the_training_split(small):
    sub, carved, _ = small
    assert set(carved.fit_index).isdisjoint(carved.val_index)
    assert sorted(carved.fit_index + carved.val_index) == list(range(len(sub)))
    assert torch.bincount(carved.val.labels).tolist() == [round(PER_CLASS * 0.2)] * 10
    assert torch.bincount(carved.fit.labels).tolist() == [PER_CLASS - round(PER_CLASS * 0.2)] * 10
    again = TINY.carve(sub)
    assert again.val_index == carved.val_index  # seeded: sets made from fit later see the same split
    assert TINY.with_changes(carve_seed=1).carve(sub).val_index != carved.val_index


def test_two_seeds_train_different_networks_and_one_seed_the_same(small):
    """Issue 11 saw equal accuracies on two evaluation seeds: the seed must reach init, batch order, augmentation."""
    _, carved, test = small
    data = coreset(carved.fit, 5, "random", generator=torch.Generator().manual_seed(0)).as_feature_set()
    settings = EvalSettings(epochs=2, batch_size=16, model_kwargs={"width": 8, "depth": 2})

    def weights(seed: int) -> torch.Tensor:
        net = train_on_set(data, test.num_classes, test.input_shape, "convnet", settings, 0.01, seed)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    w0, w0_again, w1 = weights(0), weights(0), weights(1)
    assert torch.equal(w0, w0_again)
    assert not torch.allclose(w0, w1)


def synthetic_copy(real: FeatureSet, lr: float | None) -> SyntheticSet:
    """The same clips as ``real``, as a distilled set with a learned learning rate."""
    return SyntheticSet(real.features.clone(), real.labels.clone(), real.classes, "mtt", lr=lr,
                        meta={"features": real.meta.get("features")})


def test_learned_lr_set_and_real_clip_set_go_through_the_same_selection(small):
    _, carved, test = small
    real = coreset(carved.fit, 2, "random", generator=torch.Generator().manual_seed(0)).as_feature_set()
    r_real = evaluate_set(real, carved, test, TINY, seeds=1)
    r_syn = evaluate_set(synthetic_copy(real, 0.02), carved, test, TINY, seeds=1)
    assert sorted(r_real.val_scores) == [0.003, 0.01, 0.03]
    assert sorted(r_syn.val_scores) == [0.003, 0.01, 0.02, 0.03]  # the learned rate is one extra candidate
    for lr in TINY.lr_grid:  # same clips, same grid, same networks: the same validation scores
        assert r_syn.val_scores[lr] == r_real.val_scores[lr]
    assert r_real.lr_source == "grid" and r_syn.learned_lr == 0.02
    assert r_syn.lr_source == ("learned" if r_syn.lr == 0.02 else "grid")
    assert r_real.lr == max(r_real.val_scores, key=lambda lr: (r_real.val_scores[lr], -lr))
    d = r_syn.as_dict()
    assert d["protocol"]["name"] == "lr-grid-on-carved-validation" and d["protocol"]["lr_grid"] == [0.003, 0.01, 0.03]
    assert d["carve"]["val_clips"] == len(carved.val) and d["set"]["kind"] == "synthetic"


@pytest.mark.parametrize("peak, learned, extend, chosen, source, tried", [
    (0.1, None, 0, 0.03, "grid", 3),          # no extension: the grid's edge wins, nothing else is tried
    (0.1, None, 2, 0.0949, "extended", 5),    # 0.03 wins at the edge -> 0.095 wins -> 0.3 loses: the peak is inside
    (0.0005, None, 2, 0.0003, "extended", 5), # the low side the same way (0.001, then 0.0003)
    (0.01, None, 2, 0.01, "grid", 3),         # an inside winner adds nothing
    (0.1, 0.0315, 1, 0.0949, "extended", 5),  # a learned rate just past the grid does not hide the edge
    (0.04, 0.04, 1, 0.04, "learned", 5),      # a learned winner beyond the grid is an edge winner too
])
def test_a_winner_at_the_grids_edge_extends_the_grid(monkeypatch, peak, learned, extend, chosen, source, tried):
    """Validation accuracy that peaks at ``peak`` (log scale): the search follows it past the grid's edge, one grid
    step at a time, up to ``extend_edges`` steps a side (no network is trained: the curve is given)."""
    import ddfad_apps.evidence.protocol as protocol_module

    monkeypatch.setattr(protocol_module, "train_on_set", lambda data, nc, shape, model, settings, lr, *a: lr)
    monkeypatch.setattr(protocol_module, "accuracy", lambda lr, val: 1.0 - abs(math.log10(lr / peak)))
    data = FeatureSet(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), ["a", "b"], {})
    proto = TINY.with_changes(extend_edges=extend)
    lr, src, scores = protocol_module.select_lr(data, data, proto, learned)
    assert lr == pytest.approx(chosen, rel=2e-3) and src == source and len(scores) == tried
    assert list(scores) == sorted(scores)  # recorded in increasing rate, the extensions included


def test_extend_edges_is_recorded_only_when_used():
    assert "extend_edges" not in TINY.as_dict()  # results recorded before the option keep matching
    assert TINY.with_changes(extend_edges=1).as_dict()["extend_edges"] == 1
    with pytest.raises(ValueError, match="extend_edges"):
        EvalProtocol(lr_grid=(0.01,), extend_edges=1)


def test_test_split_is_not_used_to_choose_the_lr(small):
    _, carved, test = small
    real = coreset(carved.fit, 2, "random", generator=torch.Generator().manual_seed(1)).as_feature_set()
    scrambled = FeatureSet(test.features, test.labels[torch.randperm(len(test), generator=torch.Generator()
                                                                      .manual_seed(0))], test.classes, test.meta)
    honest = evaluate_set(real, carved, test, TINY, seeds=1)
    other = evaluate_set(real, carved, scrambled, TINY, seeds=1)
    assert honest.val_scores == other.val_scores and honest.lr == other.lr
    assert honest.accuracies != other.accuracies  # the test split is used, but only after the choice


def test_a_diverging_learned_lr_cannot_win(small):
    _, carved, test = small
    real = coreset(carved.fit, 2, "random", generator=torch.Generator().manual_seed(0)).as_feature_set()
    res = evaluate_set(synthetic_copy(real, 1e30), carved, test, TINY, seeds=1)  # loss NaN in epoch 2
    assert math.isnan(res.val_scores[1e30]) and res.lr in TINY.lr_grid
    assert res.as_dict()["val_scores"]["1e+30"] is None  # recorded as diverged (valid JSON), not dropped


def test_a_set_made_from_the_whole_training_split_is_refused(small):
    sub, carved, test = small
    leaky = coreset(sub, 3, "herding")  # selected from fit AND val: it has seen validation clips
    with pytest.raises(ValueError, match="validation split"):
        evaluate_set(leaky, carved, test, TINY, seeds=1)


def test_a_clip_with_an_identical_copy_on_both_sides_of_the_carve_is_not_a_leak(small):
    """RAVDESS holds two byte-identical files; the carve put one in fit and one in val, and a random set that drew
    the fit copy was refused.  A clip also in fit may come from fit; a clip only in val may not."""
    _, carved, test = small
    fit_clip, val_clip = carved.fit.features[:1], carved.val.features[:1]
    twin_val = FeatureSet(torch.cat([fit_clip, carved.val.features[1:]]), carved.val.labels.clone(), carved.val.classes)
    twin_val.labels[0] = carved.fit.labels[0]
    twinned = replace(carved, val=twin_val)
    drawn = FeatureSet(fit_clip.clone(), carved.fit.labels[:1].clone(), carved.fit.classes)
    check_not_from_validation(drawn, twinned)  # its copy is in fit: no error
    leaked = FeatureSet(torch.cat([fit_clip, val_clip]), torch.cat([carved.fit.labels[:1], carved.val.labels[:1]]),
                        carved.fit.classes)
    with pytest.raises(ValueError, match="holds 1 clip"):
        check_not_from_validation(leaked, carved)


def test_compare_pairs_methods_by_set_seed_over_disjoint_evaluation_seeds(small):
    _, carved, test = small
    sets = {m: [coreset(carved.fit, 1, m, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
            for m in ("random", "herding")}
    proto = TINY.with_changes(lr_grid=(0.01,), epochs=2, select_epochs=1)
    cmp = compare(sets, carved, test, proto, eval_seeds=2)
    rand = cmp.methods["random"]
    assert rand.runs[0].seeds == eval_seeds_for(0, 2) == [0, 1] and rand.runs[1].seeds == [1000, 1001]
    per_seed = {s: sum(ev.accuracies) / 2 for s, ev in rand.runs.items()}
    assert rand.per_set_seed == pytest.approx(per_seed) and rand.summary.n == 2  # unit: the set seed
    diff = cmp.differences[("random", "herding")]
    herd = cmp.methods["herding"].per_set_seed
    assert diff.mean == pytest.approx(sum(per_seed[s] - herd[s] for s in (0, 1)) / 2)
    assert "random" in cmp.table() and cmp.as_dict()["differences"][0]["verdict"]
    with pytest.raises(ValueError, match="same seeds"):
        compare({"random": sets["random"], "herding": sets["herding"][:1]}, carved, test, proto)


def test_fixed_lr_results_say_which_protocol_made_them(small):
    """The older evaluation (learned lr, else 0.01; used by the distill and evaluate jobs) names its protocol in
    every result, so evaluation.json and MLflow never pass it off as the lr-grid protocol."""
    from ddfad_apps.distill.evaluate import evaluate_models

    _, carved, test = small
    syn = synthetic_copy(coreset(carved.fit, 1, "herding").as_feature_set(), 0.02)
    res = evaluate_models(syn, test, ["convnet"], seeds=1, epochs=1, width=8, progress=False)
    assert res["convnet"]["protocol"]["name"] == "fixed-lr" and res["convnet"]["settings"]["lr_used"] == 0.02


# --- waveform noise (the paper's Fig. 7) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def herding_set(small, fsdd_splits) -> SyntheticSet:
    """A 1-clip-per-class set with what a distilled set records (stats, feature settings, rate, length)."""
    _, carved, _ = small
    syn = coreset(carved.fit, 1, "herding")
    syn.stats = fsdd_splits.stats
    syn.meta.update({k: carved.fit.meta[k] for k in ("features", "sample_rate", "duration")})
    return syn


def test_waveform_noise_is_added_to_the_audio_at_the_stated_level(herding_set):
    from ddfad_apps.evidence.noise import WAV_PEAK, noisy_set, reconstruct_waves, snr_db

    clean = reconstruct_waves(herding_set)
    assert clean.shape == (10, 8000) and clean.abs().amax(dim=-1).allclose(torch.full((10,), WAV_PEAK))
    # std 0 is the clean round trip: features re-extracted from the reconstruction, not the set's own features
    zero = noisy_set(herding_set, clean, 0.0)
    assert not torch.allclose(zero.features, herding_set.features, atol=1e-2)
    assert zero.lr == herding_set.lr and torch.equal(zero.labels, herding_set.labels)
    power = clean.pow(2).mean(dim=-1)
    assert snr_db(clean, 0.1) == pytest.approx(float((10 * torch.log10(power / 0.01)).mean()))
    assert snr_db(clean, 0.01) == pytest.approx(snr_db(clean, 0.1) + 20.0)  # 10x the std: 20 dB less
    drift = [float((noisy_set(herding_set, clean, s).features - zero.features).pow(2).mean()) for s in (0.003, 0.03, 0.3)]
    assert drift[0] < drift[1] < drift[2]  # louder noise moves the features further from the clean ones


def test_waveform_noise_curve_evaluates_every_level_with_the_protocol(small, herding_set):
    from ddfad_apps.evidence.noise import waveform_noise_curve

    _, carved, test = small
    proto = TINY.with_changes(lr_grid=(0.01, 0.03), epochs=2, select_epochs=1)
    levels = waveform_noise_curve(herding_set, carved, test, proto, [0.0, 0.05], seeds=1)
    assert [lv.std for lv in levels] == [0.0, 0.05] and math.isinf(levels[0].snr_db) and levels[1].snr_db < 30
    d = levels[1].as_dict()
    assert d["variance"] == pytest.approx(0.0025) and sorted(d["evaluation"]["val_scores"]) == ["0.01", "0.03"]
    assert levels[0].as_dict()["snr_db"] is None and d["evaluation"]["protocol"]["name"] == "lr-grid-on-carved-validation"


# --- the audio round trip ---------------------------------------------------------------------------------


def test_round_trip_trains_on_the_reconstructed_wavs_beside_the_features_through_one_protocol(small, herding_set,
                                                                                             tmp_path):
    from ddfad_apps.evidence.roundtrip import audio_set, round_trip
    from ddfad_apps.reconstruct.writer import write_audio_dataset

    _, carved, test = small
    folder = write_audio_dataset(herding_set, tmp_path / "audio", 8000, herding_set.feature_config, 1.0, n_iter=4)
    audio = audio_set(herding_set, folder)
    assert sorted(audio.labels.tolist()) == sorted(herding_set.labels.tolist()) and audio.classes == herding_set.classes
    assert audio.features.shape == herding_set.features.shape
    assert not torch.allclose(audio.features, herding_set.features, atol=1e-2)  # extracted again from the WAVs
    proto = TINY.with_changes(lr_grid=(0.01, 0.03), epochs=2, select_epochs=1)
    rt = round_trip(herding_set, folder, carved, test, proto, seeds=2)
    assert rt.features.seeds == rt.audio.seeds == [0, 1]
    assert rt.features.protocol == rt.audio.protocol == proto.as_dict()
    assert sorted(rt.audio.val_scores) == sorted(rt.features.val_scores) == [0.01, 0.03]
    d = rt.as_dict()
    diffs = [a - f for a, f in zip(rt.audio.accuracies, rt.features.accuracies)]
    assert d["audio_minus_features"]["mean"] == pytest.approx(sum(diffs) / 2) and d["audio"]["n"] == 2
    with pytest.raises(FileNotFoundError, match="reconstruct the set as audio first"):
        audio_set(herding_set, tmp_path / "nothing")


# --- scripts/bench_distill.py -----------------------------------------------------------------------------


def test_bench_distill_puts_every_set_through_the_protocol(data_root, tmp_path):
    """The benchmark's sets (method and baselines, two set seeds each) are made from the carved fit part, every
    one gets the lr selection, and the total time includes the baselines."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_distill.py"
    cmd = [sys.executable, str(script), "--data-root", str(data_root), "--method", "random", "--baseline", "herding",
           "--cpc", "1", "--set-seeds", "2", "--eval-seeds", "2", "--eval-epochs", "2", "--eval-width", "8",
           "--lr-grid", "0.01,0.03", "--threads", "1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["protocol"]["name"] == "lr-grid-on-carved-validation" and res["unit"] == "set seed"
    for name in ("random", "herding"):
        runs = res["methods"][name]["runs"]
        assert sorted(runs) == ["0", "1"]
        assert all(sorted(r["val_scores"]) == ["0.01", "0.03"] and r["carve"]["val_clips"] == 270 for r in runs.values())
    assert [(d["a"], d["b"]) for d in res["differences"]] == [("random", "herding")]
    secs = res["seconds"]
    assert secs["total"] >= secs["make herding x2"] + secs["evaluation (all)"]
    assert "random - herding" in done.stdout
    assert "indistinguishable at 2 seeds" in done.stdout or "beats" in done.stdout


def test_bench_distill_refuses_validated_start_for_a_method_without_a_start(tmp_path):
    """``--validated-start`` needs a set the method starts from (MTT's); asked of a coreset it stops at once, with
    the reason, before any feature is read."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_distill.py"
    done = subprocess.run([sys.executable, str(script), "--dataset", str(tmp_path / "missing"), "--method", "herding",
                           "--validated-start"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--method herding starts from none" in done.stderr and "Traceback" not in done.stderr


def test_bench_distill_with_a_sets_dir_shares_work_between_two_runs_and_resumes(data_root, tmp_path):
    """Two runs of the same command on one ``--sets-dir`` make and evaluate each set once between them and report
    the same numbers; a third run only reads what they kept."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_distill.py"
    sets_dir = tmp_path / "sets"

    def cmd(name: str) -> list[str]:
        return [sys.executable, str(script), "--data-root", str(data_root), "--method", "random", "--baseline",
                "herding", "--cpc", "1", "--set-seeds", "2", "--eval-seeds", "1", "--eval-epochs", "1",
                "--eval-width", "8", "--lr-grid", "0.01", "--threads", "1", "--sets-dir", str(sets_dir),
                "--json", str(tmp_path / f"{name}.json")]

    runs = [subprocess.Popen(cmd(n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in "ab"]
    for r in runs:
        _, err = r.communicate(timeout=300)
        assert r.returncode == 0, err[-2000:]
    kept = sorted(p.parent.name for p in sets_dir.glob("*/set/DONE"))
    assert len(kept) == 4 and len(list(sets_dir.glob("*/eval-*/DONE"))) == 4  # 2 methods x 2 seeds, once each
    done = subprocess.run(cmd("c"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads((tmp_path / f"{n}.json").read_text()) for n in "abc"]
    accs = [{m: {s: r["accuracies"] for s, r in res["methods"][m]["runs"].items()} for m in ("random", "herding")}
            for res in results]
    assert accs[0] == accs[1] == accs[2]
    assert sorted(p.parent.name for p in sets_dir.glob("*/set/DONE")) == kept  # nothing made again


def test_compare_refuses_a_kept_evaluation_made_under_another_protocol(small):
    _, carved, test = small
    sets = {"random": [coreset(carved.fit, 1, "random", generator=torch.Generator().manual_seed(0))]}
    proto = TINY.with_changes(lr_grid=(0.01,), epochs=1, select_epochs=1)
    kept = compare(sets, carved, test, proto, eval_seeds=1).methods["random"].runs[0]
    again = compare(sets, carved, test, proto, eval_seeds=1, evaluations={("random", 0): kept})
    assert again.methods["random"].runs[0] is kept  # used as given, not trained again
    with pytest.raises(ValueError, match="another protocol"):
        compare(sets, carved, test, proto.with_changes(epochs=2), eval_seeds=1, evaluations={("random", 0): kept})


# --- grouped carve ----------------------------------------------------------------------------------------


SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


@pytest.fixture
def speakers_folder(fsdd_root, tmp_path):
    """A folder set of real FSDD clips: digits 0-2, six speakers, two takes each (``<digit>_<speaker>_<take>``)."""
    import json
    import shutil

    root = tmp_path / "speakers"
    for digit in ("0", "1", "2"):
        (root / digit).mkdir(parents=True)
        for speaker in SPEAKERS:
            for take in range(2):
                shutil.copy(fsdd_root / "recordings" / f"{digit}_{speaker}_{take}.wav", root / digit)
    (root / "manifest.json").write_text(json.dumps({"sample_rate": 8000, "duration": 0.8}))
    return root


def test_carve_keeps_groups_whole_when_the_set_knows_them(speakers_folder):
    from ddfad_apps.data.splits import stratified_split
    from ddfad_apps.features.dataset import load_features

    protocol = EvalProtocol(val_fraction=0.25, carve_seed=1)
    splits = load_features(str(speakers_folder), group_pattern=r"_(?P<group>[a-z]+)_", progress=False)
    train = splits.train
    groups = train.meta["groups"]
    assert len(groups) == len(train) and len(set(groups)) == 4  # the folder's own split kept 2 speakers for test
    assert set(groups).isdisjoint(splits.test.meta["groups"])
    carved = protocol.carve(train)
    fit, val = set(carved.fit.meta["groups"]), set(carved.val.meta["groups"])
    assert fit.isdisjoint(val) and fit | val == set(groups)  # whole speakers on each side
    assert carved.val.meta["groups"] == [groups[i] for i in carved.val_index]  # subset() slices the groups
    assert torch.bincount(carved.val.labels, minlength=3).tolist() == [2, 2, 2]  # one speaker: 25% of each class
    assert {k: carved.as_dict()[k] for k in ("grouped", "fit_groups", "val_groups")} == {
        "grouped": True, "fit_groups": 3, "val_groups": 1}
    # without groups the carve is the stratified one it always was (same indices for the same seed)
    plain = load_features(str(speakers_folder), progress=False).train
    assert "groups" not in plain.meta
    before = stratified_split(plain.labels.tolist(), 0.25, 1)
    again = protocol.carve(plain)
    assert (again.fit_index, again.val_index) == before and "grouped" not in again.as_dict()
    fit_idx, val_idx = stratified_split(train.labels.tolist(), 0.25, 1)  # what ignoring the groups would do:
    assert {groups[i] for i in fit_idx} & {groups[i] for i in val_idx}  # speakers on both sides
