"""Reproduce the DDFAD paper in one resumable command (see ``--help``; logic in ``ddfad_apps.paper``).

    python scripts/reproduce_paper.py [--smoke | --full] [--out DIR] [--data-root DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ddfad_apps.paper.command import main

if __name__ == "__main__":
    main()
