"""Tables and plots of a class-incremental comparison: Table IV-style summary, accuracy curves, memory sweep."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

Results = Mapping[str, Sequence[Mapping[str, Any]]]  # memory kind -> one result dict per seed


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary(results: Results) -> dict[str, dict[str, float]]:
    """Per memory: final accuracy, forgetting and average incremental accuracy (mean and std over seeds, %)."""
    out: dict[str, dict[str, float]] = {}
    for memory, runs in results.items():
        if not runs:
            continue
        row: dict[str, float] = {"seeds": float(len(runs))}
        for key in ("final_accuracy", "forgetting", "average_incremental_accuracy"):
            m, s = mean_std([100.0 * r[key] for r in runs])
            row[f"{key}_mean"], row[f"{key}_std"] = m, s
        out[memory] = row
    return out


def summary_table(results: Results, title: str = "") -> str:
    """A plain-text Table IV: final average accuracy mean+-std over seeds, forgetting, average incremental acc."""
    rows = summary(results)
    head = f"{'memory':<10} {'seeds':>5}  {'final acc (%)':>15}  {'forgetting (%)':>15}  {'avg incr. acc (%)':>17}"
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for memory, r in rows.items():
        lines.append(
            f"{memory:<10} {int(r['seeds']):>5}  {r['final_accuracy_mean']:>7.2f} ± {r['final_accuracy_std']:<5.2f}"
            f"  {r['forgetting_mean']:>7.2f} ± {r['forgetting_std']:<5.2f}"
            f"  {r['average_incremental_accuracy_mean']:>9.2f} ± {r['average_incremental_accuracy_std']:<5.2f}"
        )
    lines += paired_verdicts(results)
    return "\n".join(lines)


def paired_verdicts(results: Results, base: str = "distilled") -> list[str]:
    """``base`` (else the first memory) against every other memory: the final-accuracy difference paired by seed
    (every memory of a seed shares its class order) and the sentence it allows (a win only where the interval
    excludes zero)."""
    from ddfad_apps.evidence.stats import paired_difference, verdict

    names = [m for m, runs in results.items() if runs]
    base = base if base in names else (names[0] if names else base)
    per_seed = {m: {r["seed"]: r["final_accuracy"] for r in results[m]} for m in names}
    lines = []
    for other in names:
        shared = sorted(set(per_seed[base]) & set(per_seed[other]))
        if other == base or len(shared) < 2:
            continue
        diff = paired_difference({s: per_seed[base][s] for s in shared}, {s: per_seed[other][s] for s in shared})
        lines.append(f"  {verdict(base, other, diff)}")
    return lines


def accuracy_curves_figure(results: Results, title: str = ""):
    """Accuracy on the classes seen so far after each experience, one line (mean +- std band) per memory."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    for memory, runs in results.items():
        if not runs:
            continue
        steps = len(runs[0]["accuracy_curve"])
        seen = [sum(runs[0]["classes_per_experience"][: t + 1]) for t in range(steps)]
        stats = [mean_std([100.0 * r["accuracy_curve"][t] for r in runs]) for t in range(steps)]
        means = [m for m, _ in stats]
        ax.plot(seen, means, marker="o", label=f"{memory} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(seen, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.2)
    ax.set_xlabel("classes learned")
    return _finish(fig, ax, "test accuracy on seen classes (%)", title)


def sweep_entries(results: Results) -> list[dict[str, Any]]:
    """One entry per (network, memory size, memory) of a grid's runs: final accuracy per seed, mean and std.

    Sizes are ``mem_per_class`` (``None`` for a shared, shrinking budget, with ``mem_size`` saying which).
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for runs in results.values():
        for r in runs:
            key = (r.get("model"), r.get("mem_per_class"), r.get("mem_size"), r["memory"])
            groups.setdefault(key, []).append(r)
    entries = []
    for (model, per_class, size, memory), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        finals = [float(r["final_accuracy"]) for r in runs]
        m, s = mean_std(finals)
        entries.append({"model": model, "mem_per_class": per_class, "mem_size": size, "memory": memory,
                        "seeds": [r["seed"] for r in runs], "final_accuracy": finals,
                        "final_accuracy_mean": m, "final_accuracy_std": s,
                        "forgetting_mean": mean_std([float(r["forgetting"]) for r in runs])[0]})
    return entries


def memory_sweep_figure(entries: Sequence[Mapping[str, Any]], title: str = ""):
    """Final accuracy (mean +- std over seeds) against memory per class, one line per memory and network."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    models = sorted({e["model"] for e in entries})
    lines: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for e in entries:
        if e["mem_per_class"] is not None:
            lines.setdefault((e["model"], e["memory"]), []).append(e)
    for (model, memory), points in sorted(lines.items()):
        points = sorted(points, key=lambda e: e["mem_per_class"])
        xs = [e["mem_per_class"] for e in points]
        means = [100.0 * e["final_accuracy_mean"] for e in points]
        stds = [100.0 * e["final_accuracy_std"] for e in points]
        label = memory if len(models) == 1 else f"{memory} ({model})"
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    sizes = sorted({e["mem_per_class"] for e in entries if e["mem_per_class"] is not None})
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.xaxis.set_minor_locator(NullLocator())  # only the swept sizes are labelled, not log-scale minor ticks
    ax.set_xlabel("memory per class (clips)")
    return _finish(fig, ax, "final accuracy, all classes (%)", title)


def _finish(fig, ax, ylabel: str, title: str | None):
    """The accuracy axes every continual-learning figure shares (0-100 %, grid, legend, optional title)."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
