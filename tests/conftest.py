"""Shared fixtures.

Tests that read ``../shared/testdata`` use the ``testdata`` fixture: it skips
only when the folder is absent AND the ``CI`` environment variable is unset;
in CI a missing folder is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = (ROOT / ".." / "shared" / "testdata").resolve()
SAMPLE_SCANS = ROOT / "sample_scans"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing but CI is set: the shared test data must be present in CI")
    pytest.skip(f"{path} not present (set up ../shared/testdata to run this test)")


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Root of the shared third-party test data (../shared/testdata)."""
    return _require(TESTDATA)


@pytest.fixture(scope="session")
def sample_scans() -> Path:
    """The project's own sample pre/post studies."""
    if not (SAMPLE_SCANS / "truth.json").exists():
        pytest.fail("sample_scans/truth.json missing: regenerate with `python sample_scans/make_sample_scans.py`")
    return SAMPLE_SCANS
