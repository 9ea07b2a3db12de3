"""Shared test fixtures: where the real data sets are, and the rule that a test needing them never passes silently.

Real data is ``$DDFAD_DATA`` if set, else ``<repo>/../shared/data``.  A test that needs a data set which is not
there **fails**, naming the folder it looked in; a developer without the data can opt into skipping with
``DDFAD_ALLOW_MISSING_DATA=1``.  Under ``DDFAD_STRICT_TESTS=1`` (set by ``.ci/run``) every skip, whatever its
reason, is turned into a failure, so CI cannot go green by skipping.

OpenMP threads wait passively (set before torch is imported anywhere), so test processes on a shared machine do
not spin idle cores; the number of torch threads is left to each test.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALLOW_MISSING = "DDFAD_ALLOW_MISSING_DATA"
STRICT = "DDFAD_STRICT_TESTS"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def real_data_root() -> Path:
    """The folder holding ``fsdd/`` and ``ravdess-speech-16k/`` (it may not exist; see :func:`require_data`)."""
    return Path(os.environ.get("DDFAD_DATA") or DEFAULT_DATA_ROOT).expanduser()


def require_data(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise fail the test (skip only when ``DDFAD_ALLOW_MISSING_DATA=1``)."""
    if path.exists():
        return path
    message = (f"{what} not found at {path}: set DDFAD_DATA to the folder holding fsdd/ and ravdess-speech-16k/ "
               f"(or {ALLOW_MISSING}=1 to skip tests that need it)")
    if _flag(ALLOW_MISSING):
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under ``DDFAD_STRICT_TESTS=1`` a skipped test is reported as failed: CI cannot pass by skipping."""
    outcome = yield
    report = outcome.get_result()
    if _flag(STRICT) and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under {STRICT}=1 (CI runs every test): {reason}"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding the real data sets; the test fails when it does not exist."""
    return require_data(real_data_root(), "real data")


@pytest.fixture(scope="session")
def fsdd_root(data_root: Path) -> Path:
    """The real FSDD folder (``recordings/``)."""
    return require_data(data_root / "fsdd" / "recordings", "real FSDD clips").parent


@pytest.fixture(scope="session")
def fsdd_splits(fsdd_root: Path):
    """FSDD's normalised train/test FD-MFCC (official split), extracted once per session and cached on disk."""
    from ddfad_apps.features import load_features

    return load_features("fsdd", data_root=fsdd_root.parent, progress=False)


@pytest.fixture
def fsdd_folder(fsdd_root: Path, tmp_path: Path):
    """Make a small class-folder data set (``digits/<digit>/*.wav`` + manifest) from real FSDD clips of one speaker.

    Returns ``make(digits, takes)``; CLI tests train on it in seconds.  Fails when FSDD is absent.
    """
    import json
    import shutil

    recordings = fsdd_root / "recordings"

    def make(digits: tuple[str, ...] = ("0", "1", "2"), takes: int = 6) -> Path:
        root = tmp_path / "digits"
        for digit in digits:
            (root / digit).mkdir(parents=True)
            for take in range(takes):
                shutil.copy(recordings / f"{digit}_jackson_{take}.wav", root / digit)
        (root / "manifest.json").write_text(json.dumps({"sample_rate": 8000, "duration": 0.5}))
        return root

    return make


pytest_plugins = ["pytester"]  # tests/test_ci_guard.py runs small pytest sessions under this conftest


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: small convolutions on a shared few-core CPU run several times faster
    that way than with threads contending for the cores (use with ``pytestmark = usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
