"""MMBench's two records from one set of predictions (repro/eval/benchmarks.py), against counts worked by hand:
single pass over the original questions, each its own cluster; circular over the groups, a group right only
when every copy is."""

from __future__ import annotations

import math

from repro.eval.benchmarks import BENCHMARKS
from repro.eval.items import Item

STRIDE = 1_000_000
RECORDS = BENCHMARKS.get("mmbench").records


def item(index: int, answer: str) -> Item:
    return Item(str(index), "", "", {"A": "a", "B": "b", "C": "c"}, answer, b"png", "multimodal", group=index % STRIDE)


# four groups of two copies each; the copies' answers rotate with their options
ITEMS = [item(1, "A"), item(STRIDE + 1, "B"), item(2, "B"), item(STRIDE + 2, "C"), item(3, "C"), item(STRIDE + 3, "A"),
         item(4, "A"), item(STRIDE + 4, "B")]
PREDS = {"1": "A", f"{STRIDE + 1}": "B",          # group 1: both copies right
         "2": "B", f"{STRIDE + 2}": "A",          # group 2: the original right, its copy wrong
         "3": "C", f"{STRIDE + 3}": "A",          # group 3: both right
         f"{STRIDE + 4}": "B"}                    # group 4: the original not answered, its copy right


def test_single_pass_scores_the_originals_each_its_own_cluster():
    got = RECORDS["mmbench"](ITEMS, PREDS, 200, 0)
    assert (got["accuracy"], got["n"], got["clusters"]) == (75.0, 4, 4)  # 3 of 4 originals
    assert got["per_cluster"] == {"1": [1, 1], "2": [1, 1], "3": [1, 1], "4": [0, 1]}


def test_circular_scores_a_group_right_only_when_every_copy_is():
    got = RECORDS["mmbench_circular"](ITEMS, PREDS, 200, 0)
    assert (got["accuracy"], got["n"], got["clusters"]) == (50.0, 4, 4)  # groups 1 and 3 of 4
    assert got["per_cluster"] == {"1": [1, 1], "2": [0, 1], "3": [1, 1], "4": [0, 1]}
    assert 0.0 <= got["ci_low"] <= got["accuracy"] <= got["ci_high"] <= 100.0


def test_accuracies_are_rounded_to_4_places():
    thirds = ITEMS[:6]
    assert RECORDS["mmbench"](thirds, PREDS, 200, 0)["accuracy"] == 100.0
    assert RECORDS["mmbench_circular"](thirds, PREDS, 200, 0)["accuracy"] == 66.6667


def test_both_records_draw_their_interval_with_the_seed_given():
    many = [item(i, "A") for i in range(1, 57)]
    preds = {str(i): "A" if i % 3 else "B" for i in range(1, 57)}
    for score in RECORDS.values():
        assert score(many, preds, 200, 0) == score(many, preds, 200, 0)
        assert (score(many, preds, 200, 0)["ci_low"], score(many, preds, 200, 0)["ci_high"]) != (
            score(many, preds, 200, 1)["ci_low"], score(many, preds, 200, 1)["ci_high"])


def test_no_questions_no_accuracy_and_no_interval():
    for score in RECORDS.values():
        got = score([], {}, 200, 0)
        assert math.isnan(got.pop("accuracy"))
        assert got == {"n": 0, "ci_low": None, "ci_high": None, "clusters": 0, "per_cluster": {}}
