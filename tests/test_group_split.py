"""``ddfad-apps data split``: held-out-group splits of the real data sets, written as folders of links."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ddfad_apps.cli.main import cli
from ddfad_apps.data.group_split import write_group_split
from ddfad_apps.data.ravdess import CLASSES as RAVDESS_CLASSES
from ddfad_apps.data.registry import list_clips


def _links(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_symlink())


def test_fsdd_speakers_held_out_are_only_on_the_test_side_and_the_carve_keeps_speakers_whole(tmp_path, data_root):
    made = write_group_split("fsdd", ["nicolas", "lucas"], tmp_path / "split", data_root=data_root)
    assert made.test_groups == ("lucas", "nicolas")
    assert made.train_groups == ("george", "jackson", "theo", "yweweler")
    assert (made.train_clips, made.test_clips) == (2000, 1000)
    test_speakers = {p.name.split("_")[1] for p in _links(made.folder / "test")}
    train_speakers = {p.name.split("_")[1] for p in _links(made.folder / "train")}
    assert test_speakers == {"lucas", "nicolas"} and not train_speakers & test_speakers
    link = _links(made.folder / "test" / "7")[0]
    assert link.resolve().parent == (data_root / "fsdd" / "recordings").resolve()  # a link, nothing copied
    assert link.name.startswith("7_")  # filed under its own class
    train = list_clips(str(made.folder), "train")
    assert len(train) == 2000 and set(train.meta["groups"]) == set(made.train_groups)  # the carve can group
    assert len(list_clips(str(made.folder), "test")) == 1000


def test_ravdess_actor_numbers_name_actors_and_a_stratified_carve_leaves_the_pattern_out(tmp_path, data_root):
    made = write_group_split("ravdess", ["9", "10", "11", "12"], tmp_path / "split", data_root=data_root,
                             grouped_carve=False)
    assert made.test_groups == ("09", "10", "11", "12") and made.test_clips == 240
    manifest = json.loads((made.folder / "manifest.json").read_text())
    assert manifest["classes"] == RAVDESS_CLASSES and "group_pattern" not in manifest
    assert manifest["sample_rate"] == 16000 and manifest["source"]["test_groups"] == ["09", "10", "11", "12"]
    test = list_clips(str(made.folder), "test")
    assert test.classes == RAVDESS_CLASSES and "groups" not in test.meta
    assert {int(p.stem.split("-")[-1]) for p in test.paths} == {9, 10, 11, 12}
    assert all(RAVDESS_CLASSES[int(p.stem.split("-")[2]) - 1] == test.classes[y]
               for p, y in zip(test.paths, test.labels))


def test_bad_requests_are_refused_with_the_reason_and_leave_nothing_behind(tmp_path, data_root, monkeypatch):
    with pytest.raises(ValueError, match=r"no group\(s\) \['bob'\]; its groups are george, jackson, lucas"):
        write_group_split("fsdd", ["lucas", "bob"], tmp_path / "a", data_root=data_root)
    with pytest.raises(ValueError, match="name at least one group of fsdd"):
        write_group_split("fsdd", [], tmp_path / "a", data_root=data_root)
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        write_group_split("fsdd", ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"], tmp_path / "b",
                          data_root=data_root)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="already exists"):
        write_group_split("fsdd", ["lucas"], taken, data_root=data_root)
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]

    made = 0
    original = Path.symlink_to

    def fail_midway(self, target, *args, **kwargs):
        nonlocal made
        made += 1
        if made == 500:
            raise OSError("disk full")
        return original(self, target, *args, **kwargs)

    monkeypatch.setattr(Path, "symlink_to", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        write_group_split("fsdd", ["lucas"], tmp_path / "c", data_root=data_root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no half-written split under any name


def test_data_split_command_prints_the_sides_and_names_a_bad_group(tmp_path, data_root):
    runner = CliRunner()
    out = tmp_path / "split"
    res = runner.invoke(cli, ["data", "split", "fsdd", "--test-groups", "theo, yweweler", "--out", str(out),
                              "--data-root", str(data_root)])
    assert res.exit_code == 0, res.output
    assert "train 2000 clips (george, jackson, lucas, nicolas), test 1000 clips (theo, yweweler)" in res.output
    assert f"--dataset {out.resolve()}" in res.output
    res = runner.invoke(cli, ["data", "split", "fsdd", "--test-groups", "carol", "--out", str(tmp_path / "x"),
                              "--data-root", str(data_root)])
    assert res.exit_code != 0 and "fsdd has no group(s) ['carol']" in res.output
