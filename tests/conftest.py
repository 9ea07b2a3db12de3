"""Shared test fixtures: where the real data sets are.

``data_root`` is ``$DDFAD_DATA`` if set, else ``<repo>/../shared/data``; tests that need it are skipped, with the
reason, when it is absent.  OpenMP threads wait passively (set before torch is imported anywhere), so test
processes on a shared machine do not spin idle cores; the number of torch threads is left to each test.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_root() -> Path:
    return Path(os.environ.get("DDFAD_DATA") or DEFAULT_DATA_ROOT).expanduser()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding the real data sets (``fsdd/``, ``ravdess-speech-16k/``); skips when it does not exist."""
    root = _data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DDFAD_DATA to the folder holding fsdd/ and ravdess-*/)")
    return root


@pytest.fixture
def fsdd_folder(data_root: Path, tmp_path: Path):
    """Make a small class-folder data set (``digits/<digit>/*.wav`` + manifest) from real FSDD clips of one speaker.

    Returns ``make(digits, takes)``; CLI tests train on it in seconds.  Skips when FSDD is absent.
    """
    import json
    import shutil

    recordings = data_root / "fsdd" / "recordings"
    if not recordings.is_dir():
        pytest.skip(f"real FSDD clips not found at {recordings} (set DDFAD_DATA)")

    def make(digits: tuple[str, ...] = ("0", "1", "2"), takes: int = 6) -> Path:
        root = tmp_path / "digits"
        for digit in digits:
            (root / digit).mkdir(parents=True)
            for take in range(takes):
                shutil.copy(recordings / f"{digit}_jackson_{take}.wav", root / digit)
        (root / "manifest.json").write_text(json.dumps({"sample_rate": 8000, "duration": 0.5}))
        return root

    return make
