"""Figure 3, Figure 4 and Table B from a small results file written here, against values worked out by hand
from the paper's definitions (docs/design.md, "The protocol"): forgotten% = 100 (1 - after/before) on
D_unlearn, retained% = 100 after/before on D_retain and MMBench, Figure 4 the accuracy after each request,
Table B the accuracy per modality before and after GA on each update target. Each file also holds records
the view must not read (another target, modality, step or split), with numbers that would show."""

from __future__ import annotations

import json

import pytest

from repro.experiments.results import read_results
from repro.report.views import TABLE_B_COLUMNS, figure3, figure4, table_b


def record(experiment, method, step, split, accuracy, modality="all", target="proj+llm") -> dict:
    return {"experiment": experiment, "method": method, "target": target, "step": step, "split": split,
            "modality": modality, "accuracy": accuracy, "n": 10, "profile": "hand", "seed": 0, "model": "m"}


def results_file(tmp_path, records: list[dict]) -> list[dict]:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return read_results(path)


def one_request(experiment, method, split_numbers: dict[str, tuple[float, float]]) -> list[dict]:
    """before (step 0) and after (step 1) per split, after decoys the view must not read (first: a view that
    takes the first record near enough would take them)."""
    out = []
    for split, (before, after) in split_numbers.items():
        out += [record(experiment, method, 1, split, 99.0, modality="text"),
                record(experiment, method, 1, split, 98.0, target="llm")]
        out += [record(experiment, method, 0, split, before), record(experiment, method, 1, split, after)]
    return out


def test_figure3_is_forgotten_and_retained_percent_of_the_before_numbers(tmp_path):
    records = results_file(tmp_path, [
        *one_request("finetuned", "ga", {"unlearn": (80.0, 20.0), "retain": (90.0, 45.0), "mmbench": (60.0, 54.0)}),
        *one_request("finetuned", "npo", {"unlearn": (50.0, 50.0), "retain": (40.0, 50.0), "mmbench": (0.0, 10.0)}),
        *one_request("pretrained", "ga", {"unlearn": (64.0, 16.0), "retain": (80.0, 20.0), "mmbench": (75.0, 60.0)}),
        record("pretrained", "ga", 1, "shard_1", 1.0),
    ])
    got = figure3(records)
    assert got == {
        # 100 (1 - 20/80) = 75; 100 * 45/90 = 50; 100 * 54/60 = 90
        "finetuned": {"ga": {"forgotten_unlearn": pytest.approx(75.0), "retained_retain": pytest.approx(50.0),
                             "retained_mmbench": pytest.approx(90.0)},
                      # nothing forgotten; more retained than before; no ratio to a zero before
                      "npo": {"forgotten_unlearn": pytest.approx(0.0), "retained_retain": pytest.approx(125.0),
                              "retained_mmbench": None}},
        # 100 (1 - 16/64) = 75; 100 * 20/80 = 25; 100 * 60/75 = 80
        "pretrained": {"ga": {"forgotten_unlearn": pytest.approx(75.0), "retained_retain": pytest.approx(25.0),
                              "retained_mmbench": pytest.approx(80.0)}},
    }


def test_figure3_leaves_a_request_without_an_after_record_empty(tmp_path):
    """A diverged request writes no step 1: its bars are empty, not computed from another record."""
    records = results_file(tmp_path, [record("finetuned", "ga", 0, s, 50.0) for s in ("unlearn", "retain", "mmbench")])
    assert figure3(records) == {"finetuned": {"ga": dict.fromkeys(
        ("forgotten_unlearn", "retained_retain", "retained_mmbench"))}}


def test_figure4_is_the_accuracy_after_each_request_of_the_chain(tmp_path):
    curves = {"unlearn": [80.0, 70.0, 55.0, 40.0, 30.0, 25.0], "retain": [90.0, 88.0, 85.0, 80.0, 78.0, 70.0],
              "mmbench": [60.0, 60.0, 59.0, 57.0, 56.0, 50.0]}
    rows = [record("sustainability", "ga", 2, "unlearn", 1.0, modality="text"),  # decoys first
            record("sustainability", "ga", 2, "unlearn", 2.0, target="llm"),
            record("finetuned", "ga", 1, "unlearn", 3.0)]
    rows += [record("sustainability", "ga", k, split, values[k]) for split, values in curves.items() for k in range(6)]
    # NPO diverged at request 3: steps 0..2 only
    rows += [record("sustainability", "npo", k, split, values[k] - 1) for split, values in curves.items()
             for k in range(3)]
    rows += [record("sustainability", "ga", k, "shard_1", 5.0) for k in range(6)]  # shards are not Figure 4's
    assert figure4(results_file(tmp_path, rows)) == {
        "unlearn": {"ga": [80.0, 70.0, 55.0, 40.0, 30.0, 25.0], "npo": [79.0, 69.0, 54.0, None, None, None]},
        "retain": {"ga": [90.0, 88.0, 85.0, 80.0, 78.0, 70.0], "npo": [89.0, 87.0, 84.0, None, None, None]},
        "mmbench": {"ga": [60.0, 60.0, 59.0, 57.0, 56.0, 50.0], "npo": [59.0, 59.0, 58.0, None, None, None]},
    }


def test_table_b_is_ga_per_modality_before_and_after_on_each_target(tmp_path):
    # (split, modality) -> before, after GA on Proj+LLM, after GA on LLM
    cells = {("unlearn", "multimodal"): (70.0, 20.0, 25.0), ("unlearn", "text"): (72.0, 30.0, 24.0),
             ("retain", "multimodal"): (68.0, 50.0, 60.0), ("retain", "text"): (66.0, 52.0, 58.0),
             ("mmbench", "all"): (55.0, 45.0, 53.0), ("mmbench_circular", "all"): (41.0, 33.0, 39.0)}
    rows = [record("finetuned", "ga", 1, "unlearn", 2.0, "text"), record("modality", "npo", 0, "unlearn", 3.0, "text")]
    for i, target in enumerate(("proj+llm", "llm"), 1):
        rows += [record("modality", "ga", 1, "unlearn", 1.0, "all", target)]  # "all" is no column of Table B's
        for (split, modality), values in cells.items():
            rows += [record("modality", "ga", 0, split, values[0], modality, target),
                     record("modality", "ga", 1, split, values[i], modality, target)]
    table = table_b(results_file(tmp_path, rows))
    assert [label for label, _ in table] == ["before unlearning", "GA, Proj, LLM", "GA, LLM"]
    assert TABLE_B_COLUMNS[:5] == tuple(list(cells)[:5])  # the paper's five columns, in its order
    for i, (_, values) in enumerate(table):
        assert values == [cells[column][i] for column in TABLE_B_COLUMNS]


def test_the_task_table_reads_each_task_before_and_after_the_last_request(tmp_path):
    from repro.report.tables import render_tables
    from repro.report.views import task_cells

    records = [record("sustainability", "ga", step, f"{split}_{task}", value)
               for step, offset in ((0, 0.0), (1, 5.0), (2, 10.0))
               for split, task, value in (("unlearn", "generation", 30.0 - offset), ("retain", "generation", 28.0),
                                          ("unlearn", "fill_blank", 60.0 - offset), ("retain", "fill_blank", 55.0))]
    records += [record("sustainability", "ga", 2, "unlearn_generation", 99.0, modality="text"),
                record("sustainability", "ga", 2, "unlearn", 77.0)]
    headers, rows = task_cells(results_file(tmp_path, records))
    assert headers == ["D_unlearn ROUGE-L", "D_retain ROUGE-L", "D_unlearn fill-in-the-blank %",
                       "D_retain fill-in-the-blank %"]
    assert [labels for labels, _ in rows] == [["sustainability", "GA", "Proj, LLM", "0"],
                                              ["sustainability", "GA", "Proj, LLM", "2"]]
    text = render_tables(results_file(tmp_path, records))
    line = next(t for t in text.splitlines() if t.startswith("| sustainability ") and "| 2 " in t)
    assert [c.strip() for c in line.strip("|").split("|")][4:] == ["20.0", "28.0", "50.0", "55.0"]
    assert task_cells(results_file(tmp_path, [record("finetuned", "ga", 0, "unlearn", 70.0)])) == ([], [])
