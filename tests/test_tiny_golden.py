"""The miniature against golden/tiny.toml: the tiny profile's whole protocol runs once per test session,
then one test per recorded range and per claim, named after it.

golden/tiny.toml is written by `pulse-repro golden record` (it says how); these tests only read it.
"""

from __future__ import annotations

import pytest

from repro.config import load_profile
from repro.experiments.results import read_results
from repro.experiments.runner import run_protocol
from repro.report.golden import GOLDEN_DIR, check_claim, check_number, failure_message, load_golden

TINY_FILE = GOLDEN_DIR / "tiny.toml"
TINY = load_golden(TINY_FILE) if TINY_FILE.exists() else None
NUMBERS = TINY.numbers if TINY else []
CLAIMS = TINY.claims if TINY else []


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory):
    """results.jsonl of `pulse-repro all` on the tiny profile with the first recorded seed."""
    profile = load_profile("tiny", [f"seed={TINY.meta['seeds'][0]}"])
    run_dir = tmp_path_factory.mktemp("tiny-run")
    run_protocol(profile, run_dir)
    return read_results(run_dir / "results.jsonl")


def test_golden_file_exists_and_pins_the_paper_cells():
    assert TINY is not None, f"{TINY_FILE} is missing: record it with `pulse-repro golden record --seeds ...`"
    pinned = {(n.select["experiment"], n.select["split"]) for n in NUMBERS}
    for experiment in ("finetuned", "pretrained", "sustainability", "modality"):
        assert (experiment, "unlearn") in pinned


@pytest.mark.parametrize("spec", NUMBERS, ids=[s.name for s in NUMBERS])
def test_number(spec, tiny_records):
    verdict = check_number(tiny_records, spec)
    assert verdict.passed, failure_message(verdict, spec)


@pytest.mark.parametrize("spec", CLAIMS, ids=[s.name for s in CLAIMS])
def test_claim(spec, tiny_records):
    verdict = check_claim(tiny_records, spec)
    assert verdict.passed, failure_message(verdict, spec)
