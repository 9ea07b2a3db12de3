"""One writer per run folder and cache entry, damaged files moved aside and rebuilt, a safe --force, and
``ddfad-apps cache list|clear``.

No real data: a tiny random feature set ``(40, 3, 20, 16)`` and ConvNets of width 8, so every test takes
seconds; the two-process tests start real Python processes (a barrier makes them overlap).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from ddfad_apps.cli.main import cli
from ddfad_apps.distill import experts as experts_mod
from ddfad_apps.distill.experts import ExpertSettings, expert_file, train_experts
from ddfad_apps.distill.mtt import MTTDistiller, MTTSettings
from ddfad_apps.distill.run_folder import (
    MARKER_FILE,
    ForeignRunError,
    prepare_run_folder,
    release_run_folder,
)
from ddfad_apps.features.cache import load_or_build
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.storage import (
    CorruptFileWarning,
    FileLock,
    is_locked,
    lock_path,
    locked,
)


def tiny_set() -> FeatureSet:
    g = torch.Generator().manual_seed(0)
    return FeatureSet(torch.randn(40, 3, 20, 16, generator=g), torch.arange(4).repeat(10), list("abcd"))


def tiny_experts(num: int = 2, epochs: int = 2) -> ExpertSettings:
    return ExpertSettings(model_kwargs={"width": 8}, num_experts=num, epochs=epochs, batch_size=20)


# the same tiny set and settings in the child processes
TINY_SET = ("import torch\nfrom ddfad_apps.features.dataset import FeatureSet\n"
            "from ddfad_apps.distill.experts import ExpertSettings\n"
            + inspect.getsource(tiny_set) + inspect.getsource(tiny_experts))
REPO = Path(__file__).resolve().parents[1]


def _children(script: str, args: list[list[str]], timeout: float = 120) -> list[str]:
    """Run ``script`` in one Python process per argument list, all at once; their stdout (each must succeed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=REPO) for a in args]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"child failed:\n{err}"
        outs.append(out)
    return outs


BARRIER = """
import os, sys, time
from pathlib import Path
def barrier(folder: Path, n: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    while len(list(folder.iterdir())) < n:
        time.sleep(0.02)
"""

TWO_RUNS_SCRIPT = TINY_SET + BARRIER + """
import json
torch.set_num_threads(1)
from ddfad_apps.distill import experts as E
from ddfad_apps.distill.run_folder import prepare_run_folder
from ddfad_apps.features.cache import load_or_build
work, role = Path(sys.argv[1]), sys.argv[2]
report = {}

def log(name: str) -> None:  # one line per thing this process built or trained
    with open(work / name, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(1.0)  # hold the entry's lock long enough for the other process to want it too

# 1. a feature cache entry
def build() -> dict:
    log("features.log")
    s = tiny_set()
    return {"features": s.features, "labels": s.labels}

barrier(work / "barrier-1")
report["features"] = load_or_build(work / "features" / "x-train-key.pt", build)["features"].sum().item()

# 2. an expert folder: build_model is called once per expert a process trains
real_build = E.build_model

def counting_build(*a, **k):
    log("experts.log")
    return real_build(*a, **k)

E.build_model = counting_build
barrier(work / "barrier-2")
bank = E.train_experts(tiny_set(), tiny_experts(), root=work / "experts", progress=False)
report["experts"] = [t.sum().item() for t in bank.trajectories]

# 3. a run folder: the first 'distils' while holding it; the second arrives meanwhile (the lock goes at exit)
out = work / "run"
if role == "second":
    while not (work / "first-holds").exists():
        time.sleep(0.02)
report["run"] = prepare_run_folder(out, {"cpc": 1})
if role == "first":
    (work / "first-holds").touch()
    time.sleep(1.5)
    (out / "distilled.json").write_text("{}")
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, dict, dict]:
    """Two processes doing the same work at the same time (one pair for three tests: starting torch is slow)."""
    work = tmp_path_factory.mktemp("two-runs")
    first, second = _children(TWO_RUNS_SCRIPT, [[str(work), "first"], [str(work), "second"]])
    return work, json.loads(first), json.loads(second)


def test_two_identical_runs_train_each_expert_once(two_runs):
    work, first, second = two_runs
    trained = (work / "experts.log").read_text().split()
    assert len(trained) == 2, f"2 experts, trained {len(trained)} times: {trained}"
    assert first["experts"] == second["experts"]  # the second process got the first one's experts
    folder = experts_mod.expert_folder(tiny_set(), tiny_experts(), work / "experts")
    files = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))
    assert files == ["expert_000.safetensors", "expert_001.safetensors"]  # no temporaries or partials left
    for k in range(2):
        assert load_file(str(expert_file(folder, k)))["trajectory"].shape[0] == 3


def test_two_processes_build_one_feature_cache_entry_once(two_runs):
    work, first, second = two_runs
    assert len((work / "features.log").read_text().split()) == 1
    assert first["features"] == second["features"]
    saved = torch.load(work / "features" / "x-train-key.pt", weights_only=True)
    assert torch.equal(saved["features"], tiny_set().features)


def test_a_second_identical_run_waits_for_the_first_and_finds_it_complete(two_runs):
    _, first, second = two_runs
    assert (first["run"], second["run"]) == ("new", "complete")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def test_truncated_expert_is_named_moved_aside_and_retrained(tmp_path):
    torch.set_num_threads(1)
    settings = tiny_experts(num=1)
    clean = train_experts(tiny_set(), settings, root=tmp_path, progress=False)
    final = expert_file(clean.folder, 0)
    _truncate(final)
    with pytest.warns(CorruptFileWarning, match=str(final)):
        again = train_experts(tiny_set(), settings, root=tmp_path, progress=False)
    assert len(_moved_aside(final)) == 1
    torch.testing.assert_close(again.trajectories[0], clean.trajectories[0])  # retrained to the same result
    torch.testing.assert_close(load_file(str(final))["trajectory"], clean.trajectories[0])


def test_truncated_partial_expert_is_moved_aside_and_trained_from_scratch(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    settings = tiny_experts(num=1, epochs=3)
    clean = train_experts(tiny_set(), settings, root=tmp_path / "a", progress=False)
    folder = experts_mod.expert_folder(tiny_set(), settings, tmp_path / "b")
    folder.mkdir(parents=True)
    partial = folder / "expert_000.partial.pt"
    partial.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    with pytest.warns(CorruptFileWarning, match=str(partial)):
        again = train_experts(tiny_set(), settings, root=tmp_path / "b", progress=False)
    assert len(_moved_aside(partial)) == 1
    torch.testing.assert_close(again.trajectories[0], clean.trajectories[0])


def test_truncated_mtt_checkpoint_is_moved_aside_and_the_run_starts_again(tmp_path):
    torch.set_num_threads(1)
    train = tiny_set()
    bank = train_experts(train, tiny_experts(num=1), root=tmp_path, progress=False)
    mtt = MTTSettings(syn_steps=2, expert_epochs=1, max_start_epoch=1, iterations=2, batch_syn=8,
                      checkpoint_every=1)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    reference = MTTDistiller(train, 2, bank, mtt, "convnet", {"width": 8}, seed=1).run(progress=False)
    MTTDistiller(train, 2, bank, mtt, "convnet", {"width": 8}, seed=1).run(checkpoint=ckpt, progress=False)
    _truncate(ckpt)
    again = MTTDistiller(train, 2, bank, mtt, "convnet", {"width": 8}, seed=1)
    with pytest.warns(CorruptFileWarning, match=str(ckpt)):
        result = again.run(checkpoint=ckpt, progress=False)
    assert len(_moved_aside(ckpt)) == 1
    assert again.iteration == 2 and len(result.meta["losses"]) == 2  # ran from the start, not from the wreck
    torch.testing.assert_close(result.features, reference.features)
    assert torch.load(ckpt, weights_only=True)["iteration"] == 2  # a good checkpoint was written again
    assert not lock_path(ckpt).exists()  # the checkpoint's lock file goes with the run


def test_truncated_feature_cache_entry_is_named_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "features" / "fsdd-train-abc.pt"
    s = tiny_set()
    load_or_build(path, lambda: {"features": s.features, "labels": s.labels})
    _truncate(path)
    with pytest.warns(CorruptFileWarning, match=str(path)):
        rebuilt = load_or_build(path, lambda: {"features": s.features, "labels": s.labels})
    assert torch.equal(rebuilt["features"], s.features)
    assert len(_moved_aside(path)) == 1
    assert torch.equal(torch.load(path, weights_only=True)["labels"], s.labels)


def test_force_replaces_only_folders_this_toolkit_made(tmp_path):
    req = {"dataset": "fsdd", "method": "mtt", "cpc": 10}
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text(json.dumps({"job": "someone else's"}))
    (foreign / "results.csv").write_text("precious")
    with pytest.raises(ForeignRunError, match=MARKER_FILE):
        prepare_run_folder(foreign, req, force=True)
    assert (foreign / "results.csv").read_text() == "precious"
    assert sorted(p.name for p in foreign.iterdir()) == ["results.csv", "run.json"]  # nothing written into it

    ours = tmp_path / "ours"
    assert prepare_run_folder(ours, req) == "new"
    assert (ours / MARKER_FILE).exists()
    (ours / "distilled.json").write_text("{}")
    (ours / "audio").mkdir()
    assert prepare_run_folder(ours, {**req, "cpc": 1}, force=True) == "new"
    assert not (ours / "distilled.json").exists() and not (ours / "audio").exists()
    assert json.loads((ours / "run.json").read_text())["cpc"] == 1
    release_run_folder(ours)


def test_a_damaged_run_json_is_named(tmp_path):
    out = tmp_path / "run"
    prepare_run_folder(out, {"cpc": 1})
    release_run_folder(out)
    (out / "run.json").write_text('{"cpc": ')
    with pytest.raises(ForeignRunError, match="run.json is unreadable"):
        prepare_run_folder(out, {"cpc": 1})
    assert prepare_run_folder(out, {"cpc": 1}, force=True) == "new"  # ours (marked): --force may replace it
    release_run_folder(out)


def test_lock_file_deleted_while_held_still_admits_one_holder(tmp_path):
    target = tmp_path / "entry"
    a = FileLock(lock_path(target), remove_on_release=True)
    assert a.acquire(blocking=False)
    assert is_locked(target)
    b = FileLock(lock_path(target))
    assert not b.acquire(blocking=False)
    a.release()  # deletes the lock file while holding it
    assert not lock_path(target).exists() and not is_locked(target)
    assert b.acquire(blocking=False)
    b.release()


# -- ddfad-apps cache ---------------------------------------------------------------------------------------


def _fill_cache(root: Path) -> dict[str, Path]:
    feats = root / "features" / "fsdd-train-abc.pt"
    feats.parent.mkdir(parents=True)
    torch.save({"features": torch.zeros(4, 3), "labels": torch.zeros(4)}, feats)
    (root / "features" / "fsdd-test-old.pt.corrupt-20240101-000000").write_bytes(b"x" * 10)
    (root / "features" / ".fsdd-test-zzz.pt.999999999-abcd.tmp").write_bytes(b"x" * 10)  # writer long gone
    expert = root / "experts" / "0123456789abcdef0123"
    expert.mkdir(parents=True)
    (expert / "expert_000.safetensors").write_bytes(b"e" * 1000)
    busy = root / "experts" / "busy0123456789abcdef"
    busy.mkdir()
    (busy / "expert_000.safetensors").write_bytes(b"e" * 500)
    proxy = root / "nas" / "proxies" / "fsdd-mtt-cpc20-fast-seed0-abc"
    proxy.mkdir(parents=True)
    (proxy / "distilled.json").write_text("{}")
    truths = root / "nas" / "truths"
    truths.mkdir(parents=True)
    (truths / "fsdd-recipe-data.json").write_text("{}")
    data = root / "data" / "fsdd"
    data.mkdir(parents=True)
    (data / "a.wav").write_bytes(b"w" * 2000)
    return {"features": feats, "expert": expert, "busy": busy, "proxy": proxy, "data": data}


def test_cache_list_shows_each_cache_with_counts_and_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path))
    paths = _fill_cache(tmp_path)
    with locked(paths["busy"], shared=True):  # a job using these experts
        res = CliRunner().invoke(cli, ["cache", "list", "-v"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line and not line.startswith(" ")}
    assert "1 entries" in lines["features"] and "2 temporary/corrupt" in lines["features"]
    assert "2 entries" in lines["experts"] and "1 in use" in lines["experts"] and "1.5 KiB" in lines["experts"]
    assert "1 entries" in lines["nas-proxies"]
    assert "1 entries" in lines["nas-truths"]
    assert "1 entries" in lines["data"] and "2.0 KiB" in lines["data"]
    assert "busy0123456789abcdef" in res.output and "IN USE" in res.output


def test_cache_clear_trims_safely(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("DDFAD_CACHE", str(root))
    paths = _fill_cache(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the cache's")
    (root / "nas" / "proxies" / "linked").symlink_to(outside, target_is_directory=True)
    runner = CliRunner()

    res = runner.invoke(cli, ["cache", "clear"], input="n\n")  # asks first; "no" deletes nothing
    assert res.exit_code == 1 and paths["features"].exists()
    res = runner.invoke(cli, ["cache", "clear", "--older-than", "1", "--yes"])  # everything is fresh
    assert res.exit_code == 0 and "nothing to clear" in res.output and paths["expert"].exists()

    with locked(paths["busy"], shared=True):
        res = runner.invoke(cli, ["cache", "clear", "--yes"])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "busy0123456789abcdef" in res.output
    assert paths["busy"].exists()  # in use: kept
    assert not paths["expert"].exists() and not paths["features"].exists() and not paths["proxy"].exists()
    assert not list((root / "features").iterdir())  # corrupt and dead temporary files went too
    assert (outside / "keep.txt").exists() and not (root / "nas" / "proxies" / "linked").exists()  # link only
    assert paths["data"].exists()  # downloads only when named
    assert sorted(p.name for p in (root / "experts").iterdir()) == [paths["busy"].name, paths["busy"].name + ".lock"]

    old = time.time() - 3 * 86400
    for used in (paths["busy"] / "expert_000.safetensors", lock_path(paths["busy"])):
        os.utime(used, (old, old))
    res = runner.invoke(cli, ["cache", "clear", "experts", "data", "--older-than", "2", "--yes"])
    assert res.exit_code == 0, res.output
    assert not paths["busy"].exists() and paths["data"].exists()  # only the entry older than 2 days
    res = runner.invoke(cli, ["cache", "clear", "data", "--yes"])
    assert not paths["data"].exists()
