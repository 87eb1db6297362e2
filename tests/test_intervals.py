"""Every number with its uncertainty: the person bootstrap, paired comparisons, three-way claim verdicts, the
paper's numbers against their sampling error, and the protocol over several seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from repro.eval.intervals import bootstrap, interval_fields, measured, percentile_interval, resample_indices
from repro.eval.items import Item
from repro.report.golden import check_claim, load_golden, sampling_agreement

# ---- the person bootstrap -----------------------------------------------------------------------------


def _coverage(people: int, questions: int, trials: int, cluster_by_person: bool) -> tuple[float, float]:
    """(share of 95% bootstrap intervals covering the truth, share of binomial ones doing so) on simulated
    people who each know their facts to their own degree: a person's questions rise and fall together."""
    rng = np.random.default_rng(0)
    mu, sd = 0.4, 1.5  # logit of a person's knowledge: mean and spread across people
    truth = 100 * np.mean(1 / (1 + np.exp(-(mu + sd * rng.standard_normal(2_000_000)))))
    boot = binom = 0
    for trial in range(trials):
        knows = 1 / (1 + np.exp(-(mu + sd * rng.standard_normal(people))))
        answers = rng.random((people, questions)) < knows[:, None]
        per = ({f"p{i}": [int(a.sum()), questions] for i, a in enumerate(answers)} if cluster_by_person else
               {f"p{i}q{j}": [int(a), 1] for i, row in enumerate(answers) for j, a in enumerate(row)})
        low, high = percentile_interval(bootstrap(per, 1000, trial))
        boot += low <= truth <= high
        acc = answers.mean()
        half = 196 * np.sqrt(acc * (1 - acc) / answers.size)
        binom += 100 * acc - half <= truth <= 100 * acc + half
    return boot / trials, binom / trials


def test_the_person_bootstrap_covers_the_truth_and_the_binomial_does_not():
    """50 people x 5 questions (a Table B cell): the person bootstrap's 95% interval covers the true accuracy
    in 93-97% of 1,000 seeded trials; a plain binomial interval over the 250 questions clearly less."""
    boot, binom = _coverage(50, 5, 1000, cluster_by_person=True)
    assert 0.93 <= boot <= 0.97, boot
    assert binom < 0.88, binom
    # resampling questions instead of people is the binomial's mistake: it under-covers as well
    by_question, _ = _coverage(50, 5, 300, cluster_by_person=False)
    assert by_question < 0.88, by_question


def _item(uid: str, person: str, answer: str = "A", modality: str = "text") -> Item:
    return Item(uid, "", "", {"A": "a", "B": "b"}, answer, None, modality, person=person)


def test_a_record_carries_its_interval_and_its_clusters():
    items = [_item(f"{p}#{q}", p) for p in ("a", "b", "c", "d") for q in range(5)]
    preds = {it.uid: "A" if it.person in ("a", "b") or it.uid.endswith("0") else "B" for it in items}
    got = measured(items, preds, lambda it: it.person, 500, 0)
    assert (got["accuracy"], got["n"], got["clusters"]) == (60.0, 20, 4)
    assert got["per_cluster"] == {"a": [5, 5], "b": [5, 5], "c": [1, 5], "d": [1, 5]}
    assert got["ci_low"] < 60.0 < got["ci_high"]
    assert got["ci_low"] >= 20.0 and got["ci_high"] <= 100.0  # never beyond the people's own accuracies


def test_records_over_the_same_people_draw_the_same_resamples():
    same = resample_indices(["b", "a", "c"], 50, 3)
    assert np.array_equal(same, resample_indices(["a", "b", "c"], 50, 3))
    assert not np.array_equal(same, resample_indices(["a", "b", "d"], 50, 3))


def test_the_profiles_seed_sets_every_draw():
    """The same seed draws the same resamples, another seed others: at every level, down to the record."""
    per = {f"p{i}": [i % 4, 3] for i in range(30)}  # a third of a point per question: many decimals
    assert not np.array_equal(resample_indices(list(per), 50, 3), resample_indices(list(per), 50, 4))
    assert np.array_equal(bootstrap(per, 50, 3), bootstrap(per, 50, 3))
    assert not np.array_equal(bootstrap(per, 50, 3), bootstrap(per, 50, 4))
    assert interval_fields(per, 200, 3) == interval_fields(per, 200, 3) != interval_fields(per, 200, 4)
    items = [_item(f"p{p}#{q}", f"p{p}") for p in range(30) for q in range(3)]
    preds = {it.uid: "A" if int(it.uid[-1]) < int(it.person[1:]) % 4 else "B" for it in items}  # as `per`
    assert measured(items, preds, lambda it: it.person, 200, 3) != measured(items, preds, lambda it: it.person, 200, 4)


def test_the_interval_is_the_2_5th_and_97_5th_percentile_rounded_to_4_places():
    assert percentile_interval(np.arange(1001.0)) == pytest.approx((25.0, 975.0), abs=1e-9)
    assert percentile_interval(np.arange(1001.0), 0.9) == pytest.approx((50.0, 950.0), abs=1e-9)
    per = {f"p{i}": [i % 4, 3] for i in range(30)}
    low, high = np.percentile(bootstrap(per, 200, 0), [2.5, 97.5])
    got = interval_fields(per, 200, 0)
    assert (got["ci_low"], got["ci_high"]) == (round(low, 4), round(high, 4))
    assert got["ci_low"] != round(low, 5) or got["ci_high"] != round(high, 5)  # thirds: rounding shows
    assert got["clusters"] == 30 and got["per_cluster"] is per


def test_a_record_without_questions_has_no_accuracy_and_no_interval():
    assert interval_fields({}, 200, 0) == {"ci_low": None, "ci_high": None, "clusters": 0, "per_cluster": {}}
    got = measured([], {}, lambda it: it.person, 200, 0)
    assert math.isnan(got.pop("accuracy"))
    assert got == {"n": 0, "ci_low": None, "ci_high": None, "clusters": 0, "per_cluster": {}}


# ---- three-way verdicts ---------------------------------------------------------------------------------

HEADER = '[golden]\nprofile = "tiny"\n'
SEL = 'experiment = "finetuned", target = "proj+llm", modality = "all"'
CLAIMS = {
    "ratio_at_least": f'before = {{ {SEL}, split = "retain", step = 0 }}\nafter = {{ {SEL}, split = "retain", step = 1 }}\nthreshold = 0.8',
    "ratio_at_most": f'before = {{ {SEL}, split = "retain", step = 0 }}\nafter = {{ {SEL}, split = "retain", step = 1 }}\nthreshold = 0.8',
    "drop_at_least": f'before = {{ {SEL}, split = "retain", step = 0 }}\nafter = {{ {SEL}, split = "retain", step = 1 }}\npoints = 10',
    "less_than": f'a = {{ {SEL}, split = "retain", step = 1 }}\nb = {{ {SEL}, split = "retain", step = 0 }}\nmargin = 10',
    "ratio_less": (f'a_before = {{ {SEL}, split = "retain", step = 0 }}\na_after = {{ {SEL}, split = "retain", step = 1 }}\n'
                   f'b_before = {{ {SEL}, split = "unlearn", step = 0 }}\nb_after = {{ {SEL}, split = "unlearn", step = 1 }}'),
    "non_increasing": f'series = {{ {SEL}, split = "retain" }}\nsteps = [0, 1]',
}


def _record(split: str, step: int, per_person: list[int], people: int = 40) -> dict:
    """A record of `people` people, five questions each; per_person[i % len] right answers for person i."""
    per = {f"p{i}": [per_person[i % len(per_person)], 5] for i in range(people)}
    hits = sum(h for h, _ in per.values())
    return {"experiment": "finetuned", "method": "ga", "target": "proj+llm", "step": step, "split": split,
            "modality": "all", "accuracy": 100 * hits / (5 * people), "n": 5 * people, "per_cluster": per,
            "profile": "tiny", "seed": 0}


def _verdict(tmp_path, kind: str, before: list[int], after: list[int], people: int = 40) -> str:
    path = tmp_path / "g.toml"
    path.write_text(HEADER + f'[[claim]]\nname = "c"\nkind = "{kind}"\nsource = "s"\n{CLAIMS[kind]}\n')
    (claim,) = load_golden(path).claims
    # D_unlearn falls from 80% to 20%, the same for every person: ratio_less compares D_retain's retained
    # fraction with its 0.25
    records = [_record("retain", 0, before, people), _record("retain", 1, after, people),
               _record("unlearn", 0, [4], people), _record("unlearn", 1, [1], people)]
    return check_claim(records, claim, 1000, 0).label


# per kind: (before, after) per-person right answers out of 5 that make the claim pass, fail, and straddle
CASES = {
    "ratio_at_least": {"PASS": ([4], [4]), "FAIL": ([5], [1]), "INCONCLUSIVE": ([5, 3], [5, 1])},
    "ratio_at_most": {"PASS": ([5], [1]), "FAIL": ([4], [4]), "INCONCLUSIVE": ([5, 3], [5, 1])},
    "drop_at_least": {"PASS": ([5], [1]), "FAIL": ([4], [4]), "INCONCLUSIVE": ([5, 3], [5, 2])},
    "less_than": {"PASS": ([5], [1]), "FAIL": ([4], [4]), "INCONCLUSIVE": ([5, 3], [5, 2])},
    "ratio_less": {"PASS": ([4], [0]), "FAIL": ([4], [4]), "INCONCLUSIVE": ([4], [2, 0])},
    "non_increasing": {"PASS": ([5], [1]), "FAIL": ([1], [5]), "INCONCLUSIVE": ([4, 3], [4, 4, 3])},
}


@pytest.mark.parametrize(("kind", "expected"), [(k, v) for k in CASES for v in CASES[k]])
def test_every_claim_kind_passes_fails_and_is_inconclusive(tmp_path, kind, expected):
    before, after = CASES[kind][expected]
    assert _verdict(tmp_path, kind, before, after) == expected


def test_more_people_turn_an_inconclusive_claim_into_a_verdict(tmp_path):
    """The same accuracies, 4 people or 400: the interval narrows around the same point."""
    before, after = [5, 5], [5, 2]  # half the people lose 3 of 5 answers: a drop of 30 points, threshold 10
    assert _verdict(tmp_path, "drop_at_least", before, after, people=4) == "INCONCLUSIVE"
    assert _verdict(tmp_path, "drop_at_least", before, after, people=400) == "PASS"


# ---- the paper's numbers against their sampling error ------------------------------------------------------


def test_a_number_is_consistent_with_the_paper_within_their_combined_sampling_error():
    record = {"accuracy": 30.0, "n": 250, "ci_low": 22.0, "ci_high": 38.0}  # se about 4.1 points
    assert sampling_agreement(record, 24.8) == "consistent"  # 5.2 apart, combined se about 5.6
    assert sampling_agreement(record, 15.0) == "differs"  # 15 apart
    assert sampling_agreement({"accuracy": 30.0, "n": 250}, 24.8) == ""  # no interval: no judgement
    # a narrower interval (more people) makes the same gap a difference
    assert sampling_agreement({**record, "ci_low": 28.0, "ci_high": 32.0}, 24.8) == "differs"
    # the paper's own sampling error counts: 5 points apart is within the two together, not within the run's alone
    assert sampling_agreement({**record, "ci_low": 26.08, "ci_high": 33.92}, 25.0) == "consistent"


# ---- several seeds ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    """`all --seeds 0 1` on the MICRO miniature, in a cache of its own; counts of the base models built."""
    from small_model import MICRO

    from repro.cli import main
    from repro.experiments import base_model

    root = tmp_path_factory.mktemp("seeds")
    built = []
    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_CACHE", str(root / "cache"))
    real = base_model.pretrain
    mp.setattr(base_model, "pretrain", lambda *a, **kw: built.append(1) or real(*a, **kw))
    try:
        code = main(["all", "--seeds", "0", "1", "--out", str(root / "runs"),
                     *(x for o in MICRO for x in ("--set", o))])
    finally:
        mp.undo()
    return root / "runs", code, built


@pytest.mark.slow
def test_seeds_run_once_each_on_one_world_and_one_base_model(seeds_run):
    parent, code, built = seeds_run
    assert code == 0
    assert len(built) == 1, "the tiny base model is held at the profile's seed and pre-trained once"
    profiles = [json.loads((parent / f"seed-{s}" / "profile.json").read_text()) for s in (0, 1)]
    assert [p["seed"] for p in profiles] == [0, 1]
    manifests = [json.loads((parent / f"seed-{s}" / "manifest.json").read_text()) for s in (0, 1)]
    assert manifests[0]["fictional"] != manifests[1]["fictional"]  # the tiny profile's split draw moves
    records = [json.loads(line) for line in (parent / "seed-1" / "results.jsonl").read_text().splitlines()]
    assert all(r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in records if r["n"])


@pytest.mark.slow
def test_the_report_across_seeds_has_spread_intervals_claims_and_figures(seeds_run):
    parent, _, _ = seeds_run
    text = (parent / "report" / "tables.md").read_text()
    assert "over seeds 0, 1" in text and " ± " in text and "## Claims across seeds" in text
    assert "of 2" in text  # how many seeds each claim holds in
    assert (parent / "report" / "figure3.png").stat().st_size > 1000
    assert (parent / "report" / "figure4.png").stat().st_size > 1000


# ---- the report's intervals ------------------------------------------------------------------------------


def test_the_reports_intervals_are_paired_where_the_people_are_the_same():
    """Figure 3's retained% of a request that keeps every person's score exactly: paired, no spread at all;
    resampled independently, it would spread widely. An accuracy's interval brackets it; a record without
    clusters has none."""
    from repro.report.evidence import Evidence
    from repro.report.tables import render_tables
    from repro.report.views import accuracy_interval, figure3_cells, figure3_interval

    people = [0, 5, 1, 4, 2, 5, 3, 0]
    retain = [_record("retain", step, people) for step in (0, 1)]  # every person keeps their score
    unlearn = [_record("unlearn", 0, [5, 3]), _record("unlearn", 1, [1, 2])]
    mmbench = [{**_record("mmbench", step, [4]), "per_cluster": {}} for step in (0, 1)]  # no clusters
    records = retain + unlearn + mmbench
    ev = Evidence(records, 1000, 0)
    (cells,) = figure3_cells(records)["finetuned"].values()
    assert figure3_interval(ev, "retained_retain", *cells["retained_retain"]) is None  # exactly 100% each draw
    low, high = figure3_interval(ev, "forgotten_unlearn", *cells["forgotten_unlearn"])
    forgotten = 100 - 100 * (0.3 / 0.8)  # 80% -> 30% of the answers
    assert low < forgotten < high and high - low < 40
    missing = {**cells["forgotten_unlearn"][1], "step": 7}  # a request that never ran
    assert figure3_interval(ev, "forgotten_unlearn", cells["forgotten_unlearn"][0], missing) is None
    low, high = accuracy_interval(ev, cells["retained_retain"][0])
    assert low < retain[0]["accuracy"] < high
    assert accuracy_interval(ev, cells["retained_mmbench"][0]) is None
    row = next(line for line in render_tables(records, ev).splitlines() if line.startswith("| finetuned"))
    cells_text = [c.strip() for c in row.strip("|").split("|")]
    assert cells_text[2].startswith(f"{forgotten:.1f} [") and cells_text[3] == "100.0"  # paired: no spread


@pytest.mark.slow
def test_each_seed_trains_its_own_lora_initialisation_on_one_base(seeds_run):
    """units.jsonl of each seed: the fine-tuned model and every request start from other LoRA weights (drawn
    from a seed of their own), over the one base model both seeds share."""
    from repro.experiments.provenance import read_units

    parent, _, _ = seeds_run
    units = {s: read_units(parent / f"seed-{s}") for s in (0, 1)}
    finetuned = {s: next(u for u in units[s] if u["kind"] == "finetuned") for s in (0, 1)}
    assert finetuned[0]["start"] == finetuned[1]["start"]
    assert finetuned[0]["lora_init"] != finetuned[1]["lora_init"]
    assert finetuned[0]["torch_seed"] != finetuned[1]["torch_seed"]
    inits = {s: [u["lora_init"] for u in units[s] if u["kind"] == "request" and u.get("made")] for s in (0, 1)}
    assert inits[0] and inits[1]
    assert not set(inits[0]) & set(inits[1])  # no request of seed 1 starts from an adapter of seed 0
