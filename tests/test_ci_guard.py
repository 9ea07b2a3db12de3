"""The guard that keeps CI honest: missing real data fails, and under ``DDFAD_STRICT_TESTS=1`` no test may skip.

Each case runs a tiny pytest session in a temporary folder with this project's ``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py").read_text()


def _session(pytester: pytest.Pytester, body: str, **env: str):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_case=body)
    for name in ("DDFAD_STRICT_TESTS", "DDFAD_ALLOW_MISSING_DATA"):
        pytester._monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")


def test_missing_real_data_fails_and_names_the_folder(pytester: pytest.Pytester, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = _session(pytester, "def test_needs_data(data_root):\n    assert data_root\n", DDFAD_DATA=str(missing))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*real data not found at {missing}*DDFAD_DATA*"])


def test_missing_data_may_skip_only_when_asked(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = _session(pytester, "def test_needs_data(fsdd_root):\n    assert fsdd_root\n",
                      DDFAD_DATA=str(tmp_path), DDFAD_ALLOW_MISSING_DATA="1")
    result.assert_outcomes(skipped=1)


def test_strict_mode_turns_every_skip_into_a_failure(pytester: pytest.Pytester) -> None:
    body = ("import pytest\n"
            "def test_skips():\n    pytest.skip('no server')\n"
            "@pytest.mark.xfail(reason='known')\n"
            "def test_expected_failure():\n    assert False\n"
            "def test_passes():\n    assert True\n")
    strict = _session(pytester, body, DDFAD_STRICT_TESTS="1")
    strict.assert_outcomes(failed=1, passed=1, xfailed=1)
    strict.stdout.fnmatch_lines(["*skipped under DDFAD_STRICT_TESTS=1*no server*"])
    relaxed = _session(pytester, body)
    relaxed.assert_outcomes(skipped=1, passed=1, xfailed=1)
