"""The paper's numbers and claims (golden/paper.toml) against a finished run: `pytest --results RUN_DIR`.

One test per number and per claim, named after it. Without --results every test skips; a test whose entry
is for another profile than the run's skips too.
"""

from __future__ import annotations

import pytest

from repro.errors import ReproError
from repro.experiments.results import read_results
from repro.report.golden import GOLDEN_DIR, check_claim, check_number, failure_message, load_golden
from repro.report.verify import run_profile
from repro.run_profile import run_bootstrap

PAPER = load_golden(GOLDEN_DIR / "paper.toml")


@pytest.fixture(scope="session")
def paper_run(results_dir):
    """(records, profile) of the run given with --results."""
    if results_dir is None:
        pytest.skip("no --results RUN_DIR given")
    path = results_dir / "results.jsonl"
    records = read_results(path)
    if not records:
        raise ReproError(f"{path}: no results (is --results a finished run directory?)")
    return records, run_profile(records, path)


def _applicable(entry, profile: str) -> None:
    if not PAPER.applies(entry, profile):
        wanted = entry.profiles or (PAPER.profile,)
        pytest.skip(f"{entry.name} is for profile {', '.join(wanted)}; the run is {profile}")


@pytest.mark.parametrize("spec", PAPER.numbers, ids=[s.name for s in PAPER.numbers])
def test_number(spec, paper_run):
    records, profile = paper_run
    _applicable(spec, profile)
    verdict = check_number(records, spec)
    assert verdict.passed, failure_message(verdict, spec)


@pytest.mark.parametrize("spec", PAPER.claims, ids=[s.name for s in PAPER.claims])
def test_claim(spec, paper_run, results_dir):
    records, profile = paper_run
    _applicable(spec, profile)
    verdict = check_claim(records, spec, *run_bootstrap(results_dir))
    assert verdict.passed, failure_message(verdict, spec)
