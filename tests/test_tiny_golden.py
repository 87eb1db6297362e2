"""The miniature against golden/tiny.toml: the tiny profile's whole protocol runs once per test session,
then one test per recorded range and per claim, named after it.

golden/tiny.toml is written by `pulse-repro golden record` (it says how); these tests only read it. As
`pulse-repro verify` does, a range fails only in an environment the file was recorded in (elsewhere it is
skipped, saying what differs); a claim fails anywhere.
"""

from __future__ import annotations

import pytest
from small_model import WORD_LEVEL_TOKENS
from threads import machine_threads

from repro.choices import load_profile
from repro.eval.items import person_items
from repro.eval.scoring import score_letter
from repro.experiments.results import read_results
from repro.experiments.runner import run_protocol
from repro.experiments.session import Session
from repro.experiments.unlearn import unlearn_request
from repro.report.golden import GOLDEN_DIR, check_claim, check_number, failure_message, load_golden
from repro.report.verify import environment_differences
from repro.run_profile import run_bootstrap

TINY_FILE = GOLDEN_DIR / "tiny.toml"
TINY = load_golden(TINY_FILE) if TINY_FILE.exists() else None
NUMBERS = TINY.numbers if TINY else []
CLAIMS = TINY.claims if TINY else []

pytestmark = pytest.mark.slow  # the tiny profile's whole protocol (minutes)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(profile, run directory) of the tiny protocol, run once, with the first recorded seed."""
    seed = TINY.meta["seeds"][0] if TINY else 0
    profile = load_profile("tiny", [f"seed={seed}"])
    run_dir = tmp_path_factory.mktemp("tiny-run")
    with machine_threads():  # as golden/tiny.toml's runs were made (their environments name the threads)
        run_protocol(profile, run_dir)
    return profile, run_dir


@pytest.fixture(scope="session")
def tiny_records(tiny_run):
    return read_results(tiny_run[1] / "results.jsonl")


def test_fast_and_generate_scorers_agree_on_trained_models(tiny_run):
    """The letter scorer's fast path equals greedy generation + parse on every question of the miniature
    (every fictional person, every celebrity, mini-MMBench), for the fine-tuned and the unlearned model
    (trained weights; the family contract and tests/test_llava_micro.py hold random and base weights)."""
    profile, run_dir = tiny_run
    session = Session(profile, run_dir)  # reloads the cached base and the saved fine-tuned model
    items = person_items(session.data.fictional + session.data.celebrities, session.data.dialect) + session.data.mmbench_items()
    finetuned = session.finetuned()
    shard = session.data.people(session.data.fictional_splits["shards"][0])
    retain = session.data.people(session.data.fictional_splits["retain"])
    unlearned, _ = unlearn_request(session, finetuned, shard, retain, "ga", "proj+llm")
    for key in (finetuned, unlearned):
        model = session.models.model(key)
        fast = score_letter(model, session.processor, items, 64, profile.model.max_length, "fast",
                            new_tokens=WORD_LEVEL_TOKENS)
        slow = score_letter(model, session.processor, items, 64, profile.model.max_length, "generate",
                            new_tokens=WORD_LEVEL_TOKENS)
        assert len(fast) == len(items)
        differ = [uid for uid in fast if fast[uid] != slow[uid]]
        assert not differ, f"model {key}: fast and generate differ on {len(differ)} items, e.g. {differ[:3]}"


def test_golden_file_exists_and_pins_the_paper_cells():
    assert TINY is not None, f"{TINY_FILE} is missing: record it with `pulse-repro golden record --seeds ...`"
    pinned = {(n.select["experiment"], n.select["split"]) for n in NUMBERS}
    for experiment in ("finetuned", "pretrained", "sustainability", "modality"):
        assert (experiment, "unlearn") in pinned


@pytest.fixture(scope="session")
def tiny_environment_differs(tiny_run):
    """What sets this machine apart from every environment golden/tiny.toml was recorded in ([] if none)."""
    return environment_differences(tiny_run[1], TINY)


@pytest.mark.parametrize("spec", NUMBERS, ids=[s.name for s in NUMBERS])
def test_number(spec, tiny_records, tiny_environment_differs):
    verdict = check_number(tiny_records, spec)
    if not verdict.passed and verdict.excusable and tiny_environment_differs:  # missing or miscounted: fails
        pytest.skip(f"outside a range recorded in another environment: {'; '.join(tiny_environment_differs)}")
    assert verdict.passed, failure_message(verdict, spec)


@pytest.mark.parametrize("spec", CLAIMS, ids=[s.name for s in CLAIMS])
def test_claim(spec, tiny_run, tiny_records):
    """A claim recorded as holding in every recorded run holds on the run's values, and its 95% interval does
    not refute it (it may straddle the threshold: INCONCLUSIVE)."""
    points = [{k: v for k, v in r.items() if k != "per_cluster"} for r in tiny_records]  # values, no spread
    settings = run_bootstrap(tiny_run[1])  # as `pulse-repro verify` judges the run
    verdict = check_claim(points, spec, *settings)
    assert verdict.passed, failure_message(verdict, spec)
    with_intervals = check_claim(tiny_records, spec, *settings)
    assert not with_intervals.failed, failure_message(with_intervals, spec)
