"""Features: parity with librosa on real FSDD clips, FD-MFCC layout, LPCC, modules, cache and normalisation.

Tolerances asserted (20 real FSDD test clips, 8 kHz, 1 s, default FeatureConfig: 20 ms Hann frames, 20 ms hop,
n_fft 256, 40 Slaney mel bands, top_db 80, orthonormal DCT-II, 20 coefficients; MFCC values reach ~620):

* MFCC, float64 input, vs ``librosa.feature.mfcc``: max abs diff <= 2e-5 (measured ~1.5e-6);
* MFCC, float32 input, vs the same float64 librosa reference: max abs diff <= 2e-3 (float32 rounding, ~3e-4);
* deltas (order 1 and 2) vs ``librosa.feature.delta(width=9, mode='interp')`` on the same MFCC: <= 1e-9 (float64);
* LPCC of a synthetic AR(2) process vs the analytic cepstrum of its all-pole model: <= 0.02 (measured ~0.006).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch

from ddfad_apps.data import list_clips
from ddfad_apps.data.audio_io import read_many
from ddfad_apps.data.clips import ClipList
from ddfad_apps.features import FDMFCC, LPCC, MFCC, Delta, FeatureConfig, FeatureExtractor, FeatureStats
from ddfad_apps.features import functional as AF
from ddfad_apps.features.cache import cache_key
from ddfad_apps.features.dataset import extract_clip_features, load_features

librosa = pytest.importorskip("librosa")

SR = 8000
WIN, HOP, N_FFT = AF.frame_params(SR, 20.0, 20.0)


@pytest.fixture(scope="module")
def fsdd_waves(data_root) -> torch.Tensor:
    """20 real FSDD test clips (two per digit), float64, 1 s at 8 kHz."""
    clips = list_clips("fsdd", "test", data_root=data_root)
    idx = [i for c in range(10) for i in [j for j, y in enumerate(clips.labels) if y == c][:2]]
    waves, kept = read_many([clips.paths[i] for i in idx], SR, SR, progress=False)
    assert len(kept) == 20
    return waves.double()


def librosa_mfcc(y: np.ndarray, top_db: float | None = 80.0) -> np.ndarray:
    """The reference: librosa's MFCC with the parameters our defaults map to (pre-emphasis applied by the caller)."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann", center=True, pad_mode="constant",
        power=2.0, n_mels=40, fmin=0.0, fmax=SR / 2, htk=False, norm="slaney",
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)
    return librosa.feature.mfcc(S=db, n_mfcc=20, dct_type=2, norm="ortho", lifter=0)


def test_frame_params():
    assert (WIN, HOP, N_FFT) == (160, 160, 256)
    assert AF.frame_params(16000, 25.0, 10.0) == (400, 160, 512)
    assert FeatureConfig().num_frames(SR, SR) == 51


def test_pre_emphasis_is_first_order_fir(fsdd_waves):
    x = fsdd_waves[0].numpy()
    ref = scipy.signal.lfilter([1.0, -0.97], [1.0], x)
    np.testing.assert_allclose(AF.pre_emphasis(fsdd_waves[0], 0.97).numpy(), ref, rtol=0, atol=1e-12)
    assert AF.pre_emphasis(fsdd_waves, 0.0) is fsdd_waves


@pytest.mark.parametrize("top_db", [80.0, None])
def test_mfcc_matches_librosa_float64(fsdd_waves, top_db):
    emph = AF.pre_emphasis(fsdd_waves, 0.97)
    ours = AF.mfcc(emph, SR, n_mfcc=20, n_fft=N_FFT, hop_length=HOP, win_length=WIN, n_mels=40, top_db=top_db)
    assert ours.shape == (20, 20, 51) and ours.dtype == torch.float64
    ref = np.stack([librosa_mfcc(y, top_db) for y in emph.numpy()])
    assert np.abs(ref).max() > 100  # real speech, not silence
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=2e-5)


def test_mfcc_float32_close_to_librosa(fsdd_waves):
    ours = AF.fd_mfcc(fsdd_waves.float(), SR)
    assert ours.dtype == torch.float32 and torch.isfinite(ours).all()
    ref = np.stack([librosa_mfcc(y) for y in AF.pre_emphasis(fsdd_waves, 0.97).numpy()])
    np.testing.assert_allclose(ours[:, 0].double().numpy(), ref, rtol=0, atol=2e-3)
    torch.testing.assert_close(ours.double(), AF.fd_mfcc(fsdd_waves, SR), rtol=0, atol=2e-3)


def test_delta_matches_librosa(fsdd_waves):
    coeffs = AF.fd_mfcc(fsdd_waves, SR)[:, 0]
    for order in (1, 2):
        ours = AF.delta(coeffs, order=order, width=9)
        ref = librosa.feature.delta(coeffs.numpy(), width=9, order=order, mode="interp", axis=-1)
        np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="width"):
        AF.delta(coeffs, width=4)
    with pytest.raises(ValueError, match="frames"):
        AF.delta(coeffs[..., :5], width=9)


def test_fd_mfcc_layout(fsdd_waves):
    fd = AF.fd_mfcc(fsdd_waves, SR)
    assert fd.shape == (20, 3, 20, 51)
    torch.testing.assert_close(fd[:, 1], AF.delta(fd[:, 0], 1, 9), rtol=0, atol=0)
    torch.testing.assert_close(fd[:, 2], AF.delta(fd[:, 0], 2, 9), rtol=0, atol=0)
    assert fd[:, 1].abs().mean() < fd[:, 0].abs().mean() / 10  # deltas are small against the static MFCC
    # the config and frame count agree with the function
    assert torch.equal(FeatureConfig().extract(fsdd_waves, SR), fd)
    assert FeatureConfig(hop_ms=10.0).extract(fsdd_waves[:2], SR).shape == (2, 3, 20, 101)


def test_batched_equals_per_clip(fsdd_waves):
    batch = AF.fd_mfcc(fsdd_waves, SR)
    single = torch.stack([AF.fd_mfcc(w, SR) for w in fsdd_waves])
    assert single.shape == batch.shape
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-9)
    nested = AF.fd_mfcc(fsdd_waves.reshape(4, 5, -1), SR)  # any leading batch shape
    torch.testing.assert_close(nested.reshape(batch.shape), batch, rtol=0, atol=1e-9)
    # the top_db floor is per clip: a loud clip next to a quiet one does not change the quiet one's features
    loud = torch.stack([fsdd_waves[0] * 100, fsdd_waves[1]])
    torch.testing.assert_close(AF.fd_mfcc(loud, SR)[1], batch[1], rtol=0, atol=1e-9)
    lp = AF.lpcc(fsdd_waves[:4], SR)
    torch.testing.assert_close(lp, torch.stack([AF.lpcc(w, SR) for w in fsdd_waves[:4]]), rtol=0, atol=1e-9)


def test_lpcc_recovers_ar_cepstrum():
    a = np.array([-1.3, 0.6])  # x[t] = 1.3 x[t-1] - 0.6 x[t-2] + e[t]; LPC convention x[t] ~ -sum a_k x[t-k]
    x = scipy.signal.lfilter([1.0], [1.0, *a], np.random.default_rng(0).standard_normal(2 * SR))
    poles = np.roots([1.0, *a])
    n = np.arange(1, 9)
    ref = np.real((poles[None, :] ** n[:, None]).sum(1) / n)  # cepstrum of 1 / A(z): sum_i p_i^n / n
    for frame_ms, hop_ms in ((500.0, 250.0), (20.0, 20.0)):
        out = AF.lpcc(torch.from_numpy(x), SR, n_lpcc=8, lpc_order=2, frame_ms=frame_ms, hop_ms=hop_ms,
                      pre_emphasis_coef=0.0)
        assert out.shape[0] == 8 and torch.isfinite(out).all()
        est = out[:, 1:-1].mean(-1).numpy()  # interior frames (edge frames are half zero padding)
        np.testing.assert_allclose(est, ref, rtol=0, atol=0.02)


def test_levinson_solves_normal_equations(fsdd_waves):
    x = fsdd_waves[0].numpy()
    loudest = int(np.abs(x).argmax())
    frames = [x[s : s + 400] for s in (max(loudest - 600, 0), max(loudest - 200, 0), loudest)]
    r = np.stack([np.correlate(f, f, "full")[399 : 399 + 13] for f in frames])
    assert (r[:, 0] > 1e-3).all()
    ours = AF._levinson(torch.from_numpy(r), 12).numpy()
    for i in range(3):
        ref = -scipy.linalg.solve_toeplitz(r[i, :12], r[i, 1:13])
        np.testing.assert_allclose(ours[i], ref, rtol=1e-7, atol=1e-9)
    silent = AF.lpcc(torch.zeros(2, SR, dtype=torch.float64), SR)  # silence stays finite
    assert torch.isfinite(silent).all()


def test_modules_equal_functional(fsdd_waves):
    w = fsdd_waves[:4].float()
    assert torch.equal(FDMFCC(SR)(w), AF.fd_mfcc(w, SR))
    mf = AF.mfcc(AF.pre_emphasis(w, 0.97), SR, n_mfcc=13, n_fft=N_FFT, hop_length=HOP, win_length=WIN, n_mels=40)
    assert torch.equal(MFCC(SR, n_mfcc=13)(w), mf.unsqueeze(1))
    assert torch.equal(LPCC(SR, n_lpcc=16, lpc_order=10)(w), AF.lpcc(w, SR, n_lpcc=16, lpc_order=10).unsqueeze(1))
    coeffs = mf
    assert torch.equal(Delta(2, 5)(coeffs), AF.delta(coeffs, 2, 5))
    cfg = FeatureConfig(kind="mfcc", n_mels=32, hop_ms=10.0)
    assert torch.equal(FeatureExtractor(SR, cfg)(w), cfg.extract(w, SR))
    assert FeatureExtractor(SR, cfg)(w).shape == (4, 1, 20, 101)
    with pytest.raises(ValueError, match="kind"):
        FeatureConfig(kind="spectrogram")


def test_modules_hold_their_matrices_as_buffers_that_follow_the_module(fsdd_waves):
    from ddfad_apps.features.transforms import FEATURE_MODULES, feature_module

    m = FDMFCC(SR)
    assert {n for n, _ in m.named_buffers()} == {"window", "mel_fb", "dct", "delta1", "delta2"}
    assert m.mel_fb.shape == (40, N_FFT // 2 + 1) and m.dct.shape == (20, 40) and m.window.shape == (WIN,)
    w64 = fsdd_waves[:2].double()
    m64 = FDMFCC(SR).to(torch.float64)  # buffers move with the module (``.to(device)`` alike)
    assert all(b.dtype == torch.float64 for b in m64.buffers())
    torch.testing.assert_close(m64(w64), AF.fd_mfcc(w64, SR), rtol=0, atol=1e-9)
    # the buffers are what the module computes with: zeroing the DCT zeroes every coefficient
    with torch.no_grad():
        m64.dct.zero_()
    assert m64(w64).abs().max() == 0
    assert set(FEATURE_MODULES) == {"fd_mfcc", "mfcc", "lpcc"}
    for kind in FEATURE_MODULES:
        cfg = FeatureConfig(kind=kind)
        assert isinstance(feature_module(cfg, SR), FEATURE_MODULES[kind]) and feature_module(cfg, SR).config == cfg


@pytest.mark.slow
def test_fd_mfcc_module_exports_to_a_graph(fsdd_waves):
    w = fsdd_waves[:2].float()
    module = FDMFCC(SR)
    program = torch.export.export(module, (w,))
    assert {"window", "mel_fb", "dct"} <= {s.target for s in program.graph_signature.input_specs if s.target}
    assert torch.equal(program.module()(w), module(w))
    assert torch.equal(module(w), AF.fd_mfcc(w, SR))  # exporting left no traced state behind


def test_features_are_differentiable(fsdd_waves):
    w = fsdd_waves[:2].clone().requires_grad_(True)
    AF.fd_mfcc(w, SR).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ cache and normalisation


@pytest.fixture
def small_fsdd(tmp_path, data_root) -> Path:
    """A folder data set of real FSDD clips: train/ 3 per digit (takes >= 5), test/ 2 per digit (takes < 5)."""
    src = list_clips("fsdd", "all", data_root=data_root)
    root = tmp_path / "fsdd-small"
    for split, takes, n in (("train", range(5, 50), 3), ("test", range(5), 2)):
        for digit in range(10):
            chosen = [p for p, y in zip(src.paths, src.labels)
                      if y == digit and int(p.stem.split("_")[2]) in takes][:n]
            (root / split / str(digit)).mkdir(parents=True)
            for p in chosen:
                shutil.copy2(p, root / split / str(digit) / p.name)
    return root


@pytest.fixture
def counted_loads(monkeypatch):
    """Counts ClipList.load calls (each is one decoding + extraction of a split)."""
    calls: list[str] = []
    original = ClipList.load

    def load(self, *args, **kwargs):
        calls.append(self.split)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClipList, "load", load)
    return calls


def test_cache_reused_and_keyed_by_config(small_fsdd, tmp_path, monkeypatch, counted_loads):
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    first = load_features(str(small_fsdd), sample_rate=SR, duration=1.0, progress=False)
    assert counted_loads == ["train", "test"]
    assert (len(first.train), len(first.test)) == (30, 20) and first.train.input_shape == (3, 20, 51)
    files = sorted((tmp_path / "cache" / "features").glob("*.pt"))
    assert len(files) == 2

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted again instead of read from the cache")

    monkeypatch.setattr(FeatureConfig, "extract", no_extraction)
    second = load_features(str(small_fsdd), sample_rate=SR, duration=1.0, progress=False)
    assert counted_loads == ["train", "test"]
    assert torch.equal(second.train.features, first.train.features)
    assert torch.equal(second.test.labels, first.test.labels)
    monkeypatch.undo()  # restores extract, DDFAD_CACHE and the load counter: set them again
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))

    changed = load_features(str(small_fsdd), config=FeatureConfig(n_mels=32), sample_rate=SR, duration=1.0,
                            progress=False)
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 4
    assert changed.train.features.shape == first.train.features.shape
    assert not torch.allclose(changed.train.features, first.train.features, atol=1e-3)
    assert changed.config.n_mels == 32 and changed.train.meta["features"]["n_mels"] == 32
    # a fresh extraction with the changed setting equals what was cached for it
    clips = list_clips(str(small_fsdd), "train", sample_rate=SR, duration=1.0)
    fresh = extract_clip_features(clips, FeatureConfig(n_mels=32), use_cache=False, progress=False)
    torch.testing.assert_close(changed.stats.apply(fresh.features), changed.train.features, rtol=0, atol=0)


def test_cache_key_covers_every_setting(small_fsdd):
    clips = list_clips(str(small_fsdd), "train", sample_rate=SR, duration=1.0)
    base = FeatureConfig()
    changes = {"kind": "mfcc", "n_coeffs": 13, "frame_ms": 25.0, "hop_ms": 10.0, "n_mels": 64, "pre_emphasis": 0.9,
               "delta_width": 5, "top_db": None, "lpc_order": 10, "window": "hamming"}
    assert set(changes) == {f.name for f in dataclasses.fields(FeatureConfig)}  # a new field must be added here
    keys = {cache_key(clips, base, "raise")}
    keys |= {cache_key(clips, base.replace(**{k: v}), "raise") for k, v in changes.items()}
    keys.add(cache_key(clips, base, "skip"))
    keys.add(cache_key(list_clips(str(small_fsdd), "train", sample_rate=16000, duration=1.0), base, "raise"))
    keys.add(cache_key(list_clips(str(small_fsdd), "test", sample_rate=SR, duration=1.0), base, "raise"))
    assert len(keys) == len(changes) + 4
    assert cache_key(clips, FeatureConfig(), "raise") == cache_key(clips, base, "raise")  # and it is stable


def test_cache_not_written_without_use_cache(small_fsdd, tmp_path, monkeypatch):
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    load_features(str(small_fsdd), sample_rate=SR, duration=1.0, use_cache=False, progress=False)
    assert not (tmp_path / "cache" / "features").exists()


def test_normalisation_uses_train_split_only(small_fsdd, tmp_path, monkeypatch):
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    splits = load_features(str(small_fsdd), sample_rate=SR, duration=1.0, progress=False)
    tr = splits.train.features
    assert splits.stats.mean.shape == splits.stats.std.shape == (3, 20, 1)
    torch.testing.assert_close(tr.mean(dim=(0, 3)), torch.zeros(3, 20), rtol=0, atol=1e-4)
    torch.testing.assert_close(tr.std(dim=(0, 3)), torch.ones(3, 20), rtol=0, atol=1e-4)
    te_mean = splits.test.features.mean(dim=(0, 3))
    assert te_mean.abs().max() > 1e-2  # test is normalised with train statistics, not its own

    raw_train = extract_clip_features(list_clips(str(small_fsdd), "train", sample_rate=SR, duration=1.0),
                                      splits.config, progress=False).features
    raw_test = extract_clip_features(list_clips(str(small_fsdd), "test", sample_rate=SR, duration=1.0),
                                     splits.config, progress=False).features
    own = FeatureStats.fit(raw_train)
    torch.testing.assert_close(splits.stats.mean, own.mean)
    torch.testing.assert_close(splits.stats.std, own.std)
    pooled = FeatureStats.fit(torch.cat([raw_train, raw_test]))
    assert not torch.allclose(splits.stats.mean, pooled.mean, atol=1e-3)
    torch.testing.assert_close(splits.test.features, own.apply(raw_test))
    # the static channel's spread is far larger than the deltas': why normalisation is per (channel, coeff)
    assert own.std[0].mean() > 10 * own.std[2].mean()


def test_feature_stats_roundtrip():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 20, 51, generator=g, dtype=torch.float64) * torch.tensor([12.0, 0.3, 0.1]).view(3, 1, 1)
    x = x + torch.linspace(-50, 50, 20, dtype=torch.float64).view(1, 1, 20, 1)
    stats = FeatureStats.fit(x)
    y = stats.apply(x)
    torch.testing.assert_close(stats.invert(y), x, rtol=0, atol=1e-10)
    torch.testing.assert_close(y.mean(dim=(0, 3)), torch.zeros(3, 20, dtype=torch.float64), rtol=0, atol=1e-10)
    restored = FeatureStats.from_state_dict(stats.state_dict())
    assert torch.equal(restored.apply(x), y)
    const = FeatureStats.fit(torch.ones(4, 1, 2, 5))  # a constant coefficient: std floored, no division by zero
    assert torch.isfinite(const.apply(torch.ones(4, 1, 2, 5))).all()
    assert restored.apply(x.float()).dtype == torch.float32


@pytest.mark.parametrize("kind", ["fd_mfcc", "mfcc", "lpcc"])
def test_window_setting_reaches_every_feature_kind(kind) -> None:
    """``FeatureConfig.window`` changes the features (Hamming keeps the frame edges Hann zeroes), and an unknown
    window is refused by name."""
    torch.manual_seed(0)
    wave = torch.randn(2, SR)
    hann = FeatureConfig(kind=kind).extract(wave, SR)
    hamming = FeatureConfig(kind=kind, window="hamming").extract(wave, SR)
    assert hann.shape == hamming.shape
    assert not torch.allclose(hann, hamming, atol=1e-2)
    if kind != "lpcc":  # the MFCC chain with a Hamming window, spelled out with torch.stft
        cfg = FeatureConfig(kind="mfcc", window="hamming")
        win, hop, n_fft = AF.frame_params(SR, cfg.frame_ms, cfg.hop_ms)
        x = AF.pre_emphasis(wave, cfg.pre_emphasis)
        spec = torch.stft(x, n_fft, hop, win, torch.hamming_window(win, periodic=True), center=True,
                          pad_mode="constant", return_complex=True).abs().square()
        db = AF.power_to_db(AF.mel_filterbank(SR, n_fft, cfg.n_mels) @ spec, top_db=cfg.top_db)
        expected = AF.dct_matrix(cfg.n_coeffs, cfg.n_mels) @ db
        torch.testing.assert_close(hamming[:, 0], expected, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="unknown window 'kaiser'"):
        FeatureConfig(window="kaiser")
