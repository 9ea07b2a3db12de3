"""Markdown tables of the report, built from the cells' saved records only (never from live objects).

Every accuracy is ``mean +- std [95% CI]`` over set seeds (each the mean of its evaluation networks), as
:mod:`ddfad_apps.evidence.compare` defines it; comparisons are paired on the same set seeds and worded by
:func:`~ddfad_apps.evidence.stats.verdict` ("A beats B" only where the paired interval excludes zero).
"""

from __future__ import annotations

import math
from typing import Any

from ddfad_apps.evidence.stats import Summary, paired_difference, summarize, verdict
from ddfad_apps.paper.cells import Cell, Size, find_set
from ddfad_apps.paper.published import paper_value

Records = dict[str, dict[str, Any]]


def summary_of(d: dict[str, Any]) -> Summary:
    """A :class:`Summary` back from its ``as_dict`` form (``None`` bounds: no interval)."""
    low = -math.inf if d.get("ci_low") is None else d["ci_low"]
    high = math.inf if d.get("ci_high") is None else d["ci_high"]
    return Summary(d["n"], d["mean"], d["std"], low, high)


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _evaluation(cells: list[Cell], records: Records, dataset: str, method: str, cpc: int, source: str = "convnet",
                feature: str = "fd_mfcc", target: str = "convnet", start: str | None = None) -> dict[str, Any] | None:
    cell = find_set(cells, dataset, method, cpc, source, feature, start)
    if cell is None or cell.key not in records:
        return None
    return records[cell.key]["result"]["evaluations"].get(target)


def _per_seed(ev: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in ev["per_set_seed"].items()}


def _cell_text(ev: dict[str, Any] | None) -> str:
    return summary_of(ev).format() if ev else "not run"


def _verdicts(named: dict[str, dict[str, Any]], pairs: list[tuple[str, str]]) -> list[str]:
    """Paired verdicts of ``pairs`` made with the same (two or more) set seeds; a pair where either side has
    other or fewer set seeds (the one-seed sets only Table II and Fig. 5 need) is said to be descriptive."""
    out = []
    for a, b in pairs:
        if a in named and b in named:
            sa, sb = _per_seed(named[a]), _per_seed(named[b])
            if sa.keys() != sb.keys() or len(sa) < 2:
                out.append(f"{a} vs {b}: not compared (set seeds {', '.join(sorted(sa))} vs "
                           f"{', '.join(sorted(sb))}; a paired interval needs the same two or more)")
                continue
            out.append(verdict(a, b, paired_difference(sa, sb)))
    return out


def table1(size: Size, cells: list[Cell], records: Records) -> str:
    """Table I: (data set, method) x CPC, ours beside the paper's, then the paired verdicts per (data set, CPC)."""
    from ddfad_apps.distill.presets import CORESET_METHODS

    t1 = size.table1
    datasets = [d for d in t1["datasets"] if any(c.kind == "set" and c.params["dataset"] == d for c in cells)]
    header = ["data set", "method"] + [x for c in t1["cpcs"] for x in (f"CPC {c} (ours, %)", f"CPC {c} (paper)")]
    rows, notes, edges = [], [], []
    for d in datasets:
        # (label, method, start): every method from its preset's start, then the starts Table I adds
        entries = [(m, m, None) for m in t1["methods"]] + [
            (f"{m} ({init} start)", m, init) for m, st in t1.get("starts", {}).items() if d in st["datasets"]
            for init in st["inits"]]
        for label, m, start in entries:
            row = [d, label]
            for c in t1["cpcs"]:
                row += [_cell_text(_evaluation(cells, records, d, m, c, start=start)),
                        paper_value("table1", d, m, c, "convnet")]
            rows.append(row)
        for c in t1["cpcs"]:
            named = {label: ev for label, m, start in entries
                     if (ev := _evaluation(cells, records, d, m, c, start=start))}
            synthetic = [label for label, m, _ in entries if label in named and m not in CORESET_METHODS]
            pairs = [(a, b) for a in synthetic for b in named if b in CORESET_METHODS]
            pairs += [(a, b) for i, a in enumerate(synthetic) for b in synthetic[i + 1:]]
            notes += [f"- {d} CPC {c}: {v}" for v in _verdicts(named, pairs)]
            edges += _grid_edges(f"{d} CPC {c}", named)
    return (_md(header, rows) + "\n\nPaired differences (same set seeds):\n\n" + "\n".join(notes or ["- none"])
            + ("\n\nLearning rates chosen at the edge of the grid (a wider grid might score these sets higher; "
               "it applies to every set alike):\n\n" + "\n".join(edges) if edges else ""))


def whole_table(size: Size, cells: list[Cell], records: Records) -> str:
    """Table I's whole-data column: each data set's carved fit split under the same protocol, beside the paper's
    whole-data ConvNet and, descriptively, the gap to each method at Table I's largest CPC (not paired: the whole
    split is one set, so its interval covers evaluation networks only)."""
    if not size.whole:
        return f"Not in the {size.name} size (`--extended` adds it)."
    top = max(size.table1["cpcs"])
    rows, gaps = [], []
    for cell in (c for c in cells if c.kind == "whole"):
        d, rec = cell.params["dataset"], records.get(cell.key)
        if rec is None:
            rows.append([d, "-", "-", "not run", "-", paper_value("whole-data", d, "convnet")])
            continue
        ev = rec["result"]["evaluation"]
        whole = summary_of(ev)
        rows.append([d, f"{rec['result']['fit_clips']} / {rec['result']['test_clips']}", str(whole.n), whole.format(),
                     f"{ev['lr']:g}", paper_value("whole-data", d, "convnet")])
        for m in size.table1["methods"]:
            if (set_ev := _evaluation(cells, records, d, m, top)) is not None:
                gaps.append(f"{d} {m} CPC {top}: {100 * (summary_of(set_ev).mean - whole.mean):+.2f} points")
    header = ["data set", "fit / test clips", "networks", "whole training split (ours, %)", "lr chosen",
              "whole data (paper, ConvNet)"]
    return (_md(header, rows) + f"\n\nGap of each set at CPC {top} to its data set's whole split (difference of "
            "means, descriptive: the whole split is one set, evaluated by the networks of set seed 0, so it is not "
            "paired with the sets): " + ("; ".join(gaps) if gaps else "none") + ".")


def _grid_edges(where: str, named: dict[str, dict[str, Any]]) -> list[str]:
    """One line per set whose validation chose the lowest or highest grid rate on some set seed."""
    lines = []
    for method, ev in named.items():
        for edge, pick in (("highest", max), ("lowest", min)):
            hits = [r for r in ev.get("runs", {}).values()
                    if r.get("lr_source") == "grid" and r.get("protocol", {}).get("lr_grid")
                    and math.isclose(r["lr"], pick(r["protocol"]["lr_grid"]))]
            if hits:
                lines.append(f"- {where} {method}: {hits[0]['lr']:g}, the {edge} rate tried, on {len(hits)} of "
                             f"{len(ev['runs'])} set seeds")
    return lines


def table2(size: Size, cells: list[Cell], records: Records) -> str:
    """Table II: distilling network (rows) x evaluating network (columns)."""
    t2 = size.table2
    nets = list(t2["networks"])
    rows = [[s] + [_cell_text(_evaluation(cells, records, t2["dataset"], t2["method"], t2["cpc"], s, target=t))
                   for t in nets] for s in nets]
    header = ["distilled with \\ evaluated on"] + [f"{t} (%)" for t in nets]
    notes = []
    for t in nets:
        named = {f"{s}->{t}": ev for s in nets
                 if (ev := _evaluation(cells, records, t2["dataset"], t2["method"], t2["cpc"], s, target=t))}
        same = f"{t}->{t}"
        notes += [f"- {v}" for v in _verdicts(named, [(same, o) for o in named if o != same])]
    seeds = []
    for s in nets:
        row = {t: ev for t in nets if (ev := _evaluation(cells, records, t2["dataset"], t2["method"], t2["cpc"], s,
                                                           target=t))}
        seeds += [f"{s} on {', '.join(ts)}: {_seed_span(k)}" for k, ts in _seeds_by_target(row).items()]
    return (f"{t2['method']} on {t2['dataset']}, CPC {t2['cpc']}; paper: {paper_value('table2')}\n\n"
            + _md(header, rows) + "\n\nSet seeds behind each entry (distilled with ... evaluated on): "
            + "; ".join(seeds) + ".\n\nPaired differences (same set seeds):\n\n" + "\n".join(notes or ["- none"]))


def _seeds_by_target(evaluations: dict[str, dict[str, Any]]) -> dict[tuple[str, ...], list[str]]:
    """The set seeds of each evaluation, grouped: {seeds: [targets evaluated on them]}."""
    grouped: dict[tuple[str, ...], list[str]] = {}
    for target, ev in evaluations.items():
        grouped.setdefault(tuple(sorted(_per_seed(ev), key=int)), []).append(target)
    return grouped


def _seed_span(seeds: tuple[str, ...]) -> str:
    """``0-4`` for consecutive set seeds, else ``0, 2``."""
    ints = [int(s) for s in seeds]
    if len(ints) > 1 and ints == list(range(ints[0], ints[-1] + 1)):
        return f"{ints[0]}-{ints[-1]}"
    return ", ".join(seeds)


def table3(cells: list[Cell], records: Records) -> str:
    """Table III: wall time and peak memory of every cell (data set, network, CPC), ours only."""
    rows, seconds = [], 0.0
    for cell in cells:
        rec = records.get(cell.key)
        if rec is None:
            continue
        p, cost, res = cell.params, rec["cost"], rec["result"]
        make = sum(res.get("make_seconds", [])) if cell.kind == "set" else None
        evaluate = sum(res.get("eval_seconds", {}).values()) if cell.kind == "set" else None
        seconds += max(cost["seconds"], (make or 0.0) + (evaluate or 0.0))
        network = p.get("source") or ("-" if cell.kind != "set" else "(coreset)")
        gpu = f"{cost['peak_gpu_mb']:.0f}" if cost.get("peak_gpu_mb") is not None else "-"
        method = p.get("method", "-") + (f" ({p['start']} start)" if p.get("start") else "")
        rows.append([cell.kind, p.get("dataset", "-"), p.get("feature", "-"), method, network,
                     str(p.get("cpc", "-")), "-" if make is None else f"{make:.1f}",
                     "-" if evaluate is None else f"{evaluate:.1f}",
                     f"{cost['seconds']:.1f}" + ("*" if any(res.get("resumed", {}).values()) else "")
                     + ("†" if res.get("sets_reused_from") or res.get("evaluations_reused_from") else ""),
                     f"{cost['peak_rss_mb']:.0f}", gpu])
    header = ["cell", "data set", "feature", "method", "network", "CPC", "make sets (s)", "evaluate (s)",
              "total (s)", "peak RSS (MB)", "peak GPU (MB)"]
    return (_md(header, rows) + f"\n\nPaper: {paper_value('table3')}.  Peak RSS is the process's high-water mark "
            "during the cell (reset before it); the evaluation column covers every target network.  *: the cell "
            "resumed sets or evaluations an interrupted run had finished; their times are in the make and evaluate "
            "columns, the total and the peak cover the last run only.  †: the cell copied sets or evaluations "
            "another cell had made the same way (the first set seeds of a cell given more); their times are in the "
            "make and evaluate columns, the total covers this cell's own work.  In all the cells took "
            f"**{seconds / 3600:.1f} process-hours** (each cell's total, or its make and evaluate times where it "
            "resumed or copied; processes of the thread count in the machine line above, several at a time with --workers).")


def table4(size: Size, records: Records, cell: Cell) -> str:
    """Table IV: final average accuracy and forgetting per memory over seeds, paired differences by seed."""
    rec = records.get(cell.key)
    if rec is None:
        return "not run"
    runs = rec["result"]["runs"]
    rows, finals = [], {}
    for memory, rs in runs.items():
        finals[memory] = {str(i): r["final_accuracy"] for i, r in enumerate(rs)}
        final = summarize([r["final_accuracy"] for r in rs])
        forget = summarize([r["forgetting"] for r in rs])
        rows.append([memory, final.format(), forget.format(), paper_value("table4", cell.params["dataset"], memory)])
    header = ["memory", "final accuracy (%)", "forgetting (points)", "paper"]
    notes = [f"- {verdict(a, b, paired_difference(finals[a], finals[b]))}" for a in finals for b in finals
             if a == "distilled" and b != a]
    return (f"{cell.params['dataset']}, {cell.params}\n\n" + _md(header, rows)
            + "\n\nPaired differences (same seeds):\n\n" + "\n".join(notes or ["- none"]))


def fig5_table(size: Size, cells: list[Cell], records: Records) -> tuple[str, dict[str, dict[int, dict]]]:
    """Fig. 5's numbers: feature x CPC (``{feature: {cpc: evaluation}}`` for the plot) and paired verdicts."""
    f5 = size.fig5
    data: dict[str, dict[int, dict]] = {}
    rows, notes = [], []
    for feature in f5["features"]:
        row = [feature]
        for c in f5["cpcs"]:
            ev = _evaluation(cells, records, f5["dataset"], f5["method"], c, feature=feature)
            if ev:
                data.setdefault(feature, {})[c] = ev
            row += [_cell_text(ev), paper_value("fig5", f5["dataset"], feature, c)]
        rows.append(row)
    for c in f5["cpcs"]:
        named = {f: data[f][c] for f in data if c in data[f]}
        notes += [f"- CPC {c}: {v}" for v in _verdicts(named, [("fd_mfcc", f) for f in named if f != "fd_mfcc"])]
    header = ["feature"] + [x for c in f5["cpcs"] for x in (f"CPC {c} (ours, %)", f"CPC {c} (paper)")]
    return (f"{f5['method']} on {f5['dataset']}, evaluated on ConvNet\n\n" + _md(header, rows)
            + "\n\nPaired differences (same set seeds):\n\n" + "\n".join(notes or ["- none"]), data)


def noise_table(records: Records, cell: Cell) -> str:
    """Fig. 7's numbers: accuracy per noise level, paired against the clean reconstruction."""
    rec = records.get(cell.key)
    if rec is None:
        return "not run"
    levels = rec["result"]["levels"]
    rows, notes = [], []
    clean = next((lv for lv in levels if lv["std"] == 0), None)
    for lv in levels:
        s = summarize(list(lv["per_set_seed"].values()))
        snrs = [v for v in lv["snr_db"].values() if v is not None]
        snr = f"{sum(snrs) / len(snrs):.1f}" if snrs else "inf (clean)"
        rows.append([f"{lv['std']:g}", f"{lv['variance']:.2e}", snr, s.format(),
                     paper_value("fig7", cell.params["dataset"], lv["std"])])
        if clean is not None and lv is not clean:
            name = f"noise {lv['std']:g}"
            notes.append(f"- {verdict(name, 'clean audio', paired_difference(lv['per_set_seed'], clean['per_set_seed']))}")
    fig7 = _md(["noise std (full scale)", "variance", "SNR (dB, mean over clips)", "accuracy (%)", "paper"], rows)
    fig7 += "\n\nPaired against the clean reconstruction (same set seeds):\n\n" + "\n".join(notes or ["- none"])
    return fig7


def roundtrip_table(records: Records, cell: Cell) -> str:
    """Networks trained on the distilled features vs on features read back from the set's WAV files, paired on
    the same set seeds (each the mean of the same evaluation seeds)."""
    rec = records.get(cell.key)
    if rec is None:
        return "not run"
    per = rec["result"]["per_set_seed"]
    feats, audio = {s: v["features"] for s, v in per.items()}, {s: v["audio"] for s, v in per.items()}
    rows = [["distilled features", summarize(list(feats.values())).format()],
            ["features of the WAV files", summarize(list(audio.values())).format()]]
    return (_md(["networks trained on", "accuracy (%)"], rows) + "\n\n- "
            + verdict("WAV files", "distilled features", paired_difference(audio, feats)))


def nas_table(records: Records, cell: Cell) -> str:
    """Fig. 8's numbers: per proxy the rank correlations with whole-data accuracy (bootstrap 95% intervals)."""
    rec = records.get(cell.key)
    if rec is None:
        return "not run"

    def ci(value: float, low: float | None, high: float | None) -> str:
        if value is None or math.isnan(value):
            return "undefined"
        bounds = "[no CI]" if low is None or math.isnan(low) else f"[{low:.3f}, {high:.3f}]"
        return f"{value:.3f} {bounds}"

    rows = []
    for r in rec["result"]["reports"]:
        c = r["correlations"]["all"]
        rows.append([r["proxy"], str(r["n"]), ci(c["spearman"], c["spearman_low"], c["spearman_high"]),
                     ci(c["kendall"], c["kendall_low"], c["kendall_high"]), f"{r['picked_truth']:.4f}",
                     f"{r['best_truth']:.4f}", paper_value("fig8", r["proxy"])])
    header = ["proxy", "architectures", "Spearman [95% CI]", "Kendall [95% CI]", "picked arch's truth",
              "best truth", "paper"]
    notes = [f"- {d['a']} - {d['b']} ({d['over']}): {d['diff']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"
             for d in rec["result"]["differences"] if all(isinstance(d.get(k), float) and d[k] == d[k] for k in ("diff", "low", "high"))]
    return _md(header, rows) + ("\n\nPaired proxy differences:\n\n" + "\n".join(notes) if notes else "")
