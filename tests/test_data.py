"""Data sets: locating them, listing splits, decoding clips, and the errors users see.

FSDD and RAVDESS are checked on the real recordings (``data_root`` fixture, see conftest.py); UrbanSound8K is
too large to ship, so a tiny copy is written here in its real layout (the real CSV columns, ``audio/foldN/``,
clips at 44.1 and 22.05 kHz, stereo and mono).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torchaudio.functional import resample as torchaudio_resample

from ddfad_apps.data import (
    AudioReadError,
    ClipList,
    DatasetNotFoundError,
    EmptyClassError,
    find_dataset_dir,
    list_clips,
    read_audio,
)
from ddfad_apps.data.audio_io import fix_length, read_many
from ddfad_apps.data.layouts import LAYOUTS
from ddfad_apps.data.ravdess import CLASSES as RAVDESS_CLASSES
from ddfad_apps.data.ravdess import parse_name
from ddfad_apps.data.urbansound8k import CLASSES as US8K_CLASSES

FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def write_wav(path: Path, wave: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sample_rate, subtype=subtype)
    return path


def sine(freq: float, seconds: float, sample_rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wave: torch.Tensor, sample_rate: int) -> float:
    spec = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.fft.rfftfreq(wave.shape[-1], 1 / sample_rate)[spec.argmax()])


def one_per_class(clips: ClipList) -> ClipList:
    """The first clip of each class, as a ClipList (a subset must keep every class, or it is an error)."""
    first = {y: i for i, y in reversed(list(enumerate(clips.labels)))}
    idx = [first[c] for c in range(len(clips.classes))]
    return ClipList(clips.dataset, clips.split, clips.root, [clips.paths[i] for i in idx],
                    [clips.labels[i] for i in idx], clips.classes, clips.sample_rate, clips.duration)


# ----------------------------------------------------------------------------------------------------- FSDD, real


def test_fsdd_official_split(data_root):
    train = list_clips("fsdd", "train", data_root=data_root)
    test = list_clips("fsdd", "test", data_root=data_root)
    assert (len(train), len(test)) == (2700, 300)
    assert train.classes == test.classes == [str(d) for d in range(10)]
    assert set(train.paths).isdisjoint(test.paths)
    for clips, takes in ((train, range(5, 50)), (test, range(5))):
        for p, y in zip(clips.paths, clips.labels):
            m = FSDD_NAME.match(p.name)
            assert m is not None, p
            assert int(m.group(3)) in takes, p
            assert y == int(m.group(1)), p  # label is the spoken digit
    assert set(test.class_counts().values()) == {30}  # 6 speakers x 5 takes per digit
    assert set(train.class_counts().values()) == {270}
    assert len(list_clips("fsdd", "all", data_root=data_root)) == 3000


def test_fsdd_resampling_and_fixed_duration(data_root):
    clips = one_per_class(list_clips("fsdd", "test", data_root=data_root, sample_rate=16000, duration=0.75))
    assert clips.num_samples == 12000
    waves = clips.load(progress=False)
    assert waves.waveforms.shape == (10, 12000) and waves.waveforms.dtype == torch.float32
    assert waves.labels.tolist() == list(range(10)) and waves.sample_rate == 16000

    path = clips.paths[0]
    native = read_audio(path, 8000)
    assert native.ndim == 1 and native.abs().max() > 0
    assert read_audio(path, 16000).shape[-1] == 2 * native.shape[-1]  # resampled, not just relabelled
    # onsets stay aligned: crop keeps the beginning, pad appends zeros
    n = native.shape[-1]
    torch.testing.assert_close(read_audio(path, 8000, n // 2), native[: n // 2])
    padded = read_audio(path, 8000, n + 100)
    torch.testing.assert_close(padded[:n], native)
    assert padded[n:].abs().max() == 0


# -------------------------------------------------------------------------------------------------- RAVDESS, real


def _actors(clips: ClipList) -> set[int]:
    return {parse_name(p.name)["actor"] for p in clips.paths}


def test_ravdess_actor_split(data_root):
    train = list_clips("ravdess", "train", data_root=data_root)
    test = list_clips("ravdess", "test", data_root=data_root)
    assert train.classes == RAVDESS_CLASSES and len(RAVDESS_CLASSES) == 8
    assert (len(train), len(test)) == (1200, 240)  # 60 speech clips per actor
    assert _actors(test) == {21, 22, 23, 24}
    assert _actors(train) == set(range(1, 21))
    assert _actors(train).isdisjoint(_actors(test))
    for clips in (train, test):
        assert all(n > 0 for n in clips.class_counts().values())
        for p, y in zip(clips.paths, clips.labels):
            assert y == parse_name(p.name)["emotion"] - 1
    assert {p.suffix for p in train.paths} == {".flac"}


def test_ravdess_stratified_split(data_root):
    train = list_clips("ravdess", "train", data_root=data_root, split_mode="stratified", seed=0)
    test = list_clips("ravdess", "test", data_root=data_root, split_mode="stratified", seed=0)
    assert len(train) + len(test) == 1440 and set(train.paths).isdisjoint(test.paths)
    tr, te = train.class_counts(), test.class_counts()
    for c in RAVDESS_CLASSES:
        assert te[c] / (tr[c] + te[c]) == pytest.approx(0.2, abs=0.01), c
    assert len(_actors(test)) > 4  # not the actor split
    other = list_clips("ravdess", "test", data_root=data_root, split_mode="stratified", seed=1)
    assert other.paths != test.paths
    assert list_clips("ravdess", "test", data_root=data_root, split_mode="stratified", seed=0).paths == test.paths
    with pytest.raises(ValueError, match="split_mode"):
        list_clips("ravdess", "test", data_root=data_root, split_mode="speaker")


def test_ravdess_flac_read_and_resample(data_root):
    path = list_clips("ravdess", "test", data_root=data_root).paths[0]
    assert path.suffix == ".flac" and sf.info(str(path)).samplerate == 16000
    wave = read_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.ndim == 1 and wave.abs().max() > 0
    assert read_audio(path, 8000).shape[-1] == pytest.approx(wave.shape[-1] / 2, abs=1)
    assert read_audio(path, 16000, 48000).shape == (48000,)


# ------------------------------------------------------------------------------------- UrbanSound8K, tiny fixture

US8K_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


@pytest.fixture
def us8k_root(tmp_path: Path) -> Path:
    """``tmp/UrbanSound8K`` in the real layout: one 0.1 s clip per class in folds 1, 2 and 10."""
    root = tmp_path / "UrbanSound8K"
    rows = []
    for fold in (1, 2, 10):
        for class_id, name in enumerate(US8K_CLASSES):
            fs_id = 1000 + class_id
            fname = f"{fs_id}-{class_id}-0-{fold}.wav"
            rate = 44100 if class_id % 2 == 0 else 22050
            wave = sine(1000.0, 0.1, rate)
            if class_id % 3 == 0:  # stereo: right channel half as loud, so the mono mix is 0.75 x left
                wave = np.stack([wave, 0.5 * wave], axis=1)
            write_wav(root / "audio" / f"fold{fold}" / fname, wave, rate)
            rows.append([fname, fs_id, 0.0, 0.1, 1, fold, class_id, name])
    (root / "metadata").mkdir(parents=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(US8K_COLUMNS)
        w.writerows(rows)
    return root


def _fold(p: Path) -> int:
    return int(p.parent.name.removeprefix("fold"))


def test_urbansound8k_folds(us8k_root):
    train = list_clips("urbansound8k", "train", data_root=us8k_root.parent)
    test = list_clips("urbansound8k", "test", data_root=us8k_root.parent)
    assert train.root == us8k_root.resolve()
    assert {_fold(p) for p in test.paths} == {10} and len(test) == 10
    assert {_fold(p) for p in train.paths} == {1, 2} and len(train) == 20
    assert train.classes == US8K_CLASSES and test.labels == list(range(10))
    test2 = list_clips("urbansound8k", "test", data_root=us8k_root, test_fold=2)  # the data set folder itself
    assert {_fold(p) for p in test2.paths} == {2}
    assert {_fold(p) for p in list_clips("urbansound8k", "train", data_root=us8k_root, test_fold=2).paths} == {1, 10}
    with pytest.raises(ValueError, match="test_fold"):
        list_clips("urbansound8k", "test", data_root=us8k_root, test_fold=11)


def test_urbansound8k_resampling_and_mono(us8k_root):
    clips = list_clips("urbansound8k", "test", data_root=us8k_root, sample_rate=16000, duration=0.25)
    waves = clips.load(progress=False)
    assert waves.waveforms.shape == (10, 4000)
    for i, p in enumerate(clips.paths):
        info = sf.info(str(p))
        wave = read_audio(p, 16000)
        assert wave.shape == (1600,), (p, info.samplerate)  # 0.1 s at 16 kHz whatever the file's rate
        assert peak_frequency(wave, 16000) == pytest.approx(1000.0, abs=10.0)
        torch.testing.assert_close(waves.waveforms[i, :1600], wave)
        assert waves.waveforms[i, 1600:].abs().max() == 0
        native = read_audio(p, info.samplerate)
        expected_amp = 0.75 * 0.5 if info.channels == 2 else 0.5
        assert native.abs().max().item() == pytest.approx(expected_amp, abs=0.01)
    assert {sf.info(str(p)).samplerate for p in clips.paths} == {44100, 22050}
    assert {sf.info(str(p)).channels for p in clips.paths} == {1, 2}


@pytest.mark.parametrize("file_rate, channels, sample_rate", [(44100, 2, 16000), (22050, 1, 16000), (16000, 1, 16000)])
def test_long_file_is_read_only_as_far_as_the_clip_needs(tmp_path, monkeypatch, file_rate, channels, sample_rate):
    """A 60 s recording cropped to 0.5 s decodes about 0.5 s, and gives the samples a whole-file read gives."""
    rng = np.random.default_rng(0)
    wave = (0.2 * rng.standard_normal((60 * file_rate, channels))).astype(np.float32)
    path = write_wav(tmp_path / "long.wav", wave, file_rate, subtype="FLOAT")
    num_samples = sample_rate // 2

    read_frames: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, *args, **kwargs):
        data = real_read(self, *args, **kwargs)
        read_frames.append(len(data))
        return data

    monkeypatch.setattr(sf.SoundFile, "read", spy)  # sf.read goes through SoundFile.read too
    got = read_audio(path, sample_rate, num_samples)
    assert got.shape == (num_samples,)
    needed = num_samples * file_rate // sample_rate
    assert needed <= sum(read_frames) <= needed + file_rate // 20, read_frames  # a margin of under 50 ms

    monkeypatch.setattr(sf.SoundFile, "read", real_read)
    whole = torch.from_numpy(wave.mean(axis=1))
    if file_rate != sample_rate:
        whole = torchaudio_resample(whole, file_rate, sample_rate)
    torch.testing.assert_close(got, whole[:num_samples], rtol=0, atol=1e-6)
    assert torch.equal(read_audio(path, sample_rate), whole)  # no length asked: the whole file


def test_urbansound8k_missing_clip_is_named(us8k_root):
    victim = us8k_root / "audio" / "fold2" / "1003-3-0-2.wav"
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="1003-3-0-2.wav"):
        list_clips("urbansound8k", "train", data_root=us8k_root)


# ---------------------------------------------------------------------------------------- folder data sets


def make_folder(root: Path, classes: dict[str, int], rate: int = 16000, seconds: float = 0.1) -> Path:
    for k, (name, n) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_wav(root / name / f"{name}_{i}.wav", sine(300.0 + 100 * k, seconds, rate), rate)
    return root


def test_folder_dataset_stratified(tmp_path):
    root = make_folder(tmp_path / "mine", {"cat": 10, "dog": 5})
    (root / "dog" / "notes.txt").write_text("not audio")
    train = list_clips(str(root), "train", test_fraction=0.2, seed=0)
    test = list_clips(str(root), "test", test_fraction=0.2, seed=0)
    assert train.dataset == "folder" and train.classes == ["cat", "dog"]
    assert test.class_counts() == {"cat": 2, "dog": 1} and train.class_counts() == {"cat": 8, "dog": 4}
    assert set(train.paths).isdisjoint(test.paths)
    assert all(p.parent.name == train.classes[y] for p, y in zip(train.paths, train.labels))
    assert (train.sample_rate, train.duration) == (16000, 1.0)  # defaults without a manifest
    assert len(list_clips(str(root), "all")) == 15


def test_folder_dataset_train_test_subfolders_and_manifest(tmp_path):
    root = tmp_path / "distilled"
    make_folder(root / "train", {"a": 3, "b": 2}, rate=8000)
    make_folder(root / "test", {"a": 1, "b": 1}, rate=22050)  # another rate: resampled on reading
    (root / "manifest.json").write_text(json.dumps({"sample_rate": 8000, "duration": 0.5, "classes": ["b", "a"]}))
    train = list_clips(str(root), "train")
    test = list_clips(str(root), "test")
    assert (len(train), len(test)) == (5, 2)
    assert train.classes == test.classes == ["b", "a"]  # the manifest's class order
    assert all(p.parent.name == train.classes[y] for p, y in zip(train.paths, train.labels))
    assert (test.sample_rate, test.duration, test.num_samples) == (8000, 0.5, 4000)
    waves = test.load(progress=False)
    assert waves.waveforms.shape == (2, 4000)
    assert waves.waveforms[:, 800:].abs().max() == 0  # 0.1 s of 22.05 kHz audio became 800 samples at 8 kHz
    assert waves.waveforms[:, 790:800].abs().max() > 0
    assert list_clips(str(root), "test", sample_rate=16000).sample_rate == 16000  # an option beats the manifest


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_dataset_names_layout_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DDFAD_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as err:
        list_clips("fsdd", "train")
    msg = str(err.value)
    assert "recordings" in msg and "DDFAD_DATA" in msg and "fsdd" in msg
    assert str(tmp_path / "env") in msg and str(tmp_path / "cache" / "data") in msg
    with pytest.raises(DatasetNotFoundError, match=r"Actor_01") as err:
        list_clips("ravdess", "train", data_root=tmp_path / "nowhere")
    assert "nowhere" in str(err.value) and "DDFAD_DATA" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match=r"metadata/UrbanSound8K\.csv"):
        list_clips("urbansound8k", "train", data_root=tmp_path)
    assert issubclass(DatasetNotFoundError, FileNotFoundError)
    with pytest.raises(ValueError, match="unknown data set"):
        list_clips("no-such-set", "train")
    with pytest.raises(ValueError, match="unknown split"):
        list_clips(str(make_folder(tmp_path / "f", {"a": 2, "b": 2})), "validation")


def test_corrupt_and_empty_audio(tmp_path):
    good = write_wav(tmp_path / "good.wav", sine(440.0, 0.1, 8000), 8000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    empty_file = tmp_path / "zero_bytes.wav"
    empty_file.write_bytes(b"")
    no_frames = write_wav(tmp_path / "no_frames.wav", np.zeros(0, dtype=np.float32), 8000)
    for bad in (garbage, empty_file, no_frames):
        with pytest.raises(AudioReadError, match=re.escape(str(bad))):
            read_audio(bad, 8000)
        with pytest.raises(AudioReadError, match=re.escape(bad.name)):
            read_many([good, bad, good], 8000, 800, on_error="raise", progress=False)
        with pytest.warns(UserWarning, match=re.escape(bad.name)):
            waves, kept = read_many([good, bad, good], 8000, 800, on_error="skip", progress=False)
        assert kept == [0, 2] and waves.shape == (2, 800)
        torch.testing.assert_close(waves[1], read_audio(good, 8000, 800))
    with pytest.raises(ValueError, match="on_error"):
        read_many([good], 8000, 800, on_error="ignore")


def test_skipped_clip_keeps_labels_aligned(tmp_path):
    root = make_folder(tmp_path / "set", {"a": 2, "b": 2, "c": 2}, rate=8000)
    (root / "b" / "b_0.wav").write_bytes(b"not a wav file at all")
    clips = list_clips(str(root), "all", sample_rate=8000, duration=0.1)
    with pytest.raises(AudioReadError, match="b_0.wav"):
        clips.load(progress=False)
    with pytest.warns(UserWarning, match="b_0.wav"):
        waves = clips.load(on_error="skip", progress=False)
    assert waves.labels.tolist() == [0, 0, 1, 2, 2]
    assert [p.name for p in waves.paths] == ["a_0.wav", "a_1.wav", "b_1.wav", "c_0.wav", "c_1.wav"]
    # each class's sine has its own pitch: the rows match their labels
    for wave, y in zip(waves.waveforms, waves.labels.tolist()):
        assert peak_frequency(wave, 8000) == pytest.approx(300.0 + 100 * y, abs=15)


def test_class_without_clips_is_an_error(tmp_path, us8k_root):
    root = make_folder(tmp_path / "set", {"a": 3, "b": 3})
    (root / "c").mkdir()
    with pytest.raises(EmptyClassError, match=r"'c'"):
        list_clips(str(root), "train")
    # UrbanSound8K whose test fold lacks a class
    (us8k_root / "audio" / "fold10" / "1004-4-0-10.wav").unlink()
    meta = us8k_root / "metadata" / "UrbanSound8K.csv"
    meta.write_text("".join(line for line in meta.read_text().splitlines(True) if "1004-4-0-10" not in line))
    assert len(list_clips("urbansound8k", "train", data_root=us8k_root)) == 20
    with pytest.raises(EmptyClassError, match="drilling"):
        list_clips("urbansound8k", "test", data_root=us8k_root)


# ------------------------------------------------------------------------------------------ where data is found


def _fake_fsdd(root: Path) -> Path:
    (root / "fsdd" / "recordings").mkdir(parents=True)
    return (root / "fsdd").resolve()


def test_location_precedence_option_env_cache(tmp_path, monkeypatch):
    layout = LAYOUTS["fsdd"]
    opt, env, cache = _fake_fsdd(tmp_path / "opt"), _fake_fsdd(tmp_path / "env"), _fake_fsdd(tmp_path / "cache" / "data")
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DDFAD_DATA", str(tmp_path / "env"))
    assert find_dataset_dir(layout, tmp_path / "opt") == opt
    assert find_dataset_dir(layout, opt) == opt  # a root may be the data set folder itself
    assert find_dataset_dir(layout) == env
    monkeypatch.delenv("DDFAD_DATA")
    assert find_dataset_dir(layout) == cache
    # a named place that lacks the data set is an error, even though env/cache would have it
    monkeypatch.setenv("DDFAD_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError):
        find_dataset_dir(layout, tmp_path / "elsewhere")
    # an env root without the data set falls through to the cache
    monkeypatch.setenv("DDFAD_DATA", str(tmp_path / "empty"))
    assert find_dataset_dir(layout) == cache


def test_list_clips_finds_real_fsdd_in_cache(tmp_path, monkeypatch, data_root):
    real = find_dataset_dir(LAYOUTS["fsdd"], data_root) / "recordings"
    target = tmp_path / "cache" / "data" / "fsdd"
    target.mkdir(parents=True)
    (target / "recordings").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DDFAD_DATA", raising=False)
    clips = list_clips("fsdd", "test")
    assert clips.root == target.resolve() and len(clips) == 300
    monkeypatch.setenv("DDFAD_DATA", str(data_root))
    assert list_clips("fsdd", "test").root == real.parent.resolve()


def test_fix_length_batched():
    x = torch.arange(12.0).reshape(2, 6)
    assert torch.equal(fix_length(x, 4), x[:, :4])
    y = fix_length(x, 8)
    assert y.shape == (2, 8) and torch.equal(y[:, :6], x) and not y[:, 6:].any()



# ------------------------------------------------------------------------------------- folder sets: groups, cropping


@pytest.fixture
def speakers_folder(fsdd_root: Path, tmp_path: Path) -> Path:
    """3 digits x 4 FSDD speakers x 2 takes, flat class folders (no train/test): 24 real clips."""
    import shutil

    root = tmp_path / "speakers"
    for digit in "012":
        (root / digit).mkdir(parents=True)
        for speaker in ("jackson", "nicolas", "theo", "yweweler"):
            for take in range(2):
                shutil.copy(fsdd_root / "recordings" / f"{digit}_{speaker}_{take}.wav", root / digit)
    (root / "manifest.json").write_text(json.dumps({"sample_rate": 8000, "duration": 0.3}))
    return root


def speakers_of(clips) -> set[str]:
    return {p.name.split("_")[1] for p in clips.paths}


def test_grouped_split_keeps_every_speaker_on_one_side(speakers_folder: Path) -> None:
    from ddfad_apps.data.folder import list_folder

    # by file, one speaker's clips land on both sides (the issue)
    plain = [list_folder(speakers_folder, s, test_fraction=0.25) for s in ("train", "test")]
    assert speakers_of(plain[0]) & speakers_of(plain[1])
    for seed in range(4):
        train, test = (list_folder(speakers_folder, s, test_fraction=0.25, seed=seed,
                                   group_pattern=r"_(?P<group>[a-z]+)_") for s in ("train", "test"))
        assert speakers_of(train).isdisjoint(speakers_of(test)) and len(speakers_of(test)) == 1
        assert len(train) + len(test) == 24 and set(train.labels) == set(test.labels) == {0, 1, 2}
    # the same from the manifest's group map
    manifest = json.loads((speakers_folder / "manifest.json").read_text())
    groups = {p.name: p.name.split("_")[1] for p in speakers_folder.rglob("*.wav")}
    (speakers_folder / "manifest.json").write_text(json.dumps({**manifest, "groups": groups}))
    train, test = (list_folder(speakers_folder, s, test_fraction=0.25) for s in ("train", "test"))
    assert speakers_of(train).isdisjoint(speakers_of(test))
    with pytest.raises(ValueError, match="does not match file name"):
        list_folder(speakers_folder, "train", group_pattern=r"^speaker(\d+)")
    # a split given as train/ and test/ folders is kept, and its clips still carry their groups (for the carve)
    split_root = speakers_folder.parent / "given_split"
    for wav in speakers_folder.rglob("*.wav"):
        side = "test" if wav.name.split("_")[1] == min(speakers_of(train)) else "train"
        (split_root / side / wav.parent.name).mkdir(parents=True, exist_ok=True)
        (split_root / side / wav.parent.name / wav.name).symlink_to(wav)
    given = {s: list_folder(split_root, s, group_pattern=r"_(?P<group>[a-z]+)_") for s in ("train", "test")}
    assert len(speakers_of(given["test"])) == 1 and speakers_of(given["train"]).isdisjoint(speakers_of(given["test"]))
    assert given["train"].meta["groups"] == [p.name.split("_")[1] for p in given["train"].paths]
    assert "groups" not in list_folder(split_root, "train").meta  # no pattern, no groups: the carve stays stratified


def test_cropped_clips_are_counted_in_a_warning(speakers_folder: Path, monkeypatch, tmp_path: Path) -> None:
    from ddfad_apps.data.clips import CroppedClipsWarning
    from ddfad_apps.features import load_features

    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    lengths = sorted(sf.info(str(p)).duration for p in speakers_folder.rglob("*.wav"))
    longest, longer = lengths[-1], sum(x > 0.3 for x in lengths)
    assert 0 < longer < 24
    with pytest.warns(CroppedClipsWarning) as caught:
        load_features(str(speakers_folder), progress=False)  # the manifest's 0.3 s
    message = str(caught[0].message)
    assert message.startswith(f"{longer} of 24 clips ({100 * longer / 24:.0f}%)")
    assert "longer than 0.30 s and were cropped" in message and f"pass --duration {longest:.2f}" in message
    cut = lengths[17]  # 6 clips are longer than this one
    with pytest.warns(CroppedClipsWarning, match=r"^6 of 24 clips \(25%\)"):
        load_features(str(speakers_folder), duration=cut, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CroppedClipsWarning)
        load_features(str(speakers_folder), duration=longest + 0.01, progress=False)  # none cropped: no warning
