"""``scripts/reproduce_paper.py --smoke``: the whole report path on real FSDD clips, its resume and its repairs."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddfad_apps.distill.mtt import SCALE_FREE_STEPS
from ddfad_apps.distill.synthetic_set import InvalidSetError
from ddfad_apps.paper.cells import SIZES, declare, find_set, set_seeds_of
from ddfad_apps.paper.published import PAPER
from ddfad_apps.paper.tables import summary_of

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, data_root: Path, tracking: str, workers: int = 1):
    from ddfad_apps.paper.command import main

    return main(["--smoke", "--out", str(out), "--data-root", str(data_root), "--tracking-uri", tracking,
                 "--quiet", "--workers", str(workers)])


@pytest.mark.slow
def test_smoke_report_is_complete_resumes_and_repairs(data_root: Path, tmp_path: Path) -> None:
    out, tracking = tmp_path / "paper", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = declare(SIZES["smoke"])
    first = _run(out, data_root, tracking, workers=2)
    assert sorted(first.ran) == sorted(c.key for c in cells) and not first.skipped
    # two processes split the cells: each computed some, none computed one twice
    mine, theirs = first.ran_by["main"], first.ran_by["worker 1"]
    assert mine and theirs and not set(mine) & set(theirs) and sorted(mine + theirs) == sorted(first.ran)

    report = (out / "REPORT.md").read_text()
    for title in ("Table I", "Table II", "Table III", "Table IV", "Fig. 5", "Fig. 6", "Fig. 7", "Fig. 8",
                  "Round trip"):
        assert f"## {title}" in report, title
    assert "--smoke" in report and "torch" in report and "CPUs" in report  # command and machine
    pngs = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", report)
    assert len(pngs) >= 5
    for name in pngs:
        pixels = np.asarray(Image.open(out / name).convert("L"), dtype=float)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 5, name  # not blank

    # every declared cell saved its settings, result and cost; the report's numbers are those of the raw JSON
    for cell in cells:
        record = json.loads((out / "raw" / f"{cell.key}.json").read_text())
        assert record["settings"] == json.loads(json.dumps(cell.params)) and record["cost"]["seconds"] > 0
        assert record["cost"]["peak_rss_mb"] > 50
    mtt = find_set(cells, "fsdd", "mtt", 1)
    ev = json.loads((out / "raw" / f"{mtt.key}.json").read_text())["result"]["evaluations"]["convnet"]
    assert len(ev["per_set_seed"]) == SIZES["smoke"].set_seeds
    assert f"| fsdd | mtt | {summary_of(ev).format()} | {PAPER[('table1', 'fsdd', 'mtt', 1, 'convnet')]:.2f} |" \
        in report
    assert "not given" in report
    # Table I's whole-data column: the carved fit split (all training clips but the validation part) through the
    # same protocol, its rate the validation's best (ties to the lower rate), its row built from the raw JSON
    whole = next(c for c in cells if c.kind == "whole")
    kept = json.loads((out / "raw" / f"{whole.key}.json").read_text())["result"]
    wev = kept["evaluation"]
    assert wev["set"]["method"] == "whole" and kept["fit_clips"] == wev["carve"]["fit_clips"] == wev["set"]["clips"]
    assert kept["fit_clips"] + wev["carve"]["val_clips"] == 2700 and kept["test_clips"] == 300
    best = max(v for v in wev["val_scores"].values() if v is not None)
    assert wev["lr"] == min(float(lr) for lr, v in wev["val_scores"].items() if v == best)
    assert len(wev["accuracies"]) == SIZES["smoke"].eval_seeds
    assert (f"| fsdd | {kept['fit_clips']} / 300 | {SIZES['smoke'].eval_seeds} | {summary_of(wev).format()} | "
            f"{wev['lr']:g} | {PAPER[('whole-data', 'fsdd', 'convnet')]:.2f} |") in report
    assert re.search(r"fsdd mtt CPC 1: [+-]\d+\.\d\d points", report)
    # MTT also from random clips (the preset starts from herding's), its own row, compared with its starting set
    randomstart = find_set(cells, "fsdd", "mtt", 1, start="random")
    kept = json.loads((out / "raw" / f"{randomstart.key}.json").read_text())["result"]
    assert kept["settings"]["mtt"]["init"] == "random" and mtt.params.get("start") is None
    assert json.loads((out / "raw" / f"{mtt.key}.json").read_text())["result"]["settings"]["mtt"]["init"] == "herding"
    assert f"| fsdd | mtt (random start) | {summary_of(kept['evaluations']['convnet']).format()} |" in report
    assert re.search(r"^- fsdd CPC 1: .*interval of mtt \(random start\) - random\b", report, re.MULTILINE)
    # distilled sets are also compared with each other; a grid rate at the grid's edge is flagged (with a grid
    # of two rates, every grid choice is at an edge)
    assert re.search(r"^- fsdd CPC 1: .*\bdm\b.*\bmtt\b", report, re.MULTILINE)
    assert re.search(r"^- fsdd CPC 1 \w+: 0\.0[13], the (highest|lowest) rate tried, on \d of 2 set seeds$", report,
                     re.MULTILINE)
    fig6 = json.loads((out / "raw" / f"{next(c for c in cells if c.kind == 'fig6').key}.json").read_text())
    assert fig6["result"]["shown"] == fig6["result"]["classes"] and len(fig6["result"]["classes"]) == 10

    # a second run computes nothing
    again = _run(out, data_root, tracking)
    assert again.ran == [] and len(again.skipped) == len(cells)
    assert "Partial report" not in (out / "REPORT.md").read_text()

    # --report-only runs nothing and says which cells its report lacks
    nas = next(c for c in cells if c.kind == "nas")
    nas_json = out / "raw" / f"{nas.key}.json"
    kept = nas_json.read_text()
    nas_json.unlink()
    from ddfad_apps.paper.command import main

    partial = main(["--smoke", "--out", str(out), "--report-only", "--quiet"])
    text = (out / "REPORT.md").read_text()
    assert partial.ran == [] and len(partial.skipped) == len(cells) - 1 and not nas_json.exists()
    assert f"Partial report: {len(cells) - 1} of {len(cells)} cells done" in text and f"`{nas.key}`" in text
    assert text.split("## Fig. 8")[1].split("\n", 1)[1].strip().startswith("not run")
    # ... and names the command that makes (and resumes) the cells, not itself
    assert f"made by `python scripts/reproduce_paper.py --smoke --out {out} --quiet`" in text
    nas_json.write_text(kept)

    # a torn cell file and a cell file without its result are computed again, nothing else is
    herding, random = find_set(cells, "fsdd", "herding", 1), find_set(cells, "fsdd", "random", 1)
    path = out / "raw" / f"{herding.key}.json"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    partial = out / "raw" / f"{random.key}.json"
    record = json.loads(partial.read_text())
    del record["result"]
    partial.write_text(json.dumps(record))
    repaired = _run(out, data_root, tracking)
    assert sorted(repaired.ran) == sorted([herding.key, random.key])
    assert json.loads(path.read_text())["result"]["evaluations"]["convnet"]["n"] == SIZES["smoke"].set_seeds

    # inside a set cell: a lost cell record reuses the sets and evaluation its folder kept; a set whose save was
    # cut short (no DONE marker) is made again; a tampered kept set is an error naming its file
    dm = find_set(cells, "fsdd", "dm", 1)
    dm_json, dm_files = out / "raw" / f"{dm.key}.json", out / "raw" / dm.key
    before = json.loads(dm_json.read_text())["result"]
    tensors = (dm_files / "s0" / "distilled.safetensors").read_bytes()
    dm_json.unlink()
    resumed = _run(out, data_root, tracking)
    after = json.loads(dm_json.read_text())["result"]
    assert resumed.ran == [dm.key] and after["resumed"] == {"sets": [0, 1], "targets": ["convnet"]}
    assert after["evaluations"] == before["evaluations"] and after["make_seconds"] == before["make_seconds"]
    assert (dm_files / "s0" / "distilled.safetensors").read_bytes() == tensors
    assert "*" in (out / "REPORT.md").read_text().split("## Table III")[1].split("##")[0]  # marked as resumed
    dm_json.unlink()
    (dm_files / "s1" / "DONE").unlink()
    _run(out, data_root, tracking)
    remade = json.loads(dm_json.read_text())["result"]
    assert remade["resumed"]["sets"] == [0] and (dm_files / "s1" / "DONE").is_file()
    assert remade["make_seconds"][0] == before["make_seconds"][0] != remade["make_seconds"][1]
    dm_json.unlink()
    (dm_files / "s1" / "distilled.safetensors").write_bytes(b"not a set")
    with pytest.raises(InvalidSetError, match=r"s1/distilled\.safetensors"):
        _run(out, data_root, tracking)
    assert not dm_json.exists()


def _runs_in_threads(names: tuple[str, ...], tmp_path: Path, data_root: Path, monkeypatch) -> dict[str, object]:
    """``reproduce("smoke")`` into one folder from one thread per name at once (the report itself not written);
    returns each run's :class:`Reproduction` by thread name."""
    import threading

    import ddfad_apps.paper.report as report_module
    from ddfad_apps.paper.run import reproduce

    monkeypatch.setattr(report_module, "write_report", lambda *args: tmp_path / "REPORT.md")
    done: dict[str, object] = {}

    def run(name: str) -> None:
        done[name] = reproduce("smoke", tmp_path / "paper", data_root, device="cpu", progress=False,
                               say=lambda line: None)

    threads = [threading.Thread(target=run, args=(n,), name=n) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


def test_two_runs_into_one_folder_split_the_cells(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    """Two runs of the report at once compute every cell once between them and both end with every record."""
    import threading
    import time

    import ddfad_apps.paper.run as run_module
    from ddfad_apps.paper.run import reproduce

    computed: list[str] = []

    def fake(cell, ctx):  # stands in for the real work: slow enough that the runs overlap
        computed.append(cell.key)
        time.sleep(0.05)
        return {"by": threading.current_thread().name}, []

    monkeypatch.setattr(run_module, "RUNNERS", {kind: fake for kind in run_module.RUNNERS})
    monkeypatch.setattr(run_module, "JOINERS", {})  # a held cell is waited for (joining: the next tests)
    done = _runs_in_threads(("a", "b"), tmp_path, data_root, monkeypatch)
    keys = sorted(c.key for c in declare(SIZES["smoke"]))
    assert sorted(computed) == keys  # each cell once
    a, b = done["a"], done["b"]
    assert a.ran and b.ran and sorted(a.ran + b.ran) == keys
    assert sorted(a.skipped) == sorted(b.ran) and sorted(b.skipped) == sorted(a.ran)
    assert a.records == b.records and list(a.records) == [c.key for c in declare(SIZES["smoke"])]
    assert {r["result"]["by"] for r in a.records.values()} == {"a", "b"}
    assert not list((tmp_path / "paper" / "raw").glob("*.lock"))  # no lock files left behind

    # a set made again (its record lost) makes every cell that read it stale, whichever run had made them
    source = find_set(declare(SIZES["smoke"]), "fsdd", "mtt", 1)
    (tmp_path / "paper" / "raw" / f"{source.key}.json").unlink()
    again = reproduce("smoke", tmp_path / "paper", data_root, device="cpu", progress=False, say=lambda line: None)
    readers = [c.key for c in declare(SIZES["smoke"]) if source.key in c.needs]
    assert len(readers) == 3 and sorted(again.ran) == sorted([source.key, *readers])


def test_a_run_takes_a_free_left_cell_before_waiting_on_a_held_one(tmp_path: Path) -> None:
    """Cells left while their input was held elsewhere: once the input is done, a free one is computed at once,
    and the run waits on a cell another run holds only when nothing else can go (here: C before held B)."""
    import threading
    import time

    from ddfad_apps.paper.cells import Cell
    from ddfad_apps.paper.run import _visit_all
    from ddfad_apps.paper.store import CellStore
    from ddfad_apps.storage.locks import FileLock, lock_path

    store = CellStore(tmp_path / "out", lambda line: None)
    a = Cell("x", "a", {})
    b, c = Cell("x", "b", {}, needs=(a.key,)), Cell("x", "c", {}, needs=(a.key,))
    other = {cell.name: FileLock(lock_path(store.path(cell))) for cell in (a, b)}  # "another run" holds A and B
    for lock in other.values():
        assert lock.acquire(blocking=False)
    order: list[str] = []

    def release() -> None:
        time.sleep(0.3)
        other["a"].release()  # the other run is done with A (this run then takes it: no record was saved)
        deadline = time.monotonic() + 5
        while "c" not in order and time.monotonic() < deadline:
            time.sleep(0.02)
        other["b"].release()

    helper = threading.Thread(target=release)
    helper.start()
    _visit_all([a, b, c], store, None, lambda cell: order.append(cell.name), lambda line: None)
    helper.join()
    assert order == ["a", "c", "b"]


@pytest.mark.slow
def test_a_second_run_joins_the_nas_cell_instead_of_waiting(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    """The run that finds Fig. 8's cell held works on it (``JOINERS``) while the holder computes it; a saved
    cell is never joined, even while another run holds its lock (joining would train its studies again)."""
    import threading

    import ddfad_apps.paper.run as run_module
    from ddfad_apps.paper.store import CellStore
    from ddfad_apps.storage.locks import FileLock, lock_path

    joined: list[str] = []
    helped = threading.Event()

    def fake(cell, ctx):
        if cell.kind == "nas":
            helped.wait(timeout=20)  # the other run reaches this cell while we hold it
        return {"by": threading.current_thread().name, "joined": helped.is_set()}, []

    def join(cell, ctx):
        joined.append(threading.current_thread().name)
        helped.set()

    monkeypatch.setattr(run_module, "RUNNERS", {kind: fake for kind in run_module.RUNNERS})
    monkeypatch.setattr(run_module, "JOINERS", {"nas": join})
    done = _runs_in_threads(("a", "b"), tmp_path, data_root, monkeypatch)
    (nas,) = [c for c in declare(SIZES["smoke"]) if c.kind == "nas"]
    record = done["a"].records[nas.key]
    other = ({"a", "b"} - {record["result"]["by"]}).pop()
    assert record["result"]["joined"] and joined == [other]

    # the saved cell held by a run that only loads it: the other waits for the lock and joins nothing
    lock = FileLock(lock_path(CellStore(tmp_path / "paper").path(nas)), remove_on_release=True)
    assert lock.acquire(blocking=False)
    later = threading.Thread(target=lambda: done.update(_runs_in_threads(("c",), tmp_path, data_root, monkeypatch)))
    later.start()
    later.join(timeout=1.0)
    assert later.is_alive()  # waiting for the held cell
    lock.release()
    later.join()
    assert joined == [other] and done["c"].records[nas.key] == record


def test_a_set_cell_joiner_makes_and_evaluates_the_sets_and_the_holder_reuses_them(data_root: Path,
                                                                                    tmp_path: Path) -> None:
    """``join_set`` makes every set seed nobody holds (real, smoke-sized MTT sets), then evaluates each one (one
    unit per set seed, so two runs split a cell's evaluations too); the cell's own run then loads them all
    (``resumed``) and neither makes nor evaluates any again."""
    from ddfad_apps.paper.execute import Context, join_set, run_set

    cell = find_set(declare(SIZES["smoke"]), "fsdd", "mtt", 1)
    ctx = Context(tmp_path / "raw", torch.device("cpu"), data_root, say=lambda line: None)
    join_set(cell, ctx)
    done = sorted(p.name for p in ctx.files(cell).iterdir() if (p / "DONE").is_file())
    seeds = range(cell.params["set_seeds"])
    assert [name for name in done if not name.startswith("eval-")] == [f"s{seed}" for seed in seeds]
    targets = cell.params["targets"]
    for target in targets:
        assert sorted(name.split("-")[2] for name in done if name.startswith(f"eval-{target}-")) == \
            [f"s{s}" for s in seeds]
    stamps = {p.name: (p / "DONE").stat().st_mtime_ns for p in ctx.files(cell).iterdir()}
    result, _ = run_set(cell, ctx)
    assert result["resumed"] == {"sets": list(seeds), "targets": targets}
    assert {p.name: (p / "DONE").stat().st_mtime_ns for p in ctx.files(cell).iterdir() if p.name in stamps} == stamps
    assert sorted(result["evaluations"]["convnet"]["runs"]) == [str(s) for s in seeds]


def test_a_set_cell_joiner_evaluates_the_sets_made_while_another_is_still_being_made(data_root: Path,
                                                                                      tmp_path: Path) -> None:
    """A joiner that finishes its set while another run still makes the cell's other set evaluates the finished
    one at once (it used to leave every evaluation to the cell's holder until all sets were made)."""
    from ddfad_apps.paper.execute import Context, join_set, set_folder
    from ddfad_apps.storage.locks import FileLock, lock_path

    cell = find_set(declare(SIZES["smoke"]), "fsdd", "mtt", 1)
    ctx = Context(tmp_path / "raw", torch.device("cpu"), data_root, say=lambda line: None)
    busy = set_folder(ctx, cell.key, 1)
    busy.parent.mkdir(parents=True)
    other_run = FileLock(lock_path(busy))  # another run is making set seed 1
    assert other_run.acquire(blocking=False)
    try:
        join_set(cell, ctx)
    finally:
        other_run.release()
    done = sorted(p.name for p in ctx.files(cell).iterdir() if (p / "DONE").is_file())
    assert "s0" in done and "s1" not in done
    for target in cell.params["targets"]:
        assert [name.split("-")[2] for name in done if name.startswith(f"eval-{target}-")] == ["s0"]


def test_missing_data_is_refused_before_any_work(tmp_path: Path, monkeypatch, capsys) -> None:
    """A data root without the data sets is named in a clear error and nothing is written."""
    from ddfad_apps.paper.command import main

    monkeypatch.delenv("DDFAD_DATA", raising=False)
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exc:
        main(["--smoke", "--out", str(tmp_path / "out"), "--data-root", str(tmp_path / "nothing"), "--quiet"])
    assert "data set 'fsdd'" in str(exc.value) and str(tmp_path / "nothing") in str(exc.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit, match="workers must be at least 1, got 0"):  # not silently the default count
        main(["--smoke", "--out", str(tmp_path / "out"), "--workers", "0", "--quiet"])
    assert not (tmp_path / "out").exists()


def test_sizes_declare_what_the_issue_asks() -> None:
    """The default CPU subset holds Table I on FSDD and RAVDESS at CPC 1 and 10 (random, herding, DM, MTT), Table
    II on FSDD CPC 10, Fig. 5 on FSDD CPC 1 and 10, and at least four noise levels; the extended size adds DC, DSA,
    MTT's random start and the whole training splits, every cell the default has being the very same cell."""
    size = SIZES["default"]
    cells = declare(size)
    for d in ("fsdd", "ravdess"):
        for m in ("random", "herding", "dm", "mtt"):
            for c in (1, 10):
                assert find_set(cells, d, m, c) is not None, (d, m, c)
        assert find_set(cells, d, "dc", 1) is None and find_set(cells, d, "mtt", 1, start="random") is None
    assert not [c for c in cells if c.kind == "whole"] and size.report_file == "REPORT.md"
    lean = {c.key for c in cells}
    size = SIZES["extended"]
    cells = declare(size)
    assert lean < {c.key for c in cells} and size.report_file != "REPORT.md"
    for d in ("fsdd", "ravdess"):
        for m in ("random", "herding", "dc", "dsa", "dm", "mtt"):
            for c in (1, 10):
                assert find_set(cells, d, m, c) is not None, (d, m, c)
    for source in ("convnet", "resnet18", "vgg11"):
        cell = find_set(cells, "fsdd", "mtt", 10, source)
        assert cell is not None and cell.params["targets"] == ["convnet", "resnet18", "vgg11"]
    for feature in ("fd_mfcc", "mfcc", "lpcc"):
        for c in (1, 10):
            assert find_set(cells, "fsdd", "mtt", c, feature=feature) is not None
    assert len([s for s in size.noise["stds"] if s > 0]) >= 4
    # the sets only Table II / Fig. 5 need take their own (fewer) set seeds; a set Table I shares keeps Table I's
    assert find_set(cells, "fsdd", "mtt", 10, "resnet18").params["set_seeds"] == size.table2["set_seeds"] == 1
    assert find_set(cells, "fsdd", "mtt", 1, feature="lpcc").params["set_seeds"] == size.fig5["set_seeds"] == 1
    # a set Table I shares takes Table I's 5 seeds on ConvNet, and Table II's networks the size's 3 (seeds 0-2)
    shared = find_set(cells, "fsdd", "mtt", 10, "convnet")
    assert shared.params["set_seeds"] == size.table1["set_seeds"]["fsdd"] == 5 and size.set_seeds == 3
    assert shared.params["targets"] == ["convnet", "resnet18", "vgg11"]
    assert shared.params["target_seeds"] == {"resnet18": 3, "vgg11": 3}
    assert [set_seeds_of(shared.params, t) for t in shared.params["targets"]] == [[0, 1, 2, 3, 4], [0, 1, 2], [0, 1, 2]]
    noise = next(c for c in cells if c.kind == "noise")
    assert noise.params["source"] == shared.key and set_seeds_of(noise.params) == [0, 1, 2]
    # MTT from random clips as well as from the preset's herding clips, on both data sets at both CPCs, with the
    # data set's Table I seeds (5 on both)
    for d, seeds in (("fsdd", 5), ("ravdess", 5)):
        for c in (1, 10):
            randomstart = find_set(cells, d, "mtt", c, start="random")
            assert randomstart.params["overrides"]["init"] == "random" and randomstart.params["set_seeds"] == seeds
            assert randomstart.key != find_set(cells, d, "mtt", c).key
            assert randomstart.params["set_seeds"] == find_set(cells, d, "mtt", c).params["set_seeds"]
    # the whole training split of every Table I data set, evaluated like the sets
    wholes = {c.params["dataset"]: c for c in cells if c.kind == "whole"}
    assert sorted(wholes) == ["fsdd", "ravdess"]
    assert all(w.params["protocol"] == shared.params["protocol"] and w.params["eval_seeds"] == size.eval_seeds
               for w in wholes.values())
    # a set shared by several tables is one cell; keys differ when settings differ
    assert len({c.key for c in cells}) == len(cells)
    assert {c.key for c in declare(SIZES["smoke"])}.isdisjoint(c.key for c in cells)


def test_a_set_cell_changes_key_when_its_presets_values_change(monkeypatch) -> None:
    """A set kept under the preset's name alone would outlive a change of the preset's values; its key holds a
    digest of those values, so the changed preset makes another cell, while coresets (no values) keep theirs."""
    import ddfad_apps.distill.presets as presets

    size = SIZES["extended"]
    before = {(c.kind, c.name): c.key for c in declare(size)}
    original = presets.mtt_plan

    def one_more_iteration(*args, **kwargs):
        plan = original(*args, **kwargs)
        return presets.MTTPlan(plan.experts, replace(plan.mtt, iterations=plan.mtt.iterations + 1))

    monkeypatch.setattr(presets, "mtt_plan", one_more_iteration)
    after = {(c.kind, c.name): c.key for c in declare(size)}
    changed = {cell for cell in before if before[cell] != after[cell]}
    mtt_sets = {(kind, n) for kind, n in before if kind == "set" and "-mtt-" in n}
    assert len(mtt_sets) == 14  # Table I (4, and 4 from random clips), Table II sources (2), Fig. 5 features (4)
    # so do the cells that read the MTT set (noise, round trip, Fig. 6); no other cell changes
    assert changed == mtt_sets | {
        (kind, "fsdd-mtt-cpc10") for kind in ("noise", "roundtrip", "fig6")}


def test_vgg11_source_matches_with_scale_free_steps_and_no_other_cell_changes() -> None:
    """Table II's VGG11 source distils with the scale-free rule (absolute steps threw its clips out of range); the
    per-source override reaches its settings and leaves every other cell's settings (and key) as they were."""
    from ddfad_apps.paper.execute import method_settings_for

    size = SIZES["default"]
    plain = replace(size, source_overrides={})
    before = {(c.kind, c.name): c for c in declare(plain)}
    after = {(c.kind, c.name): c for c in declare(size)}
    changed = {cell for cell in before if before[cell].key != after[cell].key}
    assert changed == {("set", "fsdd-fd_mfcc-mtt-cpc10-vgg11")}
    vgg11 = method_settings_for(after[("set", "fsdd-fd_mfcc-mtt-cpc10-vgg11")].params, 2430)
    convnet = method_settings_for(after[("set", "fsdd-fd_mfcc-mtt-cpc10-convnet")].params, 2430)
    assert (vgg11.model, vgg11.mtt.steps, vgg11.mtt.lr_img) == ("vgg11", "scale_free", SCALE_FREE_STEPS["lr_img"])
    assert (convnet.mtt.steps, convnet.mtt.lr_img) == ("absolute", 1000.0)


def test_sets_with_other_set_seeds_are_described_not_paired() -> None:
    """Fig. 5 / Table II pair a 3-seed FD-MFCC set with 1-seed sets: no verdict, and no crash (the report-only run
    of the default size stopped here once)."""
    from ddfad_apps.paper.tables import _verdicts

    three = {"per_set_seed": {"0": 0.80, "1": 0.82, "2": 0.79}}
    one = {"per_set_seed": {"0": 0.76}}
    other = {"per_set_seed": {"0": 0.70, "1": 0.71, "2": 0.69}}
    (described,) = _verdicts({"fd_mfcc": three, "mfcc": one}, [("fd_mfcc", "mfcc")])
    assert "not compared (set seeds 0, 1, 2 vs 0" in described
    (paired,) = _verdicts({"fd_mfcc": three, "lpcc": other}, [("fd_mfcc", "lpcc")])
    assert "not compared" not in paired and "fd_mfcc" in paired


def test_table2_says_which_set_seeds_stand_behind_each_entry() -> None:
    """Table I's ConvNet sets have more set seeds on ConvNet (FSDD: 5) than on Table II's other networks (3), and
    the one-seed sources one: the table says so per entry instead of showing means of unequal seed counts unsaid."""
    from ddfad_apps.evidence import summarize
    from ddfad_apps.paper.tables import table2

    size = SIZES["default"]
    cells = declare(size)

    def ev(seeds: list[int]) -> dict:
        values = [0.9 + 0.01 * s for s in seeds]
        s = summarize(values)
        return {"n": s.n, "mean": s.mean, "std": s.std, "ci_low": None, "ci_high": None,
                "per_set_seed": {str(k): v for k, v in zip(seeds, values)}}

    records = {}
    for source in size.table2["networks"]:
        cell = find_set(cells, "fsdd", "mtt", 10, source)
        seeds = {t: set_seeds_of(cell.params, t) for t in cell.params["targets"]}
        records[cell.key] = {"result": {"evaluations": {t: ev(s) for t, s in seeds.items()}}}
    text = table2(size, cells, records)
    assert ("convnet on convnet: 0-4; convnet on resnet18, vgg11: 0-2; resnet18 on convnet, resnet18, vgg11: 0; "
            "vgg11 on convnet, resnet18, vgg11: 0.") in text


def test_a_set_cell_evaluated_another_way_reuses_the_sets_made_the_same_way(data_root: Path, tmp_path: Path,
                                                                           monkeypatch) -> None:
    """A protocol change (here the lr grid) re-keys a set cell but not its sets: they are copied from the cell that
    made them, with their making time and origin; a change to how sets are made (the carve) makes them again."""
    import ddfad_apps.distill as distill_module
    from ddfad_apps.paper.cells import set_cell
    from ddfad_apps.paper.execute import Context, run_set

    ctx = Context(tmp_path / "raw", torch.device("cpu"), data_root, say=lambda line: None)
    smoke = SIZES["smoke"]
    first = set_cell(smoke, "fsdd", "herding", 1)
    made, _ = run_set(first, ctx)

    def refuse(*args, **kwargs):
        raise AssertionError("a set made the same way was made again")

    monkeypatch.setattr(distill_module, "distill", refuse)
    wider = set_cell(replace(smoke, protocol={**smoke.protocol, "lr_grid": (0.003, 0.01, 0.03)}), "fsdd", "herding", 1)
    assert wider.key != first.key
    again, _ = run_set(wider, ctx)
    assert again["make_seconds"] == made["make_seconds"]
    assert again["sets_reused_from"] == {str(s): first.key for s in range(smoke.set_seeds)}
    assert sorted(again["evaluations"]["convnet"]["runs"]["0"]["val_scores"]) == ["0.003", "0.01", "0.03"]
    for seed in range(smoke.set_seeds):
        assert (ctx.raw / wider.key / f"s{seed}" / "distilled.safetensors").read_bytes() == \
            (ctx.raw / first.key / f"s{seed}" / "distilled.safetensors").read_bytes()
    recarved = set_cell(replace(smoke, protocol={**smoke.protocol, "carve_seed": 1}), "fsdd", "herding", 1)
    with pytest.raises(AssertionError, match="made again"):
        run_set(recarved, ctx)


def test_more_set_seeds_reuse_the_sets_and_evaluations_of_the_seeds_done(data_root: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """A set cell given more set seeds (RAVDESS went from 3 to 5) is another cell, but its first seeds' sets and
    their evaluations are the same work: both are copied (an evaluation also from a finished cell's record, the
    form cells evaluated before one unit per set seed), and only the new seed is made and evaluated."""
    import ddfad_apps.distill as distill_module
    import ddfad_apps.evidence as evidence_module
    from ddfad_apps.paper.cells import set_cell
    from ddfad_apps.paper.execute import Context, run_set

    ctx = Context(tmp_path / "raw", torch.device("cpu"), data_root, say=lambda line: None)
    smoke = SIZES["smoke"]
    first = set_cell(smoke, "fsdd", "random", 1)
    before, _ = run_set(first, ctx)
    # the finished cell as the report keeps it, its per-seed evaluation folders gone (an older report's layout)
    (ctx.raw / f"{first.key}.json").write_text(json.dumps({"result": before}))
    for folder in (ctx.raw / first.key).glob("eval-*"):
        shutil.rmtree(folder)
    calls = {"distill": [], "evaluate": []}
    real_distill, real_evaluate = distill_module.distill, evidence_module.evaluate_set
    monkeypatch.setattr(distill_module, "distill",
                        lambda *a, **k: calls["distill"].append(k["seed"]) or real_distill(*a, **k))
    monkeypatch.setattr(evidence_module, "evaluate_set",
                        lambda syn, *a, **k: calls["evaluate"].append(syn) or real_evaluate(syn, *a, **k))
    more = set_cell(smoke, "fsdd", "random", 1, set_seeds=smoke.set_seeds + 1)
    assert more.key != first.key
    after, _ = run_set(more, ctx)
    new = smoke.set_seeds
    assert calls["distill"] == [new] and len(calls["evaluate"]) == 1  # only the new seed: made, evaluated
    old_runs, new_runs = before["evaluations"]["convnet"]["runs"], after["evaluations"]["convnet"]["runs"]
    assert sorted(new_runs) == [str(s) for s in range(new + 1)]
    assert all(new_runs[str(s)] == old_runs[str(s)] for s in range(new))
    assert after["evaluations_reused_from"] == {f"convnet/{s}": first.key for s in range(new)}
    assert after["evaluations"]["convnet"]["n"] == new + 1
    # a later block of seeds alone (--first-set-seed): its own key, the very seed-`new` set and evaluation, no seed 0
    block = set_cell(smoke, "fsdd", "random", 1, set_seeds=1, first_set_seed=new)
    assert block.key not in (first.key, more.key) and "first_set_seed" not in first.params
    calls["distill"].clear(), calls["evaluate"].clear()
    alone, _ = run_set(block, ctx)
    assert calls == {"distill": [], "evaluate": []}
    assert alone["evaluations"]["convnet"]["runs"] == {str(new): new_runs[str(new)]}
    assert alone["sets_reused_from"] == {str(new): more.key}
    with pytest.raises(ValueError, match="start at 0"):
        set_cell(smoke, "fsdd", "random", 1, first_set_seed=-1)


def test_a_target_asked_fewer_set_seeds_is_evaluated_on_those_only(data_root: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Table I may make more seeds of a set than Table II cross-evaluates (FSDD: 5 against 3): the cell evaluates
    each target on its own first seeds, and its record says which."""
    import ddfad_apps.evidence as evidence_module
    from ddfad_apps.paper.cells import set_cell
    from ddfad_apps.paper.execute import Context, run_set

    smoke = SIZES["smoke"]
    with pytest.raises(ValueError, match="a target of the cell"):
        set_cell(smoke, "fsdd", "random", 1, targets=("convnet",), target_seeds={"vgg11": 1})
    with pytest.raises(ValueError, match="at least 1"):
        set_cell(smoke, "fsdd", "random", 1, targets=("convnet", "vgg11"), target_seeds={"vgg11": 0})
    every = set_cell(smoke, "fsdd", "random", 1, targets=("convnet", "vgg11"), target_seeds={"vgg11": 2})
    assert "target_seeds" not in every.params  # every target takes every seed: the plain cell's key
    cell = set_cell(smoke, "fsdd", "random", 1, targets=("convnet", "vgg11"), target_seeds={"vgg11": 1})
    assert cell.key != every.key and cell.params["target_seeds"] == {"vgg11": 1}
    calls = []
    real = evidence_module.evaluate_set
    monkeypatch.setattr(evidence_module, "evaluate_set",
                        lambda syn, carved, test, protocol, *a, **k: calls.append(protocol.model)
                        or real(syn, carved, test, protocol, *a, **k))
    out, _ = run_set(cell, Context(tmp_path / "raw", torch.device("cpu"), data_root, say=lambda line: None))
    assert sorted(calls) == ["convnet", "convnet", "vgg11"]
    assert sorted(out["evaluations"]["convnet"]["runs"]) == ["0", "1"]
    assert sorted(out["evaluations"]["vgg11"]["runs"]) == ["0"] and out["evaluations"]["vgg11"]["n"] == 1


def test_vary_report_cell_pairs_the_varied_cell_with_the_reports_by_set_seed(tmp_path: Path, capsys) -> None:
    """scripts/vary_report_cell.py keeps the varied cell out of the report's folder, under a key of its own, and
    pairs it with the report's cell set seed by set seed (a verdict only where the interval excludes zero)."""
    import importlib.util

    from ddfad_apps.paper.cells import set_cell

    def result(per_seed: dict[int, float]) -> dict:
        runs = {str(s): {"mean": a, "accuracies": [a, a], "lr": 0.03, "lr_source": "grid", "val_scores": {"0.03": a}}
                for s, a in per_seed.items()}
        return {"evaluations": {"convnet": {"per_set_seed": {str(s): a for s, a in per_seed.items()}, "runs": runs}},
                "experts_test_accuracy": [[0.5, 0.6]]}

    size = SIZES["default"]
    reference = find_set(declare(size), "ravdess", "mtt", 10)
    report, out = tmp_path / "paper", tmp_path / "varied"
    (report / "raw").mkdir(parents=True)
    (report / "raw" / f"{reference.key}.json").write_text(json.dumps({"result": result(
        {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.50, 4: 0.53})}))
    varied = set_cell(replace(size, expert_overrides={"num_experts": 8}), "ravdess", "mtt", 10, set_seeds=5)
    assert varied.key != reference.key
    out.mkdir()
    (out / f"{varied.key}.json").write_text(json.dumps({"result": result({0: 0.55, 1: 0.56, 2: 0.56, 3: 0.54,
                                                                           4: 0.57})}))
    spec = importlib.util.spec_from_file_location("vary_report_cell", ROOT / "scripts" / "vary_report_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--dataset", "ravdess", "--cpc", "10", "--experts", "num_experts:8", "--report", str(report),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert "set seed 4: test 57.00" in printed and "set seed 4: test 53.00" in printed
    assert "num_experts 8 beats the report by 4.40 points" in printed
    # a same-machine baseline: the report's settings made again on 3 of its seeds, paired with the varied cell there
    again, baseline = set_cell(size, "ravdess", "mtt", 10, set_seeds=3), tmp_path / "again"
    baseline.mkdir()
    (baseline / f"{again.key}.json").write_text(json.dumps({"result": result({0: 0.54, 1: 0.55, 2: 0.56})}))
    module.main(["--dataset", "ravdess", "--cpc", "10", "--again", "--set-seeds", "3", "--report", str(report),
                 "--out", str(baseline), "--against", str(out / f"{varied.key}.json")])
    printed = capsys.readouterr().out
    assert "paired on set seeds 0, 1, 2: made again and the cell in" in printed and "indistinguishable" in printed
    with pytest.raises(SystemExit, match="no such saved cell"):
        module.main(["--dataset", "ravdess", "--cpc", "10", "--again", "--report", str(report), "--out", str(baseline),
                     "--against", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit, match="pairing needs at least 2"):
        module.main(["--dataset", "ravdess", "--cpc", "10", "--again", "--set-seeds", "1", "--report", str(report),
                     "--out", str(baseline)])
    # more set seeds than the report's: paired on the seeds both cells have (the report's 5, or all 6 --against)
    again6, varied6 = (set_cell(size, "ravdess", "mtt", 10, set_seeds=6),
                       set_cell(replace(size, expert_overrides={"num_experts": 8}), "ravdess", "mtt", 10, set_seeds=6))
    (baseline / f"{again6.key}.json").write_text(json.dumps({"result": result(
        {0: 0.54, 1: 0.55, 2: 0.56, 3: 0.52, 4: 0.53, 5: 0.50})}))
    (out / f"{varied6.key}.json").write_text(json.dumps({"result": result(
        {0: 0.55, 1: 0.56, 2: 0.56, 3: 0.54, 4: 0.57, 5: 0.58})}))
    module.main(["--dataset", "ravdess", "--cpc", "10", "--experts", "num_experts:8", "--set-seeds", "6",
                 "--report", str(report), "--out", str(out)])
    assert "paired on set seeds 0, 1, 2, 3, 4: num_experts 8" in capsys.readouterr().out
    module.main(["--dataset", "ravdess", "--cpc", "10", "--experts", "num_experts:8", "--set-seeds", "6",
                 "--report", str(report), "--out", str(out), "--against", str(baseline / f"{again6.key}.json")])
    assert "paired on set seeds 0, 1, 2, 3, 4, 5: num_experts 8" in capsys.readouterr().out
    # a later block of seeds (5, 6) alone: saved unpaired against the report (no seed in common), then paired
    # --against the other cell's same block
    again_b, varied_b = (set_cell(size, "ravdess", "mtt", 10, set_seeds=2, first_set_seed=5),
                         set_cell(replace(size, expert_overrides={"num_experts": 8}), "ravdess", "mtt", 10,
                                  set_seeds=2, first_set_seed=5))
    (baseline / f"{again_b.key}.json").write_text(json.dumps({"result": result({5: 0.50, 6: 0.52})}))
    (out / f"{varied_b.key}.json").write_text(json.dumps({"result": result({5: 0.58, 6: 0.59})}))
    block = ["--dataset", "ravdess", "--cpc", "10", "--set-seeds", "2", "--first-set-seed", "5", "--report",
             str(report)]
    module.main([*block, "--again", "--out", str(baseline)])
    assert "fewer than 2 in common, not paired" in capsys.readouterr().out
    module.main([*block, "--experts", "num_experts:8", "--out", str(out), "--against",
                 str(baseline / f"{again_b.key}.json")])
    assert "paired on set seeds 5, 6: num_experts 8" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="nothing to vary"):
        module.main(["--dataset", "ravdess", "--cpc", "10", "--report", str(report), "--out", str(out)])
    with pytest.raises(SystemExit, match="no Table I cell"):
        module.main(["--dataset", "ravdess", "--cpc", "1", "--experts", "num_experts:8", "--report", str(report),
                     "--out", str(out)])


def test_the_committed_cells_are_the_extended_size_and_make_both_reports(tmp_path: Path) -> None:
    """docs/paper/raw holds exactly the extended size's cells (a settings change that re-keys a cell leaves the
    committed report stale: this fails until the cell is made again), and one folder of them writes both the
    default's REPORT.md (the committed one: same Table I) and the extended REPORT-extended.md, neither partial."""
    from ddfad_apps.paper.command import main

    committed = ROOT / "docs" / "paper"
    raw = sorted((committed / "raw").glob("*.json"))
    assert sorted(p.stem for p in raw) == sorted(c.key for c in declare(SIZES["extended"]))
    out = tmp_path / "paper"
    (out / "raw").mkdir(parents=True)
    for path in raw:  # the records and the files they name (the sets themselves are not needed to write reports)
        shutil.copyfile(path, out / "raw" / path.name)
        for name in json.loads(path.read_text()).get("outputs", []):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(committed / name, out / name)
    default = main(["--out", str(out), "--report-only", "--quiet"])
    extended = main(["--extended", "--out", str(out), "--report-only", "--quiet"])
    assert default.report == out / "REPORT.md" and extended.report == out / "REPORT-extended.md"
    lean, full = default.report.read_text(), extended.report.read_text()
    assert "Partial report" not in lean and "Partial report" not in full
    assert "| fsdd | dc |" not in lean and "| ravdess | dsa |" in full and "mtt (random start)" in full
    assert "Not in the default size" in lean and "| ravdess | 1080 / " in full  # the whole splits: extended only

    def table1(text: str) -> str:
        return text.split("## Table I:")[1].split("### The whole training split")[0]

    for m in ("random", "herding", "dm", "mtt"):  # the default's rows are the extended report's very rows
        rows = [line for line in table1(lean).splitlines() if line.startswith(f"| ravdess | {m} |")]
        assert len(rows) == 1 and rows[0] in table1(full)
    assert table1(lean) == table1((committed / "REPORT.md").read_text())


def test_compare_report_runs_pairs_cells_by_set_seed_and_flags_changed_verdicts(tmp_path: Path, capsys) -> None:
    """scripts/compare_report_runs.py reads two report folders: per cell the paired difference b - a over set
    seeds, then each Table I verdict in both, "CHANGED" where the outcome differs (not where only numbers do)."""
    import importlib.util

    size = SIZES["default"]
    cells = declare(size)
    values = {"a": {"random": [0.50, 0.52, 0.51], "herding": [0.60, 0.61, 0.62]},
              "b": {"random": [0.50, 0.52, 0.53], "herding": [0.60, 0.50, 0.62]}}
    for run, methods in values.items():
        (tmp_path / run / "raw").mkdir(parents=True)
        for m, accs in methods.items():
            cell = find_set(cells, "fsdd", m, 1)
            record = {"result": {"evaluations": {"convnet": {"per_set_seed": {str(s): a for s, a in enumerate(accs)}}}}}
            (tmp_path / run / "raw" / f"{cell.key}.json").write_text(json.dumps(record))
    spec = importlib.util.spec_from_file_location("compare_report_runs", ROOT / "scripts" / "compare_report_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = module.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")])
    (random,) = [line for line in lines if line.startswith("fsdd CPC 1 random:")]
    assert "b - a +0.67 [" in random and "over 3 set seeds" in random
    flagged = [line for line in lines if "CHANGED" in line]
    assert len(flagged) == 1 and "indistinguishable" in flagged[0]  # a: herding beats random; b: not shown
    assert any("herding beats random" in line for line in lines)
    assert "fsdd CPC 1 dm: only in neither" in lines and capsys.readouterr().out
    # a run made with fewer set seeds (another key: FSDD's 3 before it went to 5) is paired on the seeds both have
    from ddfad_apps.paper.cells import set_cell

    for m, accs in {"random": [0.50, 0.52, 0.51, 0.40, 0.41], "herding": [0.60, 0.61, 0.62, 0.70, 0.71]}.items():
        five = find_set(cells, "fsdd", m, 1)
        (tmp_path / "a" / "raw" / f"{five.key}.json").write_text(json.dumps(
            {"settings": five.params, "result": {"evaluations": {"convnet": {"per_set_seed": dict(enumerate(accs))}}}}))
        (tmp_path / "b" / "raw" / f"{five.key}.json").unlink()
        three = set_cell(size, "fsdd", m, 1, set_seeds=3)
        assert three.key != five.key
        (tmp_path / "b" / "raw" / f"{three.key}.json").write_text(json.dumps(
            {"settings": three.params, "result": {"evaluations": {"convnet": {"per_set_seed": dict(enumerate(
                values["b"][m]))}}}}))
    lines = module.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")])
    (random,) = [line for line in lines if line.startswith("fsdd CPC 1 random:")]
    assert "b - a +0.67 [" in random and "over 3 set seeds (the seeds both runs have: 0, 1, 2)" in random
    # another setting (here the protocol) is another cell: not paired
    other = json.loads((tmp_path / "b" / "raw" / f"{three.key}.json").read_text())
    other["settings"]["protocol"] = {"lr_grid": [0.1]}
    (tmp_path / "b" / "raw" / f"{three.key}.json").write_text(json.dumps(other))
    assert "fsdd CPC 1 herding: only in a" in module.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")])
