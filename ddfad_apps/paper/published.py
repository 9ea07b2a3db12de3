"""The paper's own numbers, declared once, so every table of the report can print them beside ours.

Only numbers this project has quoted from the DDFAD paper are here (README: whole-data ConvNet, MTT's Table I at
CPC 1/10/50 on FSDD and CPC 10 on RAVDESS).  Anything not in :data:`PAPER` is printed as ``not given``: never
guessed, never copied from a neighbouring cell.  Values are test accuracy in percent.
"""

from __future__ import annotations

NOT_GIVEN = "not given"

# (table, *coordinates) -> accuracy in percent
PAPER: dict[tuple, float] = {
    ("whole-data", "fsdd", "convnet"): 90.52,
    ("whole-data", "ravdess", "convnet"): 49.81,
    ("table1", "fsdd", "mtt", 1, "convnet"): 29.88,
    ("table1", "fsdd", "mtt", 10, "convnet"): 65.60,
    ("table1", "fsdd", "mtt", 50, "convnet"): 89.67,
    ("table1", "ravdess", "mtt", 10, "convnet"): 29.22,
}


def paper_value(*key: object) -> str:
    """The paper's number at ``key`` formatted as ``"29.88"``, or ``"not given"``."""
    value = PAPER.get(tuple(key))
    return NOT_GIVEN if value is None else f"{value:.2f}"
