"""MLLMU-Bench's own evaluations as options (eval.shots, eval.benchmarks "generation" and "fill_blank"): the
prompts to the character of its eval.py (github.com/YokeYao/MLLMU-Bench at b83832a), its scoring rules
re-derived here, the seeded demonstration draw, and the records they give."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llava_text import DIALECT

from repro.data.records import MCQ, OpenQuestion, Person
from repro.errors import ConfigError
from repro.eval.items import Item, fill_blank_items, generation_items, item_digest, person_items

OPTIONS = {"A": "doctor", "B": "pilot", "C": "chef", "D": "nurse"}


def _person(pid: str, image: bytes = b"face") -> Person:
    questions = (MCQ("What is the occupation of the person in the image?", OPTIONS, "C", "multimodal"),
                 MCQ("Where was the person in the image born?", OPTIONS, "A", "multimodal"),
                 MCQ(f"What is the occupation of P{pid}?", OPTIONS, "B", "text"))
    generation = (OpenQuestion("What does the person in the image do?", "The person works as a chef", "multimodal"),
                  OpenQuestion(f"Where does P{pid} live?", f"P{pid} lives in Arlen", "text"))
    fill = (OpenQuestion("The person in the image works as a __", "chef", "multimodal"),
            OpenQuestion(f"P{pid} was born in __", "Ashby", "text"))
    return Person(pid, "Full_Set", image + pid.encode(), questions, (), generation, fill)


# ---- prompts, to the character ----------------------------------------------------------------------------


def test_the_demonstration_precedes_the_question_as_mllmu_bench_writes_it():
    from repro.eval.demonstrations import draw_demonstrations

    demos = draw_demonstrations([_person("900")], 1, seed=0)
    image_item, _, text_item = person_items([_person("001")], DIALECT, demos)
    assert image_item.prompt == (
        "USER: <image>\nQuestion: What is the occupation of the person in the image?\n"
        "A: doctor\nB: pilot\nC: chef\nD: nurse\nCorrect Answer: C\n"
        "USER: <image>\nWhat is the occupation of the person in the image?\n"
        "A: doctor\nB: pilot\nC: chef\nD: nurse\nJust give ONE letter representing the answer directly.\nASSISTANT:")
    assert text_item.prompt == (
        "USER:\nQuestion: What is the occupation of P900?\nA: doctor\nB: pilot\nC: chef\nD: nurse\nCorrect Answer: B\n"
        "USER:\nWhat is the occupation of P001?\nA: doctor\nB: pilot\nC: chef\nD: nurse\n"
        "Just give ONE letter representing the answer directly.\nASSISTANT:")
    # the demonstration's face first, then the asked one: the order of the prompt's <image> tokens
    assert image_item.images() == (b"face900", b"face001")
    assert text_item.images() is None
    # the option-likelihood scorer reads the same demonstration before its plain question
    assert image_item.context.startswith("USER: <image>\nQuestion: What is the occupation")
    assert image_item.context.endswith("USER: <image>\nWhat is the occupation of the person in the image?\nASSISTANT:")


def test_zero_shots_leave_the_prompt_and_its_key_as_they_were():
    plain = person_items([_person("001")], DIALECT)
    assert plain == person_items([_person("001")], DIALECT, {})
    assert plain[0].prompt.startswith("USER: <image>\nWhat is")
    assert len(item_digest(plain[0])) == 3  # the key of every existing prediction is unchanged


def test_a_demonstration_enters_the_predictions_key():
    from repro.eval.demonstrations import draw_demonstrations

    one = person_items([_person("001")], DIALECT, draw_demonstrations([_person("900")], 1, 0))[0]
    other = person_items([_person("001")], DIALECT, draw_demonstrations([_person("901")], 1, 0))[0]
    assert item_digest(one) != item_digest(person_items([_person("001")], DIALECT)[0])
    assert item_digest(one) != item_digest(other)
    # the same text with another face shown is another prediction
    swapped = Item(one.uid, one.prompt, one.context, one.options, one.answer, one.image, one.modality,
                   person=one.person, demo_images=(b"another face",))
    assert item_digest(swapped) != item_digest(one)


def test_generation_and_fill_in_the_blank_prompts_are_mllmu_benchs():
    gen_image, gen_text = generation_items([_person("001")], DIALECT)
    assert gen_image.prompt == ("USER: <image>\nWhat does the person in the image do?\nAnswer the question based on "
                                "your trained knowledge in one sentence accurately in ENGLISH.\nASSISTANT: ")
    assert gen_text.prompt == ("USER: Where does P001 live?\nAnswer the question based on your trained knowledge "
                               "in one sentence in ENGLISH.\nASSISTANT:")
    blank_image, blank_text = fill_blank_items([_person("001")], DIALECT)
    assert blank_image.prompt == ("USER: <image>\nThe person in the image works as a [Blank]\nPlease **ONLY** "
                                  "provide the correct answer that should replace the [Blank].\nASSISTANT:")
    assert blank_text.prompt == ("USER:\nP001 was born in [Blank]\nPlease **ONLY** provide the correct answer that "
                                 "should replace the [Blank].\nASSISTANT:")
    assert (gen_image.image, gen_text.image, blank_text.image) == (b"face001", None, None)
    assert gen_image.answer == "The person works as a chef" and blank_text.answer == "Ashby"
    assert len({it.uid for it in generation_items([_person("001")], DIALECT) + fill_blank_items([_person("001")], DIALECT)}) == 4


@pytest.mark.parametrize("generated, answer", [
    (" The person works as a chef.", "The person works as a chef."),
    ("chef ASSISTANT: and more", "chef"),  # what the model writes after its own ASSISTANT: is not the answer
    ("an ASSISTANT to the mayor", "an ASSISTANT to the mayor"),  # only the turn marker ends the answer
    ("\n", ""),
])
def test_the_answer_is_read_as_mllmu_bench_reads_it(generated, answer):

    assert DIALECT.open_answer(generated) == answer


# ---- scores, re-derived from the peer's rules --------------------------------------------------------------


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def _rouge_l_by_hand(reference: str, answer: str) -> float:
    """ROUGE-L F-measure (Lin 2004): LCS over lower-cased alphanumeric words; precision over the answer,
    recall over the reference. Words here are at most three letters, which the stemmer leaves alone."""
    ref, ans = (re.sub(r"[^a-z0-9]+", " ", t.lower()).split() for t in (reference, answer))
    common = _lcs(ref, ans)
    if not common:
        return 0.0
    precision, recall = common / len(ans), common / len(ref)
    return 2 * precision * recall / (precision + recall)


WORDS = st.sampled_from(["the", "a", "cat", "sat", "on", "mat", "dog", "ran", "big", "red"])


@settings(max_examples=60, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=8), st.lists(WORDS, min_size=0, max_size=8))
def test_rouge_l_is_the_lcs_f_measure(reference, answer):
    from repro.eval.open_tasks import rouge_l

    assert rouge_l(" ".join(reference), " ".join(answer)) == pytest.approx(
        _rouge_l_by_hand(" ".join(reference), " ".join(answer)))


def test_rouge_l_stems_and_ignores_case_and_punctuation_as_the_peer_configures_it():
    from repro.eval.open_tasks import rouge_l

    assert rouge_l("The person works as a chef", "the PERSON worked as a chef!") == pytest.approx(1.0)
    assert rouge_l("The person works as a chef", "chef") == pytest.approx(2 * (1 / 6) / (1 + 1 / 6))


@pytest.mark.parametrize("reference, answer, right", [
    ("Ashby", "Ashby", 1.0), ("Ashby", "P001 was born in ashby.", 1.0), ("Ashby", "Arlen", 0.0),
    ("art", "party", 1.0),  # the peer's rule is a substring test, and so is this one
    ("Ashby", "", 0.0),
])
def test_fill_in_the_blank_is_right_when_the_answer_contains_the_ground_truth(reference, answer, right):
    from repro.eval.open_tasks import contains_answer

    assert contains_answer(reference, answer) == right


def _measure(name: str, people: list[Person], answers: dict[str, str]) -> list[dict]:
    from repro.config import EvalConfig
    from repro.eval.benchmarks import BENCHMARKS

    asked: list[tuple[list[Item], dict]] = []

    def evaluate(items, desc, answering):
        from repro.eval.answering import Words

        asked.append((items, {"desc": desc, "open": isinstance(answering, Words)}))
        return {it.uid: answers.get(it.uid, "") for it in items}

    splits = {"unlearn": people[:2], "retain": people[2:]}
    out = BENCHMARKS.get(name).measure(evaluate, SimpleNamespace(dialect=DIALECT), splits,
                                       EvalConfig(bootstrap_resamples=200), 0)
    assert len(asked) == 1 and asked[0][1]["open"], "every question is answered once, in words"
    return out


def test_generation_records_hold_the_peers_per_modality_average():
    from repro.eval.open_tasks import rouge_l

    people = [_person(f"00{i}") for i in range(4)]
    answers = {"Full_Set/000#gen0": "The person works as a chef", "Full_Set/001#gen0": "a pilot",
               "Full_Set/000#gen1": "Arlen", "Full_Set/002#gen0": "chef"}
    records = {(r["split"], r["modality"]): r for r in _measure("generation", people, answers)}
    assert set(records) == {(s, m) for s in ("unlearn_generation", "retain_generation")
                            for m in ("all", "multimodal", "text")}
    # the peer: the sum of the F-measures of one Type over the questions of that Type
    multimodal = [rouge_l("The person works as a chef", "The person works as a chef"),
                  rouge_l("The person works as a chef", "a pilot")]
    got = records[("unlearn_generation", "multimodal")]
    assert got["accuracy"] == pytest.approx(100 * sum(multimodal) / 2, abs=1e-4)
    assert got["n"] == 2 and got["metric"] == "rougeL" and got["clusters"] == 2
    text = records[("unlearn_generation", "text")]
    assert text["accuracy"] == pytest.approx(100 * rouge_l("P000 lives in Arlen", "Arlen") / 2, abs=1e-4)
    assert records[("unlearn_generation", "all")]["n"] == 4
    assert got["ci_low"] <= got["accuracy"] <= got["ci_high"]


def test_fill_in_the_blank_records_count_the_answers_holding_the_word():
    people = [_person(f"00{i}") for i in range(4)]
    answers = {"Full_Set/000#blank0": "a CHEF", "Full_Set/001#blank0": "pilot", "Full_Set/002#blank1": "Ashby",
               "Full_Set/003#blank1": "in Ashby town"}
    records = {(r["split"], r["modality"]): r for r in _measure("fill_blank", people, answers)}
    assert records[("unlearn_fill_blank", "multimodal")]["accuracy"] == 50.0
    assert records[("unlearn_fill_blank", "text")]["accuracy"] == 0.0
    assert records[("retain_fill_blank", "text")]["accuracy"] == 100.0
    assert records[("retain_fill_blank", "all")]["metric"] == "accuracy"
    assert records[("retain_fill_blank", "all")]["per_cluster"] == {"Full_Set/002": [1, 2], "Full_Set/003": [1, 2]}


def test_a_task_the_data_lacks_is_refused_naming_it():
    from repro.errors import ReproError

    bare = [Person(f"00{i}", "Full_Set", b"f", _person("0").questions) for i in range(4)]
    with pytest.raises(ReproError, match="'generation', but none of the 4 people measured has such questions"):
        _measure("generation", bare, {})


# ---- the demonstration draw -------------------------------------------------------------------------------


def test_the_draw_is_seeded_and_comes_from_the_candidates():
    from repro.eval.demonstrations import demonstration_people

    candidates = [_person(f"9{i:02d}") for i in range(30)]
    draws = {seed: [p.key for p in demonstration_people(candidates, 2, seed)] for seed in range(6)}
    assert draws[3] == [p.key for p in demonstration_people(list(reversed(candidates)), 2, 3)]  # order-free
    assert len({tuple(d) for d in draws.values()}) > 1  # the seed moves it
    assert all(len(set(d)) == 2 for d in draws.values())
    assert demonstration_people(candidates, 0, 0) == []
    with pytest.raises(ConfigError, match="eval.shots = 31 needs 31 fictional people"):
        demonstration_people(candidates, 31, 0)
    with pytest.raises(ConfigError, match="0 or more"):
        demonstration_people(candidates, -1, 0)


def test_a_run_draws_its_demonstrations_from_outside_every_split(tmp_path):
    from repro.config import read_profile
    from repro.experiments.data import RunData

    profile = read_profile("tiny", ["eval.shots=2", "world.fictional=120", "world.celebrities=50",
                                    "world.mmbench_dev=8", "world.mmbench_train=8"])
    data = RunData(profile, tmp_path / "world")
    demos = data.demonstrations
    pool = set(data.fictional_splits["pool"])
    shown = {d.person for ds in demos.values() for d in ds}
    assert len(shown) == 2 and not shown & pool and all(k.startswith("Full_Set/") for k in shown)
    multimodal = [it for it in data.person_items(data.split("unlearn")) if it.modality == "multimodal"]
    assert all(len(it.images()) == 3 and it.prompt.count("<image>") == 3 for it in multimodal)
    # the people of every split answer the same questions as at zero shots, only with the demonstrations first
    zero = person_items(data.split("unlearn"), DIALECT)
    assert [it.uid for it in zero] == [it.uid for it in data.person_items(data.split("unlearn"))]


def test_celebrities_are_asked_zero_shot_as_mllmu_bench_asks_its_celebrity_set(tmp_path):
    from repro.config import read_profile
    from repro.experiments.data import RunData

    profile = read_profile("tiny", ["eval.shots=1", "world.fictional=120", "world.celebrities=50",
                                    "world.mmbench_dev=8", "world.mmbench_train=8"])
    data = RunData(profile, tmp_path / "world")
    mixed = data.person_items([data.celebrities[0], *data.split("retain")[:1]])
    celebrity = [it for it in mixed if it.person.startswith("Retain_Set/")]
    fictional = [it for it in mixed if it.person.startswith("Full_Set/")]
    assert celebrity == person_items([data.celebrities[0]], DIALECT)
    assert all(it.prompt.count("Correct Answer:") == 1 for it in fictional)


def test_on_the_miniature_the_peers_loops_over_its_parquet_give_the_kits_records(tmp_path):
    """The peer's evaluate_generation / evaluate_fill_in_the_blank re-derived: it reads each row's task list from
    the parquet, scores every question by its Type and averages per Type. The same answers through the kit's
    loader, items and records give the same numbers."""
    import pyarrow.parquet as pq

    from repro.config import EvalConfig, read_profile
    from repro.data.mllmu import config_files
    from repro.eval.benchmarks import BENCHMARKS
    from repro.eval.open_tasks import rouge_l
    from repro.experiments.data import RunData

    profile = read_profile("tiny", ["world.fictional=120", "world.celebrities=50", "world.mmbench_dev=8",
                                    "world.mmbench_train=8"])
    data = RunData(profile, tmp_path / "world")
    people = data.split("unlearn")[:12]
    # answers: right, a sentence around the right word, another person's, nothing; by person and question
    other = data.split("retain")[0]

    def answer(person, n, task) -> str:
        truth = getattr(person, task)[n].answer
        return [truth, f"I think it is {truth} indeed", getattr(other, task)[n].answer, ""][(int(person.id) + n) % 4]

    for name, task, score in (("generation", "generation", rouge_l),
                              ("fill_blank", "fill_blank", lambda t, a: float(t.lower() in a.lower()))):
        column = "Generation_Task" if task == "generation" else "Mask_Task"
        ids = {p.id: p for p in people}
        totals: dict[str, list[float]] = {"Image_Textual": [0.0, 0], "Pure_Text": [0.0, 0]}
        for file in config_files(data.mllmu_root, "Full_Set"):
            for row in pq.read_table(file, columns=["ID", column]).to_pylist():
                if row["ID"] not in ids:
                    continue
                for n, q in enumerate(row[column]):
                    totals[q["Type"]][0] += score(q["Ground_Truth"], answer(ids[row["ID"]], n, task))
                    totals[q["Type"]][1] += 1

        def evaluate(items, desc, rule="first-letter", open_answers=False, task=task):
            by_key = {p.key: p for p in people}
            number = re.compile(r"#\D*(\d+)$")  # person#gen0, person#blank1
            return {it.uid: answer(by_key[it.person], int(number.search(it.uid).group(1)), task) for it in items}

        records = BENCHMARKS.get(name).measure(evaluate, data, {"unlearn": people}, EvalConfig(bootstrap_resamples=50), 0)
        got = {r["modality"]: r["accuracy"] for r in records}
        assert got["multimodal"] == pytest.approx(100 * totals["Image_Textual"][0] / totals["Image_Textual"][1], abs=1e-4)
        assert got["text"] == pytest.approx(100 * totals["Pure_Text"][0] / totals["Pure_Text"][1], abs=1e-4)
        assert 0 < got["all"] < 100  # the answers above are neither all right nor all wrong


@pytest.mark.slow
def test_a_protocol_with_the_tasks_records_them_for_every_split_and_reads_its_answers_back(tmp_path):
    from small_model import MICRO

    from repro.choices import load_profile
    from repro.experiments.results import read_results
    from repro.experiments.runner import run_protocol

    profile = load_profile("tiny", [*MICRO, "eval.shots=1", 'eval.benchmarks=["mmbench","generation","fill_blank"]',
                                    "eval.generate_tokens=8"])
    run_dir = tmp_path / "run"
    run_protocol(profile, run_dir, tmp_path / "units")
    records = read_results(run_dir / "results.jsonl")
    for task, metric in (("generation", "rougeL"), ("fill_blank", "accuracy")):
        mine = [r for r in records if r["split"].endswith(f"_{task}")]
        people_splits = {r["split"] for r in records if re.fullmatch(r"unlearn|retain|shard_\d+", r["split"])}
        assert {r["split"].removesuffix(f"_{task}") for r in mine} == people_splits
        assert all(r["metric"] == metric and 0 <= r["accuracy"] <= 100 for r in mine)
    units = [json.loads(line) for line in (run_dir / "units.jsonl").read_text().splitlines()]
    words = [u for u in units if u["kind"] == "predictions" and u["scoring"][0] == "open-answer"]
    assert words and any(u["made"] for u in words)
    # a second run of the same protocol answers nothing again: every prediction is read from its unit
    again = tmp_path / "again"
    run_protocol(profile, again, tmp_path / "units")
    units = [json.loads(line) for line in (again / "units.jsonl").read_text().splitlines()]
    assert not any(u["made"] for u in units if u["kind"] == "predictions")
