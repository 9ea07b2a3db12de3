"""FD-MFCC -> audio: each stage against its librosa twin, the full round trip, the WAV export and Figure 6.

Runs on six real FSDD clips (the ``fsdd_root`` fixture; fails when absent).  torch runs
on one thread here: on a shared 2-core machine OpenMP's two-thread barriers turn every small op into a scheduler
wait, and the point of these tests is the numbers, not the threading.
"""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from ddfad_apps.data.audio_io import read_many
from ddfad_apps.data.folder import list_folder
from ddfad_apps.data.registry import list_clips
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.features import functional as AF
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.features.normalize import FeatureStats
from ddfad_apps.reconstruct import (
    FDMFCCInverse, db_to_power, de_emphasis, fd_mfcc_to_audio, griffin_lim, istft, log_spectral_distance,
    frame_rate_line, mel_to_stft_magnitude, mfcc_to_mel_db, peak_stats, plot_original_vs_distilled, roundtrip_accuracy,
    spectral_convergence, spectral_convergence_to, write_audio_dataset,
)
from ddfad_apps.reconstruct.functional import resample_frames, synthesis_framing

SR = 8000
CONFIG = FeatureConfig()
WIN, HOP, N_FFT = AF.frame_params(SR, CONFIG.frame_ms, CONFIG.hop_ms)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clips(fsdd_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Six 1 s FSDD clips (digits 0, 2, 4, 5, 7, 9: different speakers and lengths) and their labels."""
    listing = list_clips("fsdd", "train", data_root=fsdd_root.parent)
    labels = torch.tensor(listing.labels)
    idx = [int((labels == c).nonzero()[k]) for k, c in enumerate((0, 2, 4, 5, 7, 9))]
    waves, _ = read_many([listing.paths[i] for i in idx], SR, listing.num_samples, progress=False)
    return waves, labels[idx]


@pytest.fixture(scope="module")
def features(clips) -> torch.Tensor:
    return CONFIG.extract(clips[0], SR)


@pytest.fixture(scope="module")
def mel_power(features) -> torch.Tensor:
    return db_to_power(mfcc_to_mel_db(features[:, 0], CONFIG.n_mels))


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


# --- stages against librosa ------------------------------------------------------------------------------


def test_mfcc_to_mel_db_equals_librosa_inverse_dct(features) -> None:
    mfcc = features[:, 0]
    ours = mfcc_to_mel_db(mfcc, CONFIG.n_mels).numpy()
    # librosa.feature.inverse.mfcc_to_mel = this idct (its dB stage), then db_to_power
    ref_db = librosa.get_fftlib().idct(mfcc.numpy(), axis=-2, type=2, norm="ortho", n=CONFIG.n_mels)
    np.testing.assert_allclose(ours, ref_db, rtol=0, atol=1e-3)  # dB; values span ~100 dB, float32
    ref_power = librosa.feature.inverse.mfcc_to_mel(mfcc.numpy(), n_mels=CONFIG.n_mels)
    np.testing.assert_allclose(db_to_power(torch.from_numpy(ours)).numpy(), ref_power, rtol=1e-3, atol=0)


def test_mel_to_stft_is_a_better_nnls_and_close_to_librosa(mel_power) -> None:
    mel = mel_power[:3].numpy()
    basis = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=CONFIG.n_mels)

    def residual(mag: np.ndarray) -> np.ndarray:
        return np.linalg.norm(basis @ mag**2 - mel, axis=(-2, -1)) / np.linalg.norm(mel, axis=(-2, -1))

    ours = mel_to_stft_magnitude(mel_power[:3], SR, N_FFT).numpy()
    assert ours.shape == (3, N_FFT // 2 + 1, mel.shape[-1]) and (ours >= 0).all()
    # the start is the clamped pseudo-inverse, as in librosa.util.nnls
    start = np.sqrt(np.clip(np.linalg.pinv(basis) @ mel, 0, None))
    np.testing.assert_allclose(mel_to_stft_magnitude(mel_power[:3], SR, N_FFT, n_iter=0).numpy(), start,
                               rtol=0, atol=1e-5 * start.max())
    # librosa's L-BFGS-B at the clips' own (quiet) scale: ours must fit the mel spectrogram at least as well
    lib = np.stack([librosa.feature.inverse.mel_to_stft(m, sr=SR, n_fft=N_FFT) for m in mel])  # per clip: faster
    assert (residual(ours) <= residual(lib) + 1e-4).all(), (residual(ours), residual(lib))
    assert residual(ours).max() < 1e-3
    # NNLS is positively homogeneous; scaled by 1e8, L-BFGS-B does converge.  The problem is under-determined
    # (129 bins from 40 bands), so two solvers may legitimately differ along the null space: bound at 8 %.
    scale = 1e8
    converged = np.stack([librosa.feature.inverse.mel_to_stft(m * scale, sr=SR, n_fft=N_FFT) for m in mel])
    converged /= np.sqrt(scale)
    rel = np.linalg.norm(ours - converged, axis=(-2, -1)) / np.linalg.norm(converged, axis=(-2, -1))
    assert rel.max() < 0.08, rel


def test_griffin_lim_converges_as_well_as_librosa(clips, mel_power) -> None:
    # Well posed (frames overlapping by 3/4): same algorithm, same zero-phase start, so the same result.
    hop = WIN // 4
    stft = [np.abs(librosa.stft(w.numpy(), n_fft=N_FFT, hop_length=hop, win_length=WIN)) for w in clips[0]]
    magnitude = torch.from_numpy(np.stack(stft)).float()
    ours = griffin_lim(magnitude, N_FFT, hop, WIN, n_iter=32, momentum=0.99, init="zeros", length=SR)
    lib = np.stack([
        librosa.griffinlim(m, n_iter=32, hop_length=hop, win_length=WIN, n_fft=N_FFT, momentum=0.99, init=None,
                           length=SR)
        for m in magnitude.numpy()
    ])
    sc_ours = spectral_convergence(magnitude, ours, N_FFT, hop, WIN)
    sc_lib = spectral_convergence(magnitude, torch.from_numpy(lib), N_FFT, hop, WIN)
    torch.testing.assert_close(sc_ours, sc_lib, rtol=0.02, atol=1e-4)
    assert sc_ours.max() < 0.15
    # The features' own frames do not overlap (hop = window): there each bin is fitted almost independently and
    # both implementations' last digits steer the phases apart (float64 even ends worse than float32, in ours and
    # in librosa alike), so only the quality of our reconstruction of the inverted mel spectrogram is bounded.
    magnitude = mel_to_stft_magnitude(mel_power, SR, N_FFT)
    ours = griffin_lim(magnitude, N_FFT, HOP, WIN, n_iter=32, momentum=0.99, init="zeros", length=SR)
    assert spectral_convergence(magnitude, ours, N_FFT, HOP, WIN).max() < 0.1


def test_istft_inverts_stft_where_the_window_sees_the_signal(clips) -> None:
    x = clips[0][:2]
    window = torch.hann_window(400, periodic=True)
    spec = torch.stft(x, 512, 100, 400, window, center=True, pad_mode="constant", return_complex=True)
    torch.testing.assert_close(istft(spec, 512, 100, 400, length=SR), x, rtol=0, atol=1e-5)
    # no overlap (our 20 ms / 20 ms): the sample under each window's leading zero is unobserved and comes back 0
    spec = torch.stft(x, N_FFT, HOP, WIN, torch.hann_window(WIN, periodic=True), center=True, pad_mode="constant",
                      return_complex=True)
    back = istft(spec, N_FFT, HOP, WIN, length=SR)
    seen = (torch.arange(SR) % HOP) != HOP // 2
    torch.testing.assert_close(back[:, seen], x[:, seen], rtol=0, atol=2e-3)


def test_de_emphasis_inverts_pre_emphasis(clips) -> None:
    x = clips[0][:3]
    y = de_emphasis(AF.pre_emphasis(x, 0.97), 0.97)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-5)
    noise = torch.randn(2, 5003, generator=torch.Generator().manual_seed(0))
    ref = scipy.signal.lfilter([1.0], [1.0, -0.97], noise.double().numpy(), axis=-1)
    np.testing.assert_allclose(de_emphasis(noise, 0.97).double().numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert de_emphasis(noise, 0.0) is noise


# --- the whole chain -------------------------------------------------------------------------------------


def test_round_trip_keeps_the_fd_mfcc(clips, features) -> None:
    waves = clips[0]
    recon = fd_mfcc_to_audio(features, SR, CONFIG, generator=torch.Generator().manual_seed(0))
    assert recon.shape == waves.shape and torch.isfinite(recon).all()
    rms = recon.square().mean(-1).sqrt()
    assert (rms > 0.1 * waves.square().mean(-1).sqrt()).all()  # not silent
    # no clicks: the level follows the MFCC's absolute dB, so the peak stays near the original's
    assert (recon.abs().amax(-1) < 4 * waves.abs().amax(-1)).all()
    again = CONFIG.extract(recon, SR)[:, 0]
    for i in range(len(waves)):
        assert pearson(again[i], features[i, 0]) > 0.99
        assert pearson(again[i, 1:], features[i, 0, 1:]) > 0.9  # without c0, which alone makes the above easy
    module = FDMFCCInverse(SR, CONFIG)
    torch.testing.assert_close(module(features, generator=torch.Generator().manual_seed(0)), recon)


def test_fd_mfcc_to_audio_refuses_lpcc_and_wrong_shapes(features) -> None:
    with pytest.raises(ValueError, match="MFCC-based"):
        fd_mfcc_to_audio(features, SR, CONFIG.replace(kind="lpcc"))
    with pytest.raises(ValueError, match="expected features"):
        fd_mfcc_to_audio(features[:, :, :10], SR, CONFIG)


# --- export ----------------------------------------------------------------------------------------------


def small_synthetic(features: torch.Tensor, with_stats: bool = True) -> SyntheticSet:
    """Three classes, two clips each, in the normalised space (what a distillation returns)."""
    stats = FeatureStats.fit(features)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return SyntheticSet(stats.apply(features), labels, ["zero", "two", "four"], "mtt", lr=0.0123,
                        stats=stats if with_stats else None, meta={"clips_per_class": 2})


def test_write_audio_dataset_reads_back_with_the_folder_loader(features, tmp_path) -> None:
    synthetic = small_synthetic(features)
    out = write_audio_dataset(synthetic, tmp_path / "export", SR, CONFIG, duration=1.0)
    assert out == tmp_path / "export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temp folder left behind
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == synthetic.classes and manifest["sample_rate"] == SR
    assert manifest["lr"] == pytest.approx(0.0123) and manifest["method"] == "mtt"
    assert manifest["features"] == CONFIG.as_dict()
    assert [c["index"] for c in manifest["clips"]] == list(range(6))
    clip = {k: v for k, v in manifest["clips"][3].items() if k not in ("gain", "raw_peak")}
    assert clip == {"class": "two", "label": 1, "path": "two/two_1.wav", "index": 3}
    info = sf.info(str(out / "four" / "four_0.wav"))
    assert (info.samplerate, info.frames, info.subtype) == (SR, SR, "PCM_16")

    listing = list_folder(out, split="all")
    assert listing.classes == synthetic.classes and len(listing) == len(synthetic)
    assert listing.labels == synthetic.labels.tolist()
    assert (listing.sample_rate, listing.duration) == (SR, 1.0)
    loaded = listing.load(progress=False)
    assert loaded.waveforms.shape == (6, SR)
    torch.testing.assert_close(loaded.waveforms.abs().amax(-1), torch.full((6,), 0.9), rtol=0, atol=1e-3)

    # a second export replaces the first; a folder that is not an export is never overwritten
    write_audio_dataset(synthetic, out, SR, CONFIG, duration=1.0, n_iter=4)
    assert json.loads((out / "manifest.json").read_text())["reconstruction"]["n_iter"] == 4
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_audio_dataset(synthetic, foreign, SR, CONFIG, duration=1.0)


def test_write_audio_dataset_needs_stats_and_matching_settings(features, tmp_path) -> None:
    with pytest.raises(ValueError, match="normalisation statistics"):
        write_audio_dataset(small_synthetic(features, with_stats=False), tmp_path / "x", SR, CONFIG, 1.0)
    with pytest.raises(ValueError, match="check sample_rate, duration"):
        write_audio_dataset(small_synthetic(features), tmp_path / "x", SR, CONFIG, 2.0)
    assert not (tmp_path / "x").exists()


def test_figure_six_is_written(clips, features, tmp_path) -> None:
    waves, labels = clips
    synth = fd_mfcc_to_audio(features, SR, CONFIG, n_iter=8, generator=torch.Generator().manual_seed(0))
    classes = [str(c) for c in range(10)]
    path = plot_original_vs_distilled(waves, labels, synth, labels, classes, SR, tmp_path / "fig" / "fig6.png",
                                      dpi=60)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_never_clips_and_records_each_gain(features, tmp_path) -> None:
    # +40 dB on every mel band (c0 of the ortho DCT is sum(dB) / sqrt(n_mels)): raw reconstructions peak far
    # above full scale, as distilled clips often do
    loud = features.clone()
    loud[:, 0, 0] += 40.0 * CONFIG.n_mels**0.5
    synthetic = small_synthetic(loud)
    out = write_audio_dataset(synthetic, tmp_path / "loud", SR, CONFIG, duration=1.0, n_iter=8, peak=0.99)
    manifest = json.loads((out / "manifest.json").read_text())
    raw = fd_mfcc_to_audio(synthetic.stats.invert(synthetic.features), SR, CONFIG, 8, momentum=0.99,
                           regularization=1e-2, generator=torch.Generator().manual_seed(0), length=SR)
    raw_peaks = raw.abs().amax(-1)
    assert (raw_peaks > 5.0).all()  # the test case really is loud
    for clip, expected_peak in zip(manifest["clips"], raw_peaks.tolist()):
        assert clip["raw_peak"] == pytest.approx(expected_peak, rel=1e-5)
        assert clip["gain"] == pytest.approx(0.99 / expected_peak, rel=1e-5)
        wave, _ = sf.read(str(out / clip["path"]), dtype="float32")
        stats = peak_stats(torch.from_numpy(wave))
        assert float(stats.peak) <= 1.0 and float(stats.peak) == pytest.approx(0.99, abs=1e-3)
        assert float(stats.clip_fraction) == 0.0


# --- fidelity measures on known signals --------------------------------------------------------------------


def tone(freq: float = 1000.0, amplitude: float = 0.5, n: int = SR) -> torch.Tensor:
    """A sine at ``freq``; at 1 kHz and 8 kHz a period is 8 samples, so the peak sample is exactly ``amplitude``."""
    return amplitude * torch.sin(2 * torch.pi * freq * torch.arange(n, dtype=torch.float64) / SR)


def test_fidelity_of_a_pure_tone() -> None:
    x = tone()
    assert float(spectral_convergence_to(x, x, SR)) == pytest.approx(0.0, abs=1e-7)
    assert float(log_spectral_distance(x, x, SR)) == 0.0
    # magnitudes scale linearly: half the level is half the reference norm away
    assert float(spectral_convergence_to(x, 0.5 * x, SR)) == pytest.approx(0.5, rel=1e-6)
    noise = torch.randn(2, SR, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lsd = log_spectral_distance(noise, 0.5 * noise, SR)
    assert lsd.shape == (2,)
    torch.testing.assert_close(lsd, torch.full((2,), 20 * np.log10(2.0), dtype=torch.float32), rtol=1e-5, atol=0)
    assert float(spectral_convergence_to(x, tone(2000.0), SR)) > 1.0  # another pitch is no reconstruction
    stats = peak_stats(torch.stack([x, tone(amplitude=0.25)]))
    torch.testing.assert_close(stats.peak, torch.tensor([0.5, 0.25]))
    assert stats.clip_fraction.tolist() == [0.0, 0.0] and not stats.clipping.any()


def test_fidelity_of_silence_is_defined() -> None:
    silence, x = torch.zeros(SR), tone()
    assert float(spectral_convergence_to(silence, silence, SR)) == 0.0
    assert float(spectral_convergence_to(silence, x, SR)) == float("inf")
    assert float(spectral_convergence_to(x, silence, SR)) == pytest.approx(1.0)  # all of the signal is missing
    assert float(log_spectral_distance(silence, silence, SR)) == 0.0
    assert np.isfinite(float(log_spectral_distance(silence, x, SR)))
    stats = peak_stats(silence)
    assert float(stats.peak) == 0.0 and float(stats.clip_fraction) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        spectral_convergence_to(silence, silence[:100], SR)


def test_clip_fraction_counts_clipped_samples(tmp_path) -> None:
    # 1.5 x a 1 kHz sine at 8 kHz: samples 0, +-1.06, +-1.5, +-1.06 -> 6 of every 8 reach full scale
    clipped = tone(amplitude=1.5).clamp(-1.0, 1.0)
    stats = peak_stats(clipped)
    assert float(stats.peak) == 1.0 and float(stats.clip_fraction) == pytest.approx(0.75)
    # as a 16-bit file, full scale reads back as 1 - 2**-15: still counted
    sf.write(str(tmp_path / "c.wav"), clipped.numpy(), SR, subtype="PCM_16")
    back = torch.from_numpy(sf.read(str(tmp_path / "c.wav"), dtype="float32")[0])
    assert float(peak_stats(back).clip_fraction) == pytest.approx(0.75)
    assert float(peak_stats(0.9 * back).clip_fraction) == 0.0
    over = torch.tensor([[0.0, 1.2, -1.0, 0.5], [0.1, 0.2, 0.3, 0.4]])
    assert peak_stats(over).clip_fraction.tolist() == [0.5, 0.0]
    assert peak_stats(over).clipping.tolist() == [True, False]


def test_frame_rate_line_sees_a_50_hz_buzz() -> None:
    noise = torch.randn(2, SR, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    buzz = 1 + 0.5 * torch.sin(2 * torch.pi * 50 * torch.arange(SR, dtype=torch.float64) / SR)
    plain, buzzing = frame_rate_line(torch.stack([noise[0], noise[1] * buzz]), SR, 50.0).tolist()
    assert plain < 10.0 < 20.0 < buzzing
    assert float(frame_rate_line(torch.zeros(SR), SR, 50.0)) == 0.0
    assert frame_rate_line(noise, SR, 100.0).shape == (2,)


def test_roundtrip_accuracy_classifies_real_and_reconstructed_clips(fsdd_root) -> None:
    from ddfad_apps.features import load_features
    from ddfad_apps.models import build_model
    from ddfad_apps.training.loops import TrainConfig, predict, train_model

    splits = load_features("fsdd", data_root=fsdd_root.parent, progress=False)
    torch.manual_seed(0)
    model = build_model("convnet", 10, splits.train.input_shape, width=16)
    train = splits.train.subset(torch.arange(0, len(splits.train), 3))  # 900 clips: seconds, and enough
    train_model(model, train, TrainConfig(epochs=5, batch_size=64, lr=0.05), progress=False,
                generator=torch.Generator().manual_seed(0))
    test = list_clips("fsdd", "test", data_root=fsdd_root.parent)
    idx = list(range(0, len(test), 10))  # 30 clips, every digit
    waves, _ = read_many([test.paths[i] for i in idx], SR, test.num_samples, progress=False)
    labels = torch.tensor([test.labels[i] for i in idx])
    rt = roundtrip_accuracy(model, waves, labels, SR, splits.stats, CONFIG, n_iter=16)
    # the originals' accuracy is the network's accuracy on the cached test features of the same clips
    cached = (predict(model, splits.test.features[idx]) == labels).float().mean().item()
    assert rt.original_accuracy == pytest.approx(cached)
    assert rt.original_accuracy >= 0.8, rt
    assert rt.reconstructed.shape == waves.shape and torch.isfinite(rt.reconstructed).all()
    assert rt.roundtrip_accuracy >= rt.original_accuracy - 0.2, rt  # the class survives the trip through audio
    assert rt.drop == pytest.approx(rt.original_accuracy - rt.roundtrip_accuracy)


def test_export_is_logged_only_into_an_active_run(tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    from ddfad_apps.reconstruct.export import AudioExport, log_to_active_run

    audio = tmp_path / "run" / "audio"
    (audio / "zero").mkdir(parents=True)
    for name in ("index.html", "manifest.json", "zero/zero_0.wav"):
        (audio / name).write_text(name)
    figure = tmp_path / "run" / "original_vs_distilled.png"
    figure.write_bytes(b"png")
    exported = AudioExport(audio, figure, audio / "index.html")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    assert log_to_active_run(exported) is None  # no run: nothing logged, no run created
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("recon")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    assert log_to_active_run(exported) == run_id
    logged = {f.path for f in client.list_artifacts(run_id, "audio")} | {f.path for f in client.list_artifacts(run_id)}
    assert {"audio/index.html", "audio/manifest.json", "audio/zero", "original_vs_distilled.png"} <= logged
    assert client.get_run(run_id).info.status == "RUNNING"  # logged into, not ended


def test_overlapped_synthesis_removes_the_frame_rate_buzz(clips, features) -> None:
    """Synthesising on the features' own grid (20 ms frames, no overlap) buzzes at 50 Hz; the default 4x
    overlapped synthesis does not, and is closer to the original clips (the framing table in docs/reconstruction.md)."""
    waves = clips[0]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    on_grid = fd_mfcc_to_audio(features, SR, CONFIG, generator=gen(), length=SR, overlap=1)
    smooth = fd_mfcc_to_audio(features, SR, CONFIG, generator=gen(), length=SR)
    assert smooth.shape == on_grid.shape == waves.shape
    rate = 1000.0 / CONFIG.hop_ms
    buzz_grid = frame_rate_line(on_grid, SR, rate) - frame_rate_line(waves, SR, rate)
    buzz_smooth = frame_rate_line(smooth, SR, rate) - frame_rate_line(waves, SR, rate)
    assert float(buzz_grid.median()) > 6.0  # the artefact is there without overlap ...
    assert float(buzz_smooth.median()) < float(buzz_grid.median()) - 6.0  # ... and gone with it
    assert float(buzz_smooth.median()) < 3.0
    sc_grid = spectral_convergence_to(waves, on_grid, SR)
    sc_smooth = spectral_convergence_to(waves, smooth, SR)
    assert float(sc_smooth.median()) < float(sc_grid.median())
    # the reconstruction still carries the clip's MFCC
    again = CONFIG.extract(smooth, SR)[:, 0]
    assert min(pearson(again[i, 1:], features[i, 0, 1:]) for i in range(len(waves))) > 0.85


def test_synthesis_framing_covers_the_analysis_span() -> None:
    assert synthesis_framing(160, 51, 4) == (40, 201)
    assert synthesis_framing(160, 51, 1) == (160, 51)
    hop, frames = synthesis_framing(441, 51, 4)  # 20 ms at 22.05 kHz: the hop is rounded, the span kept
    assert hop == 110 and abs(hop * (frames - 1) - 441 * 50) <= hop // 2
    with pytest.raises(ValueError, match="overlap must be >= 1"):
        synthesis_framing(160, 51, 0)
    mag = torch.rand(2, 65, 5)
    up = resample_frames(mag, 17)
    torch.testing.assert_close(up[..., ::4], mag)  # analysis frames kept, the others in between
    torch.testing.assert_close(up[..., 2], (mag[..., 0] + mag[..., 1]) / 2)
