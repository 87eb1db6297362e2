"""The checker itself: golden files load or fail clearly; Table B passes itself; each claim can fail alone."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repro.errors import ReproError
from repro.report import golden as golden_mod
from repro.report.golden import (
    GOLDEN_DIR,
    check_claim,
    check_claims,
    check_number,
    check_numbers,
    failure_message,
    find_golden,
    load_golden,
)
from repro.report.verify import verify_run

PAPER_FILE = GOLDEN_DIR / "paper.toml"
PAPER = load_golden(PAPER_FILE)
BOOTSTRAP = (1000, 0)  # resamples, seed: the tiny and paper profiles' (eval.bootstrap_resamples, seed)
PROFILE = "llava-1.5-13b"
METHODS = ("ga", "ga_klr", "npo")
PEOPLE = {("finetuned", "unlearn"): 50, ("finetuned", "retain"): 50, ("pretrained", "unlearn"): 20,
          ("pretrained", "retain"): 25, ("sustainability", "unlearn"): 50, ("sustainability", "retain"): 50,
          ("modality", "unlearn"): 50, ("modality", "retain"): 50}

# Table B as printed in the paper (appendix A), transcribed independently of golden/paper.toml:
# (target, step) -> D_unlearn Multi, Text, D_retain Multi, Text, MMBench
TABLE_B = {("proj+llm", 0): (78.0, 76.8, 70.0, 76.8, 75.1), ("llm", 0): (78.0, 76.8, 70.0, 76.8, 75.1),
           ("proj+llm", 1): (9.6, 35.2, 14.8, 29.2, 71.1), ("llm", 1): (24.8, 33.2, 29.2, 34.4, 48.8)}
TABLE_B_NAMES = {"before": ("proj+llm", 0), "ga_proj_llm": ("proj+llm", 1), "ga_llm": ("llm", 1)}
COLUMNS = (("unlearn", "multimodal"), ("unlearn", "text"), ("retain", "multimodal"), ("retain", "text"),
           ("mmbench", "all"))


def rec(experiment, method, target, step, split, modality, accuracy, profile=PROFILE) -> dict:
    if split.startswith("mmbench"):
        n = 1000
    else:
        people = 10 if split.startswith("shard_") else PEOPLE[(experiment, split)]
        n = people * (10 if modality == "all" else 5)
    return {"experiment": experiment, "method": method, "target": target, "step": step, "split": split,
            "modality": modality, "accuracy": accuracy, "n": n, "profile": profile, "seed": 0, "model": "m"}


def people_split(experiment, method, target, step, split, accuracy) -> list[dict]:
    return [rec(experiment, method, target, step, split, m, accuracy) for m in ("all", "multimodal", "text")]


def table_b_records() -> list[dict]:
    """The modality experiment's records, made from the paper's Table B."""
    out = []
    for (target, step), values in TABLE_B.items():
        for (split, modality), value in zip(COLUMNS, values):
            out.append(rec("modality", "ga", target, step, split, modality, value))
        for split, (multi, text) in (("unlearn", values[:2]), ("retain", values[2:4])):
            out.append(rec("modality", "ga", target, step, split, "all", round((multi + text) / 2, 4)))
    return out


def paper_records() -> list[dict]:
    """A whole paper-profile run consistent with the paper: Table B as printed, and curves for Figures 3
    and 4 that follow the text of section 4.3 (the figures print no values)."""
    out = table_b_records()
    # MMBench circular before unlearning: LLaVA's model zoo for LLaVA-1.5-13B (the paper gives none)
    out.append(rec("modality", "ga", "proj+llm", 0, "mmbench_circular", "all", 67.7))
    one_step = {"finetuned": {0: (77.4, 73.4, 75.1), 1: (30.0, 40.0, 70.0)},
                "pretrained": {0: (80.0, 78.0, 75.1), 1: (50.0, 40.0, 5.0)}}
    curves = {"unlearn": (77.4, 68.0, 60.0, 50.0, 42.0, 33.0), "retain": (73.4, 60.0, 50.0, 40.0, 30.0, 25.0),
              "mmbench": (75.1, 65.0, 55.0, 45.0, 30.0, 20.0)}
    for method in METHODS:
        for experiment, steps in one_step.items():
            for step, (unlearn, retain, mmbench) in steps.items():
                out += people_split(experiment, method, "proj+llm", step, "unlearn", unlearn)
                out += people_split(experiment, method, "proj+llm", step, "retain", retain)
                out.append(rec(experiment, method, "proj+llm", step, "mmbench", "all", mmbench))
        for step in range(6):
            for split in ("unlearn", "retain"):
                out += people_split("sustainability", method, "proj+llm", step, split, curves[split][step])
            for k in range(1, 6):
                out += people_split("sustainability", method, "proj+llm", step, f"shard_{k}", curves["unlearn"][step])
            out.append(rec("sustainability", method, "proj+llm", step, "mmbench", "all", curves["mmbench"][step]))
    return out


def set_accuracy(records: list[dict], accuracy: float, **match) -> list[dict]:
    """A copy with the accuracy of exactly the records matching `match` (every modality unless given) set."""
    out = copy.deepcopy(records)
    hits = [r for r in out if all(r[k] == v for k, v in match.items())]
    assert hits, f"no record matches {match}"
    for r in hits:
        r["accuracy"] = accuracy
    return out


def failing(verdicts) -> set[str]:
    return {v.name for v in verdicts if not v.passed}


def write_run(tmp_path: Path, records: list[dict]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


# ---- golden/paper.toml itself ----------------------------------------------------------------------


def test_paper_golden_holds_table_b_as_printed():
    numbers = {n.name: n for n in PAPER.numbers}
    for row, (target, step) in TABLE_B_NAMES.items():
        for (split, modality), value in zip(COLUMNS, TABLE_B[(target, step)]):
            name = f"table_b_{row}_{split}" + ("" if split == "mmbench" else f"_{modality}")
            spec = numbers[name]
            assert spec.value == value and spec.tolerance == 5.0, name
            assert spec.select == {"experiment": "modality", "method": "ga", "target": target, "step": step,
                                   "split": split, "modality": modality}, name
    assert PAPER.profile == PROFILE
    assert len({e.name for e in PAPER.entries()}) == len(PAPER.entries())
    assert all(e.source for e in PAPER.entries())


def test_a_run_made_of_the_papers_numbers_passes_everything():
    records = paper_records()
    assert failing(check_numbers(records, PAPER)) == set()
    assert failing(check_claims(records, PAPER, *BOOTSTRAP)) == set()


def test_table_b_alone_passes_every_table_b_check():
    records = table_b_records()
    table_b = [v for v in check_numbers(records, PAPER) + check_claims(records, PAPER, *BOOTSTRAP)
               if v.name.startswith("table_b_")]
    assert len(table_b) == 15 + 3
    assert all(v.passed for v in table_b), [v for v in table_b if not v.passed]


@pytest.mark.parametrize("spec", [n for n in PAPER.numbers if n.name.startswith("table_b_")],
                         ids=lambda n: n.name)
@pytest.mark.parametrize("direction", [1, -1], ids=["up", "down"])
def test_a_perturbed_table_b_number_fails_alone(spec, direction):
    value = round(spec.value + direction * (spec.tolerance + 0.4), 4)
    records = set_accuracy(table_b_records(), value, **spec.select)
    numbers = [v for v in check_numbers(records, PAPER) if v.name.startswith("table_b_")]
    assert failing(numbers) == {spec.name}
    verdict = next(v for v in numbers if v.name == spec.name)
    assert failure_message(verdict, spec) == (
        f"{spec.name} out of range: {value:.1f} not in [{spec.low:.1f}, {spec.high:.1f}]")


def test_a_number_at_the_edge_of_its_tolerance_passes():
    spec = next(n for n in PAPER.numbers if n.name == "table_b_ga_proj_llm_mmbench")
    for value in (66.1, 76.1):
        assert check_number(set_accuracy(table_b_records(), value, **spec.select), spec).passed


# Each claim's violation: (a change to the paper-consistent run, claims it logically implies to fail too).
VIOLATIONS = {
    "finetuned_unlearn_drops":
        ({"experiment": "finetuned", "method": "npo", "step": 1, "split": "unlearn"}, 72.0, set()),
    "pretrained_unlearn_drops":
        ({"experiment": "pretrained", "method": "ga_klr", "step": 1, "split": "unlearn"}, 75.0, set()),
    "finetuned_mmbench_retained":
        ({"experiment": "finetuned", "method": "ga", "step": 1, "split": "mmbench"}, 60.0, set()),
    "pretrained_mmbench_lost":
        ({"experiment": "pretrained", "method": "ga", "step": 1, "split": "mmbench"}, 25.0, set()),
    # with fine-tuned >= 0.85 and pre-trained <= 0.15 the gap is > 0.5, so breaking it breaks one of those
    "pretrained_keeps_less_mmbench_than_finetuned":
        ({"experiment": "pretrained", "method": "npo", "step": 1, "split": "mmbench"}, 40.0, {"pretrained_mmbench_lost"}),
    "finetuned_retain_falls":
        ({"experiment": "finetuned", "method": "ga_klr", "step": 1, "split": "retain"}, 72.0, set()),
    "pretrained_retain_falls":
        ({"experiment": "pretrained", "method": "npo", "step": 1, "split": "retain"}, 76.0, set()),
    "sustainability_unlearn_decreases_steadily":
        ({"experiment": "sustainability", "method": "ga", "step": 3, "split": "unlearn"}, 66.0, set()),
    "sustainability_retain_nearly_lost":
        ({"experiment": "sustainability", "method": "npo", "step": 5, "split": "retain"}, 50.0, set()),
    "sustainability_mmbench_nearly_lost":
        ({"experiment": "sustainability", "method": "ga", "step": 5, "split": "mmbench"}, 60.0, set()),
    "table_b_text_resists_forgetting":
        ({"experiment": "modality", "target": "llm", "step": 1, "split": "unlearn", "modality": "text"}, 10.0, set()),
    "table_b_llm_only_costs_more_mmbench":
        ({"experiment": "modality", "target": "llm", "step": 1, "split": "mmbench"}, 70.0, set()),
    "table_b_proj_llm_mmbench_slight_drop":
        ({"experiment": "modality", "target": "proj+llm", "step": 1, "split": "mmbench"}, 60.0, set()),
}


def _sustainability_unlearn_plateau(records: list[dict]) -> list[dict]:
    """npo's D_unlearn curve falls steadily but only 7.4 points in all."""
    for step, value in enumerate((77.4, 76.0, 75.0, 74.0, 72.0, 70.0)):
        records = set_accuracy(records, value, experiment="sustainability", method="npo", step=step,
                               split="unlearn")
    return records


def test_every_paper_claim_has_a_violation_test():
    assert {c.name for c in PAPER.claims} == set(VIOLATIONS) | {"sustainability_unlearn_drops"}


@pytest.mark.parametrize("name", sorted(VIOLATIONS) + ["sustainability_unlearn_drops"])
def test_a_run_violating_one_claim_fails_exactly_that_claim(name):
    if name == "sustainability_unlearn_drops":
        records, implied = _sustainability_unlearn_plateau(paper_records()), set()
    else:
        match, value, implied = VIOLATIONS[name]
        records = set_accuracy(paper_records(), value, **match)
    verdicts = check_claims(records, PAPER, *BOOTSTRAP)
    assert failing(verdicts) == {name} | implied
    verdict = next(v for v in verdicts if v.name == name)
    assert "(fails)" in verdict.measured


# ---- the generic kinds, on small golden files --------------------------------------------------------

HEADER = '[golden]\nprofile = "tiny"\n'
SEL = 'experiment = "finetuned", target = "proj+llm", split = "mmbench", modality = "all"'


def golden_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "g.toml"
    path.write_text(text)
    return path


def test_min_max_numbers_and_every_method_found(tmp_path):
    g = load_golden(golden_file(tmp_path, HEADER + f'''
[[number]]
name = "mm"
source = "recorded"
experiment = "finetuned"
method = "ga"
target = "proj+llm"
step = 1
split = "mmbench"
modality = "all"
min = 60.0
max = 70.0

[[claim]]
name = "kept"
kind = "ratio_at_least"
source = "s"
before = {{ {SEL}, step = 0 }}
after = {{ {SEL}, step = 1 }}
threshold = 0.9
'''))
    records = [rec("finetuned", m, "proj+llm", s, "mmbench", "all", a, profile="tiny")
               for m in ("ga", "mine") for s, a in ((0, 70.0), (1, 65.0 if m == "ga" else 50.0))]
    assert [v.passed for v in check_numbers(records, g)] == [True]
    (claim,) = check_claims(records, g, *BOOTSTRAP)
    assert not claim.passed  # the new method "mine" is checked too, since no values are listed
    assert "mine 0.714 (fails)" in claim.measured and "ga 0.929" in claim.measured
    assert check_claims([r for r in records if r["method"] == "ga"], g, *BOOTSTRAP)[0].passed


def test_missing_records_fail_and_say_missing():
    spec = next(n for n in PAPER.numbers if n.name == "table_b_ga_llm_mmbench")
    records = [r for r in table_b_records() if not (r["target"] == "llm" and r["split"] == "mmbench")]
    verdict = check_number(records, spec)
    assert not verdict.passed and verdict.measured == "missing"
    assert "record missing" in failure_message(verdict, spec)
    claims = {v.name: v for v in check_claims(records, PAPER, *BOOTSTRAP)}
    assert not claims["table_b_llm_only_costs_more_mmbench"].passed
    assert "missing" in claims["table_b_llm_only_costs_more_mmbench"].measured
    assert not claims["finetuned_unlearn_drops"].passed  # no finetuned records at all
    assert check_claims([], PAPER, *BOOTSTRAP) and not any(v.passed for v in check_claims([], PAPER, *BOOTSTRAP))


def test_nan_and_zero_before_fail():
    spec = next(n for n in PAPER.numbers if n.name == "table_b_before_mmbench")
    records = set_accuracy(table_b_records(), math.nan, experiment="modality", step=0, split="mmbench")
    assert check_number(records, spec).measured == "nan" and not check_number(records, spec).passed
    claim = next(c for c in PAPER.claims if c.name == "table_b_proj_llm_mmbench_slight_drop")
    records = set_accuracy(table_b_records(), 0.0, experiment="modality", step=0, split="mmbench")
    verdict = check_claim(records, claim, *BOOTSTRAP)
    assert not verdict.passed and "undefined" in verdict.measured


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_number_passes_exactly_inside_its_range(x):
    spec = next(n for n in PAPER.numbers if n.name == "table_b_ga_proj_llm_mmbench")
    records = set_accuracy(table_b_records(), x, **spec.select)
    assert check_number(records, spec).passed == (spec.low - 1e-9 <= x <= spec.high + 1e-9)


# ---- malformed golden files --------------------------------------------------------------------------

NUMBER = '''[[number]]
name = "n1"
source = "s"
experiment = "finetuned"
method = "ga"
target = "proj+llm"
step = 1
split = "mmbench"
modality = "all"
'''
CLAIM = f'''[[claim]]
name = "c1"
source = "s"
kind = "ratio_at_least"
before = {{ {SEL}, step = 0 }}
after = {{ {SEL}, step = 1 }}
'''


RANGE = "min = 0\nmax = 1\n"
T = "threshold = 1\n"
NUMBER_KEYS = "experiment, field, max, method, min, modality, name, profiles, source, split, step, target, tolerance, value"
CLAIM_KEYS = "after, before, kind, name, over, profiles, source, statement, threshold, values"
NON_INCREASING = '[[claim]]\nname = "c2"\nsource = "s"\nkind = "non_increasing"\n'


@pytest.mark.parametrize("text, message", [
    # the file as a whole (no [golden] header in front of these)
    ("[[number]\n", "not valid TOML: Expected ']]' at the end of an array declaration (at line 1, column 9)"),
    ("[[numbers]]\nname = 'x'\n", "top level: unknown key 'numbers' (allowed: golden, number, claim)"),
    ("golden = 1\n", "top level: key 'golden' must be a table"),
    ("number = 1\n", "top level: key 'number' must be an array of tables ([[number]])"),
    ("claim = 1\n", "top level: key 'claim' must be an array of tables ([[claim]])"),
    ("[golden]\nprofile = 1\n", "[golden]: key 'profile' must be a string, got 1"),
    ("[golden]\nenvironments = [1]\n", "[golden]: key 'environments' must be a list of tables"),
    ("[golden]\nenvironments = {a = 1}\n", "[golden]: key 'environments' must be a list of tables"),
    ("number = [1]\n", "[[number]] #1: must be a table"),
    ("claim = [1]\n", "[[claim]] #1: must be a table"),
    # [[number]]: each error names the entry (its place until it has a name) and the key
    (HEADER + NUMBER + RANGE + "[[number]]\nsource = 's'\n", "[[number]] #2: missing key 'name'"),
    (HEADER + NUMBER.replace('source = "s"\n', ""), "[[number]] 'n1': missing key 'source'"),
    (HEADER + NUMBER.replace('split = "mmbench"\n', ""), "[[number]] 'n1': missing key 'split'"),
    (HEADER + NUMBER.replace('method = "ga"', "method = 1") + RANGE, "[[number]] 'n1': key 'method' must be a string, got 1"),
    (HEADER + NUMBER, "[[number]] 'n1': missing key 'value' (with 'tolerance') or 'min' and 'max'"),
    (HEADER + NUMBER + "value = 1.0\n", "[[number]] 'n1': missing key 'tolerance'"),
    (HEADER + NUMBER + "tolerance = 1.0\n", "[[number]] 'n1': missing key 'value'"),
    (HEADER + NUMBER + "max = 1.0\n", "[[number]] 'n1': missing key 'min'"),
    (HEADER + NUMBER + "min = 1.0\n", "[[number]] 'n1': missing key 'max'"),
    (HEADER + NUMBER + "value = 1.0\ntolerance = 1.0\nmin = 0.0\n",
     "[[number]] 'n1': give either 'value' and 'tolerance' or 'min' and 'max', not both"),
    (HEADER + NUMBER + "tolerance = 1.0\nmax = 0.0\n",
     "[[number]] 'n1': give either 'value' and 'tolerance' or 'min' and 'max', not both"),
    (HEADER + NUMBER + "min = 5.0\nmax = 1.0\n", "[[number]] 'n1': key 'min' (5.0) is greater than 'max' (1.0)"),
    (HEADER + NUMBER + "value = 1.0\ntolerence = 1.0\n",
     f"[[number]] 'n1': unknown key 'tolerence' (allowed: {NUMBER_KEYS})"),
    (HEADER + NUMBER + "value = '1.0'\ntolerance = 1.0\n", "[[number]] 'n1': key 'value' must be a number, got '1.0'"),
    (HEADER + NUMBER + "value = 1.0\ntolerance = -1.0\n", "[[number]] 'n1': key 'tolerance' must be >= 0, got -1.0"),
    (HEADER + NUMBER.replace("step = 1", 'step = "1"') + RANGE, "[[number]] 'n1': key 'step' must be an integer, got '1'"),
    (HEADER + NUMBER.replace("step = 1", "step = true") + RANGE,
     "[[number]] 'n1': key 'step' must be an integer, got True"),
    (HEADER + NUMBER + RANGE + "field = 'loss'\n", "[[number]] 'n1': key 'field' must be one of accuracy, n, got 'loss'"),
    (HEADER + NUMBER + RANGE + "profiles = 'tiny'\n",
     "[[number]] 'n1': key 'profiles' must be a list of strings, got 'tiny'"),
    (HEADER + NUMBER + RANGE + "profiles = ['tiny', 1]\n",
     "[[number]] 'n1': key 'profiles' must be a list of strings, got ['tiny', 1]"),
    (HEADER + NUMBER + RANGE + NUMBER + RANGE, "entry 'n1': key 'name' is used twice"),
    (HEADER + NUMBER + RANGE + CLAIM.replace('"c1"', '"n1"') + T, "entry 'n1': key 'name' is used twice"),
    # [[claim]]
    (HEADER + CLAIM + T + "[[claim]]\nsource = 's'\n", "[[claim]] #2: missing key 'name'"),
    (HEADER + CLAIM, "[[claim]] 'c1': missing key 'threshold'"),
    (HEADER + CLAIM.replace('source = "s"\n', "") + T, "[[claim]] 'c1': missing key 'source'"),
    (HEADER + CLAIM.replace("ratio_at_least", "bigger") + T, ("[[claim]] 'c1': key 'kind' must be one of drop_at_least, "
     "less_than, non_increasing, ratio_at_least, ratio_at_most, ratio_less, got 'bigger'")),
    (HEADER + CLAIM + "threshold = 'high'\n", "[[claim]] 'c1': key 'threshold' must be a number, got 'high'"),
    (HEADER + CLAIM + T + "margin = 1\n", f"[[claim]] 'c1': unknown key 'margin' (allowed: {CLAIM_KEYS})"),
    (HEADER + CLAIM.replace("after = ", "later = ") + T, f"[[claim]] 'c1': unknown key 'later' (allowed: {CLAIM_KEYS})"),
    (HEADER + CLAIM + T + "statement = 1\n", "[[claim]] 'c1': key 'statement' must be a string, got 1"),
    (HEADER + CLAIM.replace('"ratio_at_least"', "1") + T, "[[claim]] 'c1': key 'kind' must be a string, got 1"),
    (HEADER + CLAIM + T + "over = 1\n", "[[claim]] 'c1': key 'over' must be a string, got 1"),
    (HEADER + NUMBER + RANGE + "field = 1\n", "[[number]] 'n1': key 'field' must be a string, got 1"),
    (HEADER + CLAIM.replace(f"after = {{ {SEL}, step = 1 }}\n", "") + T, "[[claim]] 'c1': missing key 'after'"),
    (HEADER + CLAIM.replace(f"after = {{ {SEL}, step = 1 }}", "after = 1") + T,
     "[[claim]] 'c1': key 'after' must be a table, got 1"),
    (HEADER + CLAIM.replace(", step = 1 }", " }") + T, "[[claim]] 'c1': key 'after': missing field 'step'"),
    (HEADER + CLAIM.replace(", step = 1 }", ', step = 1, method = "ga" }') + T,
     "[[claim]] 'c1': key 'after': field 'method' is filled by 'over' (method)"),
    (HEADER + CLAIM.replace(", step = 1 }", ", step = 1, seed = 0 }") + T, ("[[claim]] 'c1': key 'after': field 'seed' is "
     "not a record field (experiment, method, target, step, split, modality)")),
    (HEADER + CLAIM.replace('split = "mmbench", modality = "all", step = 1', 'split = 2, modality = "all", step = 1') + T,
     "[[claim]] 'c1': key 'after': field 'split' must be a string, got 2"),
    (HEADER + CLAIM.replace(", step = 1 }", ', step = "1" }') + T,
     "[[claim]] 'c1': key 'after': field 'step' must be an integer, got '1'"),
    (HEADER + CLAIM + T + "over = 'seed'\n",
     "[[claim]] 'c1': key 'over' must be one of experiment, method, target, split, modality, got 'seed'"),
    (HEADER + CLAIM + T + "over = 'step'\n",
     "[[claim]] 'c1': key 'over' must be one of experiment, method, target, split, modality, got 'step'"),
    (HEADER + CLAIM + T + "values = []\n", "[[claim]] 'c1': key 'values' must be a non-empty list, got []"),
    (HEADER + CLAIM + T + "values = 'ga'\n", "[[claim]] 'c1': key 'values' must be a non-empty list, got 'ga'"),
    (HEADER + CLAIM + T + "values = ['ga', 2]\n", "[[claim]] 'c1': key 'values': each method must be a string, got 2"),
    (HEADER + CLAIM + T + "profiles = [1]\n", "[[claim]] 'c1': key 'profiles' must be a list of strings, got [1]"),
    (HEADER + NON_INCREASING + f"steps = [0]\nseries = {{ {SEL} }}\n",
     "[[claim]] 'c2': key 'steps' must list at least two integers, got [0]"),
    (HEADER + NON_INCREASING + f"steps = [0, 1]\nseries = {{ {SEL}, step = 0 }}\n",
     "[[claim]] 'c2': key 'series': field 'step' is given by 'steps'"),
    (HEADER + '[[claim]]\nname = "c3"\nsource = "s"\nkind = "ratio_less"\nmeasure = "kept"\n'
     + "".join(f"{k} = {{ {SEL}, step = 0 }}\n" for k in ("a_before", "a_after", "b_before", "b_after")),
     "[[claim]] 'c3': key 'measure' must be 'retained' or 'forgotten', got 'kept'"),
])
def test_malformed_golden_files_name_the_file_the_entry_and_the_key(tmp_path, text, message):
    """The whole message: the file, where in it (the entry by name, or by place until it has one), the key."""
    path = golden_file(tmp_path, text)
    with pytest.raises(ReproError) as err:
        load_golden(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_missing_golden_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReproError, match="golden file not found"):
        load_golden(tmp_path / "nope.toml")


# ---- verify_run ----------------------------------------------------------------------------------


def test_verify_run_passes_the_papers_numbers(tmp_path, capsys):
    run = write_run(tmp_path, paper_records())
    assert verify_run(run, PAPER_FILE) == 0
    out = capsys.readouterr().out
    total = len(PAPER.entries())
    assert out.rstrip().splitlines()[-1] == f"{total} passed, 0 failed"
    assert "table_b_ga_proj_llm_mmbench" in out and "FAIL" not in out
    verdict = (run / "report" / "verdict.md").read_text()
    assert "| table_b_ga_proj_llm_mmbench" in verdict and verdict.rstrip().endswith(f"{total} passed, 0 failed")


def test_verify_run_fails_a_perturbed_copy(tmp_path, capsys):
    records = set_accuracy(paper_records(), 52.0, experiment="modality", target="proj+llm", step=1,
                           split="mmbench")
    run = write_run(tmp_path, records)
    assert verify_run(run, PAPER_FILE) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| table_b_ga_proj_llm_mmbench "))
    assert "52.0" in row and "FAIL" in row and "[66.1, 76.1]" in row
    # 52.0 also breaks "Proj+LLM keeps >= 90% of MMBench"; 52.0 vs 48.8 breaks "LLM-only costs 10 points more"
    assert out.rstrip().splitlines()[-1] == f"{len(PAPER.entries()) - 3} passed, 3 failed"


def test_verify_run_picks_the_golden_file_of_the_runs_profile(tmp_path, capsys):
    assert find_golden(PROFILE) == PAPER_FILE  # paper.toml declares profile = "llava-1.5-13b"
    assert verify_run(write_run(tmp_path, paper_records()), None) == 0
    capsys.readouterr()


def test_verify_run_prefers_profile_named_file_and_errors_without_one(tmp_path, monkeypatch):
    gdir = tmp_path / "golden"
    gdir.mkdir()
    (gdir / "tiny.toml").write_text(HEADER + NUMBER + "min = 0\nmax = 100\n")
    monkeypatch.setattr(golden_mod, "GOLDEN_DIR", gdir)
    assert find_golden("tiny") == gdir / "tiny.toml"
    records = [rec("finetuned", "ga", "proj+llm", 1, "mmbench", "all", 50.0, profile="tiny")]
    run = tmp_path / "r"
    run.mkdir()
    (run / "results.jsonl").write_text(json.dumps(records[0]) + "\n")
    assert verify_run(run, None) == 0
    with pytest.raises(ReproError, match="no golden file for profile 'llava-1.5-7b'.*--golden FILE"):
        find_golden("llava-1.5-7b")
    monkeypatch.setattr(golden_mod, "GOLDEN_DIR", tmp_path / "absent")
    with pytest.raises(ReproError, match="no golden directory"):
        verify_run(run, None)


def test_verify_run_refuses_empty_or_mixed_results(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    with pytest.raises(ReproError, match="no results to verify"):
        verify_run(run, PAPER_FILE)
    mixed = table_b_records()
    mixed[0] = {**mixed[0], "profile": "tiny"}
    with pytest.raises(ReproError, match="several profiles"):
        verify_run(write_run(tmp_path, mixed), PAPER_FILE)


def test_verify_run_refuses_a_golden_file_for_another_profile(tmp_path):
    records = [{**r, "profile": "tiny"} for r in paper_records()]  # every range and claim would hold
    with pytest.raises(ReproError, match="holds the golden ranges of profile 'llava-1.5-13b'.* of 'tiny'"):
        verify_run(write_run(tmp_path, records), PAPER_FILE)


# ---- how `all` ends ------------------------------------------------------------------------------------


def test_all_ends_with_the_verdict_of_the_runs_profile_then_where_everything_is(tmp_path, capsys):
    from repro.experiments.runner import conclude

    (tmp_path / "good").mkdir(), (tmp_path / "bad").mkdir()
    good = write_run(tmp_path / "good", paper_records())
    (good / "profile.json").write_text(json.dumps({"name": PROFILE}))
    assert conclude(good, {"total": 61.4}, " (2 processes)") == 0
    out = capsys.readouterr().out
    assert f"{len(PAPER.entries())} passed, 0 failed" in out
    assert out.endswith(f"\nresults: {good / 'results.jsonl'}\nmanifest: {good / 'manifest.json'}\n"
                        f"tables and figures: {good / 'report'}\nwall time: 61 s (2 processes)\n")

    bad = write_run(tmp_path / "bad", set_accuracy(paper_records(), 52.0, experiment="modality",
                                                   target="proj+llm", step=1, split="mmbench"))
    (bad / "profile.json").write_text(json.dumps({"name": PROFILE}))
    assert conclude(bad, {"total": 1.0}) == 1  # a FAIL is the run's status
    capsys.readouterr()
    assert conclude(bad, {"total": 1.0}, verify=False) == 0  # --no-verify: no verdict at all
    out = capsys.readouterr().out
    assert out.startswith("\nresults: ") and out.endswith("wall time: 1 s\n")

    (bad / "profile.json").write_text(json.dumps({"name": "no-such-profile"}))
    assert conclude(bad, {"total": 1.0}) == 0
    assert "pulse-repro: no verdict: no golden file for profile 'no-such-profile'" in capsys.readouterr().out


# ---- a run measured under other evaluation settings ------------------------------------------------------


def _tiny_run(tmp_path: Path, accuracy: float, **eval_settings) -> Path:
    from repro.config import read_profile

    run = write_run(tmp_path, [rec("finetuned", "ga", "proj+llm", 1, "mmbench", "all", accuracy, profile="tiny")])
    profile = read_profile("tiny").to_dict()
    profile["eval"].update(eval_settings)
    (run / "profile.json").write_text(json.dumps(profile))
    return run


@pytest.mark.parametrize("settings, label", [({}, "FAIL"), ({"shots": 1}, "SETTINGS DIFFER"),
                                             ({"benchmarks": ["mmbench", "generation"]}, "FAIL")])
def test_a_range_missed_under_other_evaluation_settings_is_reported_not_failed(tmp_path, capsys, settings, label):
    gold = golden_file(tmp_path, HEADER + NUMBER + "min = 60\nmax = 70\n")  # recorded as tiny ships: zero-shot
    run = _tiny_run(tmp_path, 40.0, **settings)
    assert verify_run(run, gold) == (1 if label == "FAIL" else 0)
    out = capsys.readouterr().out
    assert label in next(line for line in out.splitlines() if line.startswith("| n1 "))
    # adding benchmarks only adds records: it is not a difference
    assert ("eval.shots: 1 here, 0 there" in out) == ("shots" in settings)
    assert out.rstrip().endswith("not as recorded under other evaluation settings (not failed)" if "shots" in settings
                                 else "0 passed, 1 failed")
    if settings:
        assert verify_run(run, gold, strict=True) == 1


def test_the_golden_files_own_settings_decide(tmp_path, capsys):
    gold = golden_file(tmp_path, HEADER + 'eval = {scoring = "option-loglik", shots = 1, mmbench_template = "plain", '
                       'mmbench_answer = "first-letter", generate_tokens = 50}\n' + NUMBER + "min = 60\nmax = 70\n")
    assert verify_run(_tiny_run(tmp_path, 40.0, shots=1), gold) == 1  # recorded one-shot, measured one-shot
    assert "Settings differ" not in capsys.readouterr().out


def test_a_claim_not_holding_under_other_evaluation_settings_is_reported_not_failed(tmp_path, capsys):
    gold = golden_file(tmp_path, HEADER + CLAIM + "threshold = 0.9\n")  # after / before >= 0.9
    run = _tiny_run(tmp_path, 40.0, shots=1)  # the after record
    with (run / "results.jsonl").open("a") as fh:
        fh.write(json.dumps(rec("finetuned", "ga", "proj+llm", 0, "mmbench", "all", 80.0, profile="tiny")) + "\n")
    assert verify_run(run, gold) == 0
    assert "| c1 " in (out := capsys.readouterr().out) and "SETTINGS DIFFER" in out
    assert verify_run(run, gold, strict=True) == 1
    (run / "profile.json").unlink()  # no settings known: judged as usual
    assert verify_run(run, gold) == 1


def test_a_run_is_verified_against_the_profiles_file_recorded_with_its_settings(tmp_path, monkeypatch, capsys):
    from repro.report.verify import golden_for_run

    gdir = tmp_path / "golden"
    gdir.mkdir()
    (gdir / "tiny.toml").write_text(HEADER + NUMBER + "min = 60\nmax = 70\n")
    (gdir / "tiny-oneshot.toml").write_text(
        HEADER + 'eval = {scoring = "option-loglik", shots = 1, mmbench_template = "plain", '
        'mmbench_answer = "first-letter", generate_tokens = 50}\n' + NUMBER + "min = 30\nmax = 50\n")
    monkeypatch.setattr(golden_mod, "GOLDEN_DIR", gdir)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    zero, one = _tiny_run(tmp_path / "a", 65.0), _tiny_run(tmp_path / "b", 40.0, shots=1)
    assert golden_for_run(zero, "tiny") == gdir / "tiny.toml"
    assert golden_for_run(one, "tiny") == gdir / "tiny-oneshot.toml"
    assert verify_run(one, None) == 0 and "tiny-oneshot.toml" in capsys.readouterr().out
    (gdir / "tiny-oneshot.toml").unlink()  # none recorded that way: the profile's file, settings differing
    assert golden_for_run(one, "tiny") == gdir / "tiny.toml"


def test_a_file_pinning_tasks_the_run_did_not_measure_is_not_its_golden_file(tmp_path, monkeypatch):
    from repro.report.verify import golden_for_run, pinned_benchmarks

    gdir = tmp_path / "golden"
    gdir.mkdir()
    (gdir / "tiny.toml").write_text(HEADER + NUMBER + "min = 60\nmax = 70\n")
    task = NUMBER.replace('name = "n1"', 'name = "n2"').replace('split = "mmbench"', 'split = "retain_generation"')
    (gdir / "tiny-mllmu.toml").write_text(
        HEADER + 'eval = {scoring = "option-loglik", shots = 1, mmbench_template = "plain", '
        'mmbench_answer = "first-letter", generate_tokens = 50}\n' + NUMBER + "min = 30\nmax = 50\n"
        + task + "min = 10\nmax = 40\n")
    monkeypatch.setattr(golden_mod, "GOLDEN_DIR", gdir)
    assert pinned_benchmarks(load_golden(gdir / "tiny-mllmu.toml")) == {"mmbench", "generation"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    one_shot = _tiny_run(tmp_path / "a", 40.0, shots=1)  # its generation records would all be missing
    with_task = _tiny_run(tmp_path / "b", 40.0, shots=1, benchmarks=["mmbench", "generation"])
    assert golden_for_run(one_shot, "tiny") == gdir / "tiny.toml"  # judged with its settings differing
    assert golden_for_run(with_task, "tiny") == gdir / "tiny-mllmu.toml"


def test_the_verdicts_last_line_counts_each_verdict_once_under_its_label(tmp_path):
    from repro.report.golden import Verdict
    from repro.report.verify import render_verdict

    def v(name, **kw):
        return Verdict(name, "e", "m", kw.pop("passed", False), "s", **kw)

    claims = [v("a", passed=True), v("b"), v("c", inconclusive=True),
              v("d", inconclusive=True, excused=True, excuse="SETTINGS DIFFER"),  # shown INCONCLUSIVE
              v("e", excused=True, excuse="SETTINGS DIFFER"), v("f", excused=True)]
    golden = load_golden(golden_file(tmp_path, HEADER + NUMBER + "min = 60\nmax = 70\n"))
    last = render_verdict([], claims, golden, tmp_path, "tiny").rstrip().splitlines()[-1]
    assert last == ("1 passed, 1 failed, 2 inconclusive (the 95% interval straddles the threshold), 1 outside "
                    "ranges recorded in another environment (not failed), 1 not as recorded under other "
                    "evaluation settings (not failed)")
