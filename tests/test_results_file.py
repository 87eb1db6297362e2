"""`results.jsonl` against a resumed run that offers every record again, from the first: whatever point the
first run stopped at (between two appends, or inside one, leaving a torn line), the resumed file is the
uninterrupted run's file byte for byte, each record once."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from repro.experiments.results import ResultsFile


def measurement(experiment: str, method: str, step: int, accuracy: float) -> list[dict]:
    """What one measurement appends at once: a record per split and modality."""
    return [{"experiment": experiment, "method": method, "target": "proj+llm", "step": step, "split": split,
             "modality": modality, "accuracy": accuracy + i, "n": 10, "profile": "tiny", "seed": 0,
             "model": f"{method}-{step}"}
            for i, (split, modality) in enumerate([("unlearn", "all"), ("unlearn", "text"), ("retain", "all")])]


# A short protocol's appends, in the order a run makes them.
APPENDS = [measurement("finetuned", m, s, 10.0 * k) for k, (m, s) in
           enumerate([("ga", 0), ("ga", 1), ("npo", 0), ("npo", 1)])] + [
          measurement("sustainability", "ga", s, 50.0 + s) for s in range(3)]


def lines(records: list[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


@pytest.fixture
def uninterrupted(tmp_path) -> bytes:
    results = ResultsFile(tmp_path / "clean" / "results.jsonl")
    for batch in APPENDS:
        results.append(batch)
    return results.path.read_bytes()


@pytest.mark.parametrize("done", range(len(APPENDS) + 1))
@pytest.mark.parametrize("torn", ["", "half a record", "a whole record and half the next"])
def test_a_resume_offering_every_record_again_ends_with_the_uninterrupted_file(tmp_path, uninterrupted, done, torn):
    path = tmp_path / "results.jsonl"
    first = ResultsFile(path)
    for batch in APPENDS[:done]:
        first.append(batch)
    if torn and done < len(APPENDS):  # the process died inside its next append
        whole = lines(APPENDS[done][:1]) if torn.startswith("a whole") else ""
        nxt = lines(APPENDS[done][1:2] if whole else APPENDS[done][:1])
        with path.open("a") as fh:
            fh.write(whole + nxt[: len(nxt) // 2])
    resumed = ResultsFile(path)  # a new process, offering every record from the start
    for batch in APPENDS:
        resumed.append(batch)
    assert path.read_bytes() == uninterrupted
    identities = Counter((r["experiment"], r["method"], r["step"], r["split"], r["modality"])
                         for r in map(json.loads, path.read_text().splitlines()))
    assert set(identities.values()) == {1} and len(identities) == sum(map(len, APPENDS))


def test_a_record_offered_again_with_another_value_keeps_the_first(tmp_path):
    """A re-measured record (say, after a resume on other hardware) is not written a second time."""
    path = tmp_path / "results.jsonl"
    ResultsFile(path).append(APPENDS[0])
    again = [{**r, "accuracy": r["accuracy"] + 1.0} for r in APPENDS[0]]
    ResultsFile(path).append(again + APPENDS[1])
    assert path.read_text() == lines(APPENDS[0] + APPENDS[1])


def test_repairing_a_torn_last_line_keeps_every_complete_line_and_skips_what_is_not_a_record(tmp_path):
    from repro.experiments.results import read_results

    path = tmp_path / "results.jsonl"
    records = [{"experiment": "finetuned", "method": "ga", "target": "proj+llm", "step": s, "split": "unlearn",
                "modality": "all", "accuracy": 50.0, "n": 10, "profile": "tiny", "seed": 0} for s in range(3)]
    whole = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    # a JSON line that is no record (a string naming every field), and a torn last line
    not_a_record = json.dumps(" ".join(records[0])) + "\n"
    path.write_text(whole + not_a_record + json.dumps(records[0])[:25])
    assert read_results(path) == records  # neither is ever data
    ResultsFile(path)  # the repair cuts the torn line only
    assert path.read_text() == whole + not_a_record
