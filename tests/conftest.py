"""Shared pytest options: `--results RUN_DIR` checks a finished run against golden/paper.toml."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--results", action="store", default=None, metavar="RUN_DIR",
                     help="a finished paper-profile run directory (with results.jsonl): check it against "
                          "golden/paper.toml (tests/test_paper_golden.py); without it those tests skip")


@pytest.fixture(scope="session")
def results_dir(request: pytest.FixtureRequest) -> Path | None:
    """The run directory given with --results, or None."""
    value = request.config.getoption("--results")
    return None if value is None else Path(value)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's .pulse-cache (worlds and pre-trained models)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_CACHE", str(tmp_path_factory.mktemp("pulse-cache")))
    yield
    mp.undo()
