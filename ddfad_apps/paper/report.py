"""``REPORT.md`` and its figures, from the cells' saved records.

Each table and figure stands beside the paper's numbers (:mod:`ddfad_apps.paper.published`, "not given" where
unknown) and under the header that says how it was made: the command, the size and what it contains, the seeds,
the protocol and the machine.  Every file is written atomically: an interrupted write never leaves a report that
looks complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ddfad_apps.jobs.files import write_text_atomic
from ddfad_apps.paper import figures, tables
from ddfad_apps.paper.cells import Cell, Size, describe
from ddfad_apps.storage.atomic import atomic_write

FIG5, FIG6, FIG7, FIG8, CICL_CURVES = ("fig5_features.png", "fig6_original_vs_distilled.png",
                                       "fig7_waveform_noise.png", "fig8_nas.png", "table4_cicl_curves.png")


def _copy(src: Path, dst: Path) -> Path:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
    return dst


def _only(cells: list[Cell], kind: str) -> Cell:
    return next(c for c in cells if c.kind == kind)


def _figure(name: str, alt: str) -> str:
    return f"![{alt}]({name})"


def write_report(size: Size, cells: list[Cell], records: dict[str, dict[str, Any]], out: Path,
                 machine: dict[str, Any], command: str, commit: str | None) -> Path:
    """Write ``out/<size.report_file>`` (``REPORT.md`` but for the extended size) and the figures beside it;
    returns the report's path."""
    out = Path(out)
    noise, rtrip, fig6, cicl, nas = (_only(cells, k) for k in ("noise", "roundtrip", "fig6", "cicl", "nas"))
    f5_text, f5_data = tables.fig5_table(size, cells, records)
    figures.fig5(f5_data, f"Fig. 5: {size.fig5['method']} on {size.fig5['dataset']} by feature kind", out / FIG5)
    fig7_text = tables.noise_table(records, noise)
    if noise.key in records:
        figures.fig7(records[noise.key]["result"]["levels"],
                     f"Fig. 7: waveform noise, {noise.params['dataset']} CPC {size.noise['cpc']}", out / FIG7)
    fig6_rec = records.get(fig6.key)
    if fig6_rec:
        _copy(out / fig6_rec["outputs"][0], out / FIG6)
    nas_rec = records.get(nas.key)
    if nas_rec:
        _copy(out / nas_rec["outputs"][0], out / FIG8)
    cicl_rec = records.get(cicl.key)
    if cicl_rec:
        _copy(out / cicl_rec["outputs"][0], out / CICL_CURVES)

    machines = {str(sorted(r["machine"].items())): r["machine"] for r in records.values()}
    missing = [c.key for c in cells if c.key not in records]
    lines = [
        "# DDFAD reproduced: report",
        "",
        *([f"**Partial report: {len(records)} of {len(cells)} cells done.** Not run yet (the same command "
           f"resumes them): {', '.join(f'`{k}`' for k in missing)}.", ""] if missing else []),
        f"Size **{size.name}**, made by `{command or 'python scripts/reproduce_paper.py'}`"
        + (f" at commit `{commit}`" if commit else "") + ".",
        "",
        "What this size contains:",
        "",
        *[f"- {line}" for line in describe(size, cells)],
        "",
        "Machine(s) the cells ran on: " + "; ".join(
            f"{m['platform']}, " + (f"{m['cpu']}, " if m.get("cpu") else "")
            + f"{m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), device "
            f"{m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else "") for m in machines.values()) + ".",
        "",
        ("Every accuracy: test accuracy in %, **mean +- std [95% t-interval] over set seeds** (each set seed's value "
        "is the mean of its evaluation networks), under one evaluation protocol (`ddfad_apps.evidence.protocol`): "
        "the training learning rate of every set is chosen from one grid (plus the set's learned rate) on a "
        "stratified validation split carved from the training data before any set is made; the test split is "
        "never used to choose.  \"A beats B\" is written only where the paired 95% interval (same set seeds) "
        "excludes zero.  The paper's column says \"not given\" where its number is not known here."),
        "",
        "## Table I: methods x clips per class",
        "",
        tables.table1(size, cells, records),
        "",
        "### The whole training split under the same protocol",
        "",
        tables.whole_table(size, cells, records),
        "",
        "## Table II: distilling network x evaluating network",
        "",
        tables.table2(size, cells, records),
        "",
        "## Table III: wall time and peak memory of every cell",
        "",
        tables.table3(cells, records),
        "",
        "## Table IV: class-incremental learning (cicl job)",
        "",
        tables.table4(size, records, cicl),
        "",
        _figure(CICL_CURVES, "Table IV accuracy curves") if cicl_rec else "",
        "",
        "## Fig. 5: feature kind inside distillation",
        "",
        _figure(FIG5, "Fig. 5"),
        "",
        f5_text,
        "",
        "## Fig. 6: original vs distilled clips (waveform and spectrogram)",
        "",
        (_figure(FIG6, "Fig. 6") + f"\n\nEvery class is shown ({len(fig6_rec['result']['shown'])} of "
         f"{len(fig6_rec['result']['classes'])}: {', '.join(fig6_rec['result']['shown'])}); the first original "
         f"training clip and the first {fig6_rec['result']['method']} clip of each class, set seed "
         f"{fig6.params['set_seed']}.") if fig6_rec else "not run",
        "",
        "## Fig. 7: Gaussian noise on the reconstructed waveforms",
        "",
        _figure(FIG7, "Fig. 7") if noise.key in records else "",
        "",
        fig7_text,
        "",
        "## Round trip: do the reconstructed clips still train a network?",
        "",
        (f"The {size.noise['method']} sets of {size.noise['dataset']} CPC {size.noise['cpc']} written as WAV files "
        f"({size.noise['n_iter']} Griffin-Lim iterations) and read back (`ddfad_apps.evidence.roundtrip`):"),
        "",
        tables.roundtrip_table(records, rtrip),
        "",
        "## Fig. 8: NAS, proxy vs whole-data accuracy (nas job)",
        "",
        _figure(FIG8, "Fig. 8") if nas_rec else "",
        "",
        tables.nas_table(records, nas),
        "",
        f"Raw results: one JSON per cell in `raw/` ({len(records)} cells; settings, result, cost, machine).",
        "",
    ]
    path = out / size.report_file
    write_text_atomic(path, "\n".join(lines))
    return path
