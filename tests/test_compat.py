"""No silent wrong answers: how data sets are named and recorded, damaged set files, sets evaluated on data they do
not describe, feature settings that cannot be honoured, and NaN inputs.

Everything here runs on small made-up tensors and empty files, in well under a second per test; the CLI tests
(tests/test_distill_cli.py, tests/test_train_cli.py) go through the same checks on real FSDD clips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar  # module level: dataclasses resolve string annotations here

import pytest
import torch
from safetensors.torch import load_file, save_file

from ddfad_apps.data.registry import (
    DatasetChangedError, dataset_from_record, folder_fingerprint, resolve_dataset, short_name,
)
from ddfad_apps.distill import SyntheticSet, distill, evaluate
from ddfad_apps.distill.compat import IncompatibleSetError, NonFiniteInputError, check_compatible, check_finite
from ddfad_apps.distill.synthetic_set import META_FILE, TENSORS_FILE, InvalidSetError
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.features.normalize import FeatureStats

CLASSES = ["a", "b", "c"]
SHAPE = (3, 4, 5)


def make_folder(root: Path, classes=("a", "b"), clips: int = 2) -> Path:
    """A class-folder data set of empty 'clips' (the fingerprint only reads names and sizes)."""
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(clips):
            (root / c / f"{i}.wav").write_bytes(b"x" * (10 + i))
    return root


def feature_set(n_per_class: int = 4, classes=CLASSES, shape=SHAPE, seed: int = 0, **meta) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(classes)).repeat_interleave(n_per_class)
    base = {"features": FeatureConfig(n_coeffs=shape[1]).as_dict(), "sample_rate": 8000, "duration": 1.0}
    return FeatureSet(torch.randn(len(labels), *shape, generator=g), labels, list(classes), {**base, **meta})


def synthetic(data: FeatureSet, stats: FeatureStats | None = None) -> SyntheticSet:
    idx = torch.cat([data.class_indices(c)[:2] for c in range(data.num_classes)])
    meta = {k: data.meta[k] for k in ("features", "sample_rate", "duration")}
    return SyntheticSet(data.features[idx].clone(), data.labels[idx].clone(), list(data.classes), "random",
                        None, stats, meta)


# --- one rule for what --dataset names and how a run records it -------------------------------------------


def test_registered_name_wins_and_folders_are_named_by_their_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "fsdd")  # a folder that shadows a registered name in the working directory
    digits = make_folder(tmp_path / "digits")
    assert resolve_dataset("FSDD").folder is None and short_name("fsdd") == "fsdd"
    assert resolve_dataset("./fsdd").folder == tmp_path / "fsdd"  # the folder is still reachable as a path
    for spelling in ("digits", "digits/", str(digits), "./digits/../digits"):
        ref = resolve_dataset(spelling)
        assert (ref.name, ref.folder) == ("digits", digits)
    monkeypatch.chdir(digits)
    assert short_name(".") == "digits"  # not "" (the old Path(".").name)
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        resolve_dataset("nope")


def test_folder_record_finds_the_same_data_from_anywhere_and_notices_changes(tmp_path, monkeypatch):
    digits = make_folder(tmp_path / "data" / "digits")
    monkeypatch.chdir(tmp_path / "data")
    record = resolve_dataset("digits").record()
    assert record == {"name": "digits", "folder": str(digits), "fingerprint": folder_fingerprint(digits)}
    assert resolve_dataset("fsdd").record() == "fsdd"

    # Another working directory holding another folder of the same name: the record still finds the original.
    decoy = make_folder(tmp_path / "elsewhere" / "digits", classes=("x", "y", "z"))
    monkeypatch.chdir(decoy.parent)
    assert dataset_from_record(record).folder == digits
    assert dataset_from_record("fsdd").folder is None

    (digits / "a" / "2.wav").write_bytes(b"new clip")
    with pytest.raises(DatasetChangedError, match="changed since"):
        dataset_from_record(record)
    assert dataset_from_record(record, override=str(digits)).folder == digits  # the user's explicit choice
    (digits / "a" / "2.wav").unlink()
    assert dataset_from_record(record).folder == digits
    (digits / "a" / "0.wav").write_bytes(b"resized")
    with pytest.raises(DatasetChangedError, match="changed since"):
        dataset_from_record(record)

    gone = dict(record, folder=str(tmp_path / "moved-away"))
    with pytest.raises(DatasetChangedError, match="does not exist any more"):
        dataset_from_record(gone)
    # Older run folders recorded a folder by its last name only: never resolved against the working directory.
    with pytest.raises(ValueError, match="names no folder location.*--dataset DIR"):
        dataset_from_record("digits")


def test_fingerprint_sees_manifest_edits_but_not_hidden_files(tmp_path):
    digits = make_folder(tmp_path / "digits")
    (digits / "manifest.json").write_text(json.dumps({"sample_rate": 8000}))
    before = folder_fingerprint(digits)
    (digits / ".DS_Store").write_text("finder")
    assert folder_fingerprint(digits) == before
    (digits / "manifest.json").write_text(json.dumps({"sample_rate": 16000}))  # same size, other rate
    assert folder_fingerprint(digits) != before


# --- damaged set files -----------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> Path:
    data = feature_set()
    return synthetic(data, FeatureStats.fit(data.features)).save(tmp_path / "set")


def _edit_tensors(folder: Path, **changes) -> None:
    tensors = load_file(str(folder / TENSORS_FILE))
    for k, v in changes.items():
        if v is None:
            tensors.pop(k)
        else:
            tensors[k] = v
    save_file(tensors, str(folder / TENSORS_FILE))


def _edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    meta.update(changes)
    (folder / META_FILE).write_text(json.dumps(meta))


def _truncate(folder: Path) -> None:
    path = folder / TENSORS_FILE
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])


def _nan_features(folder: Path) -> None:
    features = load_file(str(folder / TENSORS_FILE))["features"]
    features[1, 0, 0, 0] = float("nan")
    features[4, 2, 1, 3] = float("inf")
    _edit_tensors(folder, features=features)


TAMPERING = {
    "truncated safetensors": (_truncate, TENSORS_FILE, "not a readable safetensors file"),
    "json not json": (lambda f: (f / META_FILE).write_text("{\"classes\": [\"a\","), META_FILE, "not valid JSON"),
    "classes missing": (lambda f: _edit_meta(f, classes=None), META_FILE, "'classes' must be a non-empty list"),
    "class named twice": (lambda f: _edit_meta(f, classes=["a", "a", "c"]), META_FILE, "names a class twice"),
    "negative lr": (lambda f: _edit_meta(f, lr=-1), META_FILE, "'lr'"),
    "labels missing": (lambda f: _edit_tensors(f, labels=None), TENSORS_FILE, r"lacks tensor\(s\) \['labels'\]"),
    "fewer labels than clips": (lambda f: _edit_tensors(f, labels=torch.tensor([0, 1, 2])), TENSORS_FILE,
                                "6 clips of features but 3 labels"),
    "label out of range": (lambda f: _edit_tensors(f, labels=torch.tensor([0, 0, 1, 1, 2, 7])), TENSORS_FILE,
                           r"outside 0..2 .* label 7 at index 5"),
    "class without clips": (lambda f: _edit_tensors(f, labels=torch.tensor([0, 0, 1, 1, 1, 1])), TENSORS_FILE,
                            r"\['c'\] have no clips"),
    "features not 4-d": (lambda f: _edit_tensors(f, features=torch.zeros(6, 60)), TENSORS_FILE,
                         "'features' must be a float tensor"),
    "float labels": (lambda f: _edit_tensors(f, labels=torch.zeros(6)), TENSORS_FILE, "1-D integer tensor"),
    "nan features": (_nan_features, TENSORS_FILE, r"NaN/inf in 2 of 6 clip\(s\), e.g. index 1, 4"),
    "stats of other shape": (lambda f: _edit_tensors(f, stats_mean=torch.zeros(3, 7, 1)), TENSORS_FILE,
                             r"shape \(3, 4, 1\)"),
    "zero std": (lambda f: _edit_tensors(f, stats_std=torch.zeros(3, 4, 1)), TENSORS_FILE, "std <= 0"),
    "half the stats": (lambda f: _edit_tensors(f, stats_std=None), TENSORS_FILE, "only one of"),
    "feature settings invalid": (lambda f: _edit_meta(f, meta={"features": {"n_coeffs": 500}}), META_FILE,
                                 "not a valid feature configuration"),
    "feature settings do not fit": (lambda f: _edit_meta(f, meta={"features": {"n_coeffs": 13}}), META_FILE,
                                    r"3 channel\(s\) x 13 coefficients but the features are \(3, 4\)"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_damaged_set_file_is_one_clear_error_naming_file_and_fault(saved: Path, case: str):
    tamper, file, fault = TAMPERING[case]
    SyntheticSet.load(saved)  # intact: loads
    tamper(saved)
    with pytest.raises(InvalidSetError, match=fault) as info:
        SyntheticSet.load(saved)
    assert str(saved / file) in str(info.value)


def test_intact_set_round_trips(saved: Path):
    syn = SyntheticSet.load(saved)
    assert len(syn) == 6 and syn.classes == CLASSES and syn.stats is not None
    assert syn.meta["sample_rate"] == 8000


# --- a set is evaluated only on data it describes ----------------------------------------------------------


def test_compatible_set_passes_and_every_difference_is_named():
    data = feature_set()
    stats = FeatureStats.fit(data.features)
    syn = synthetic(data, stats)
    check_compatible(syn, data, stats)  # the data it came from: fine

    cases = {
        "classes differ (set has 3": feature_set(classes=["a", "b", "c", "d"]),
        "same classes in another order": feature_set(classes=["b", "a", "c"]),
        "feature settings differ (set vs data: n_coeffs 4 vs 13)": feature_set(
            features=FeatureConfig(n_coeffs=13).as_dict()),
        "sample rate differs (set 8000, data 16000)": feature_set(sample_rate=16000),
        "clip length (s) differs": feature_set(duration=3.0),
        "input shape differs (set (3, 4, 5), data (3, 4, 9))": feature_set(shape=(3, 4, 9)),
    }
    for expected, other in cases.items():
        with pytest.raises(IncompatibleSetError) as info:
            check_compatible(syn, other, FeatureStats.fit(other.features) if other.input_shape == SHAPE else None)
        assert expected in str(info.value), (expected, str(info.value))

    other = feature_set(seed=1)  # same description, other clips: only the statistics tell
    with pytest.raises(IncompatibleSetError, match="normalisation statistics differ") as info:
        check_compatible(syn, other, FeatureStats.fit(other.features))
    assert len(info.value.differences) == 1


def test_library_evaluate_refuses_a_set_of_other_classes():
    data = feature_set()
    syn = synthetic(data)
    test = feature_set(classes=[str(d) for d in range(10)], n_per_class=1)
    with pytest.raises(IncompatibleSetError, match="classes differ"):
        evaluate(syn, test, seeds=1, progress=False)


# --- options and inputs that cannot be honoured are refused -----------------------------------------------


def test_feature_settings_that_cannot_be_honoured_are_refused():
    with pytest.raises(ValueError, match="500 cepstral coefficients requested but the DCT of 40 mel bands"):
        FeatureConfig(n_coeffs=500)
    FeatureConfig(kind="lpcc", n_coeffs=60)  # LPCC's cepstrum is not bounded by the mel bands
    with pytest.raises(ValueError, match="delta_width must be an odd integer"):
        FeatureConfig(delta_width=4)
    with pytest.raises(ValueError, match="pre_emphasis"):
        FeatureConfig(pre_emphasis=1.5)
    FeatureConfig().check(8000, 8000)
    with pytest.raises(ValueError, match="band\\(s\\) would be empty"):
        FeatureConfig(n_mels=200).check(8000, 8000)  # 20 ms at 8 kHz: 129 FFT bins
    with pytest.raises(ValueError, match="lpc_order 200"):
        FeatureConfig(kind="lpcc", lpc_order=200).check(8000, 8000)
    with pytest.raises(ValueError, match="fewer than the 9-frame delta window"):
        FeatureConfig().check(8000, 800)  # 0.1 s: 5 frames
    with pytest.raises(ValueError, match="hop of 0 samples"):
        FeatureConfig(hop_ms=0.01).check(8000, 8000)


def test_nan_training_features_are_named_before_distilling():
    data = feature_set()
    data.features[2, 1, 0, 0] = float("nan")
    data.features[7, 0, 3, 4] = float("-inf")
    with pytest.raises(NonFiniteInputError, match=r"training features contain NaN/inf in 2 of 12 clip\(s\), "
                                                  r"e.g. index 2, 7"):
        distill(data, 2, "random", progress=False)
    check_finite(feature_set().features, "clean features")


def test_a_knob_added_later_keeps_cache_keys_at_its_default() -> None:
    """Sets cached before ``MTTSettings.segments`` existed keep their keys: DIGEST_NEUTRAL fields at their default
    are left out of the digest (nested too, as in ``MTTPlan``); any other value, or any other field, changes it."""
    import dataclasses

    from ddfad_apps.distill.fingerprint import settings_digest
    from ddfad_apps.distill.mtt import MTTSettings
    from ddfad_apps.distill.presets import MTTPlan, method_settings

    @dataclasses.dataclass
    class Before:
        lr: float = 0.1
        steps: tuple = (1, 2)

    @dataclasses.dataclass
    class After:
        DIGEST_NEUTRAL: ClassVar[tuple[str, ...]] = ("extra",)
        lr: float = 0.1
        steps: tuple = (1, 2)
        extra: int = 1

    old = settings_digest(Before(), {"k": Before()})
    assert settings_digest(After(), {"k": After()}) == old
    assert settings_digest(After(extra=2), {"k": After()}) != old
    assert settings_digest(After(lr=0.2), {"k": After()}) != settings_digest(Before(lr=0.1), {"k": Before()})
    plan = method_settings("mtt", "fast", 10, 1000, backprop_steps=None)  # every knob at its default
    assert isinstance(plan, MTTPlan) and set(MTTSettings.DIGEST_NEUTRAL) == {"segments", "segment_threads",
                                                                            "backprop_steps"}
    assert settings_digest(plan) != settings_digest(dataclasses.replace(plan, mtt=dataclasses.replace(plan.mtt,
                                                                                                     segments=2)))
    assert settings_digest(plan) != settings_digest(dataclasses.replace(plan, mtt=dataclasses.replace(plan.mtt,
                                                                                                     backprop_steps=4)))
    as_dicts = dataclasses.asdict(plan)
    for key in MTTSettings.DIGEST_NEUTRAL:
        del as_dicts["mtt"][key]
    assert settings_digest(plan) == settings_digest(as_dicts)  # = the key before the knobs existed
