"""The whole paper reproduced in one report: ``python scripts/reproduce_paper.py [--smoke|--full]``.

``cells`` declares what each size computes, ``execute`` runs one cell with the existing engine, protocol and jobs,
``store`` keeps each cell's result as JSON (resume), ``tables``/``figures``/``report`` write ``REPORT.md``,
``published`` holds the paper's own numbers, ``run.reproduce`` ties them together and ``command`` is the CLI.
"""

from ddfad_apps.paper.cells import SIZES, Cell, Size, declare
from ddfad_apps.paper.run import ReproduceError, Reproduction, reproduce

__all__ = ["SIZES", "Cell", "ReproduceError", "Reproduction", "Size", "declare", "reproduce"]
