"""A golden file's entries as parsed, which profile each applies to, where the file is found, and each check's
verdict in full (repro/report/golden.py): what `pulse-repro verify` prints is exactly what these return."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.report.golden import (
    ClaimSpec,
    Golden,
    NumberSpec,
    Verdict,
    check_claim,
    check_claims,
    check_number,
    find_golden,
    load_golden,
    sampling_agreement,
)

SEL = {"experiment": "finetuned", "method": "ga", "target": "proj+llm", "step": 1, "split": "unlearn",
       "modality": "all"}
CLAIM_SEL = 'experiment = "finetuned", target = "proj+llm", split = "retain", modality = "all"'
FILE = f'''[golden]
profile = "tiny"
made_by = "hand"

[[number]]
name = "paper_cell"
source = "Table B"
experiment = "finetuned"
method = "ga"
target = "proj+llm"
step = 1
split = "unlearn"
modality = "all"
value = 22.5
tolerance = 2.5
profiles = ["llava-1.5-13b", "tiny"]

[[number]]
name = "questions"
source = "protocol size"
experiment = "finetuned"
method = "ga"
target = "proj+llm"
step = 1
split = "unlearn"
modality = "all"
field = "n"
min = 250
max = 250

[[claim]]
name = "kept"
source = "Figure 3"
statement = "D_retain is kept"
kind = "ratio_at_least"
over = "method"
values = ["ga", "npo"]
profiles = ["llava-1.5-13b"]
before = {{ {CLAIM_SEL}, step = 0 }}
after = {{ {CLAIM_SEL}, step = 1 }}
threshold = 0.8
'''


@pytest.fixture
def golden(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(FILE)
    return load_golden(path)


def test_a_golden_file_parses_into_what_it_says(golden):
    sel = {"experiment": "finetuned", "target": "proj+llm", "split": "retain", "modality": "all"}
    assert golden.profile == "tiny" and golden.meta == {"profile": "tiny", "made_by": "hand"}
    assert golden.numbers == [
        NumberSpec("paper_cell", SEL, 20.0, 25.0, "Table B", "accuracy", 22.5, 2.5, ("llava-1.5-13b", "tiny")),
        NumberSpec("questions", SEL, 250.0, 250.0, "protocol size", "n", None, None, None),
    ]
    assert golden.claims == [
        ClaimSpec("kept", "ratio_at_least", "Figure 3", {"before": {**sel, "step": 0}, "after": {**sel, "step": 1}},
                  {"threshold": 0.8}, "D_retain is kept", "method", ("ga", "npo"), ("llava-1.5-13b",)),
    ]
    assert [n.expected for n in golden.numbers] == ["22.5 +/- 2.5 = [20.0, 25.0]", "[250, 250]"]


def test_an_entry_applies_to_its_own_profiles_else_the_files(golden, tmp_path):
    paper_cell, questions = golden.numbers
    (kept,) = golden.claims
    assert golden.applies(paper_cell, "tiny") and golden.applies(paper_cell, "llava-1.5-13b")
    assert golden.applies(questions, "tiny") and not golden.applies(questions, "llava-1.5-13b")  # the file's
    assert golden.applies(kept, "llava-1.5-13b") and not golden.applies(kept, "tiny")
    anyone = tmp_path / "any.toml"  # no profile anywhere: every profile
    anyone.write_text(FILE.replace('profile = "tiny"\n', "").replace('profiles = ["llava-1.5-13b"]\n', ""))
    (kept,) = load_golden(anyone).claims
    assert load_golden(anyone).applies(kept, "tiny") and load_golden(anyone).applies(kept, "other")


def test_the_golden_file_of_a_profile_is_found_by_name_else_by_its_header(tmp_path):
    (tmp_path / "a.toml").write_text("[[broken\n")  # unreadable files are passed over, not the end of the search
    (tmp_path / "b.toml").write_text('[golden]\nprofile = "tiny"\n')
    (tmp_path / "c.toml").write_text('golden = 1\n')
    assert find_golden("tiny", tmp_path) == tmp_path / "b.toml"
    (tmp_path / "tiny.toml").write_text('[golden]\nprofile = "other"\n')
    assert find_golden("tiny", tmp_path) == tmp_path / "tiny.toml"  # the file named for it comes first
    (tmp_path / "d.toml").write_text('[golden]\nprofile = "x"\n')
    (tmp_path / "e.toml").write_text('[golden]\nprofile = "x"\n')
    with pytest.raises(ReproError) as err:
        find_golden("x", tmp_path)
    assert str(err.value) == (f"several golden files in {tmp_path} are for profile 'x': d.toml, e.toml; "
                              "pass --golden FILE")


# ---- a number ----------------------------------------------------------------------------------------


def record(accuracy: float, **extra) -> dict:
    return {**SEL, "accuracy": accuracy, "n": 250, **extra}


def test_a_numbers_verdict_shows_the_interval_and_the_sampling_judgement(golden):
    paper_cell, questions = golden.numbers
    with_interval = [record(21.0, ci_low=15.6, ci_high=29.6)]
    assert check_number(with_interval, paper_cell) == Verdict(
        "paper_cell", "22.5 +/- 2.5 = [20.0, 25.0]", "21.0 [15.6, 29.6]", True, "Table B", sampling="consistent")
    # a count is exact: no interval, no sampling judgement, however the record is; no machine excuses it
    assert check_number(with_interval, questions) == Verdict(
        "questions", "[250, 250]", "250", True, "protocol size", excusable=False)
    # no interval recorded: the value alone, no judgement
    assert check_number([record(30.0)], paper_cell) == Verdict(
        "paper_cell", "22.5 +/- 2.5 = [20.0, 25.0]", "30.0", False, "Table B")
    # a range without a paper value has nothing to be consistent with
    min_max = NumberSpec("m", SEL, 20.0, 25.0, "s")
    assert check_number(with_interval, min_max).sampling == ""
    assert check_number([], paper_cell) == Verdict("paper_cell", "22.5 +/- 2.5 = [20.0, 25.0]", "missing", False,
                                                   "Table B", excusable=False)  # a missing record: no machine's doing


def critical_gap(se_run: float, paper_se, widest: float) -> float:
    """The distance from the run's accuracy at which the paper's value stops being consistent: the gap d where
    d = 1.96 * sqrt(se_run^2 + se_paper(d)^2), found by bisection."""
    lo, hi = 0.0, widest
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid < 1.959964 * math.hypot(se_run, paper_se(mid)):
            lo = mid
        else:
            hi = mid
    return lo


def test_sampling_agreement_is_the_combined_standard_error_of_the_run_and_the_paper():
    """The run's SE from its interval; the paper's, the run's design effect at the paper's accuracy. Checked
    a hair each side of where the verdict turns, so a wrong factor anywhere moves it."""
    rec = {"accuracy": 30.0, "n": 250, "ci_low": 22.0, "ci_high": 38.0}
    se_run = 16.0 / (2 * 1.959964)

    def paper_se(gap):  # the paper below the run
        p = (30.0 - gap) / 100
        return se_run * math.sqrt(p * (1 - p) / (0.3 * 0.7))

    gap = critical_gap(se_run, paper_se, 30.0)
    assert 10 < gap < 12
    assert sampling_agreement(rec, 30.0 - gap + 0.01) == "consistent"
    assert sampling_agreement(rec, 30.0 - gap - 0.01) == "differs"


def test_a_run_at_0_or_100_percent_takes_the_papers_binomial_error():
    """A run at 100% has a zero-width interval; the paper's error is the binomial at its accuracy over the
    run's questions. Exactly equal values with no error at all are consistent, any gap then differs."""
    rec = {"accuracy": 100.0, "n": 50, "ci_low": 100.0, "ci_high": 100.0}

    def paper_se(gap):
        p = (100.0 - gap) / 100
        return 100 * math.sqrt(p * (1 - p) / 50)

    gap = critical_gap(0.0, paper_se, 100.0)
    assert 5 < gap < 12
    assert sampling_agreement(rec, 100.0 - gap + 0.01) == "consistent"
    assert sampling_agreement(rec, 100.0 - gap - 0.01) == "differs"
    assert sampling_agreement(rec, 100.0) == "consistent"  # no error on either side, no gap
    assert sampling_agreement(rec, 99.9) == "consistent"  # the paper's own error (0.45) covers 0.1
    zero = {"accuracy": 0.0, "n": 50, "ci_low": 0.0, "ci_high": 0.0}
    assert sampling_agreement(zero, 0.0) == "consistent" and sampling_agreement(zero, gap + 0.01) == "differs"


@pytest.mark.parametrize("rec", [
    {"accuracy": 30.0, "n": 250, "ci_high": 38.0},
    {"accuracy": 30.0, "n": 250, "ci_low": 22.0},
    {"n": 250, "ci_low": 22.0, "ci_high": 38.0},
    {"accuracy": 30.0, "n": 0, "ci_low": 22.0, "ci_high": 38.0},
])
def test_no_sampling_judgement_without_an_interval_an_accuracy_or_questions(rec):
    assert sampling_agreement(rec, 30.0) == ""


# ---- a claim -----------------------------------------------------------------------------------------


def retain(method: str, step: int, per_person: list[int], experiment: str = "finetuned") -> dict:
    """D_retain of `method` at `step`: 40 people, five questions each, per_person[i % len] right for person i."""
    per = {f"p{i}": [per_person[i % len(per_person)], 5] for i in range(40)}
    hits = sum(h for h, _ in per.values())
    return {"experiment": experiment, "method": method, "target": "proj+llm", "step": step, "split": "retain",
            "modality": "all", "accuracy": 100 * hits / 200, "n": 200, "per_cluster": per}


WORDS = "experiment=finetuned target=proj+llm split=retain modality=all: step=1/step=0 >= 0.8"


def test_a_claim_over_the_methods_it_names_reads_only_those(golden):
    (kept,) = golden.claims  # ga and npo must keep 80% of D_retain
    records = [retain("ga", 0, [5]), retain("ga", 1, [5]), retain("npo", 0, [5]), retain("npo", 1, [5, 4]),
               retain("gd", 0, [5]), retain("gd", 1, [1])]  # gd is not named: its collapse does not count
    verdict = check_claim(records, kept, 200, 0)
    assert verdict == Verdict("kept", WORDS + "; each method in ga, npo",
                              verdict.measured, True, "Figure 3")
    assert verdict.measured.startswith("ga 1.000; npo 0.900 [")


def test_a_claim_without_values_reads_every_value_its_selectors_find(golden):
    (kept,) = golden.claims
    every = ClaimSpec(**{**kept.__dict__, "values": None})
    records = [retain("npo", 0, [5]), retain("npo", 1, [5, 3, 4]), retain("ga", 0, [5]), retain("ga", 1, [5]),
               retain("zz", 0, [5], experiment="pretrained"), retain("zz", 1, [0], experiment="pretrained")]
    verdict = check_claim(records, every, 200, 0)  # zz is in another experiment: not found
    assert verdict.label == "INCONCLUSIVE" and not verdict.passed and verdict.inconclusive
    assert verdict.expected == WORDS + "; every method"
    ga, npo = verdict.measured.split("; ")
    assert ga == "ga 1.000" and npo.startswith("npo 0.805 [") and npo.endswith("] (inconclusive)")  # 161 of 200
    assert check_claim(records + [retain("aa", 0, [5]), retain("aa", 1, [1])], every, 200, 0).measured.startswith(
        "aa 0.200 (fails); ga")  # in order of name
    # a method is found by its records whatever their step; one without the claim's steps fails as missing
    late = check_claim(records + [retain("bb", 3, [5])], every, 200, 0)
    assert late.measured.startswith("bb missing (fails); ga") and late.failed
    # the seed given draws the intervals
    assert check_claim(records, every, 200, 1).measured != verdict.measured
    assert [v.measured for v in check_claims(records, golden_of(every), 200, 1)] == [
        check_claim(records, every, 200, 1).measured]


def golden_of(*claims: ClaimSpec) -> Golden:
    return Golden(Path("g.toml"), "tiny", {}, [], list(claims))


def test_an_entry_without_a_statement_or_field_takes_the_defaults(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(FILE.replace('statement = "D_retain is kept"\n', "").replace('field = "n"\n', ""))
    golden = load_golden(path)
    assert golden.claims[0].statement == "" and golden.numbers[1].field == "accuracy"


def test_a_claim_with_nothing_to_read_is_a_fail_saying_so(golden):
    (kept,) = golden.claims
    every = ClaimSpec(**{**kept.__dict__, "values": None})
    assert check_claim([], every, 200, 0) == Verdict(
        "kept", WORDS + "; every method", "missing (no method found)", False, "Figure 3")
