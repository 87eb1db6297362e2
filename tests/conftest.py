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
