"""Every scored item, and every training example made from a benchmark question, carries the modality the
question was asked in, read against the parquet row it came from: a question under `Image_Textual_Questions`
is shown with that row's face, one under `Pure_Text_Questions` without any image. The rows are rewritten so
that the two kinds' wording is swapped (image questions name the person, text questions say "the person in
the image"): only the column a question sits in may decide its modality."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from llava_text import DIALECT, IMAGE_TOKEN

from repro.choices import load_profile
from repro.data.mllmu import load_people
from repro.data.world import write_world
from repro.eval.items import person_items
from repro.train.examples import answer_examples

KINDS = {"Image_Textual_Questions": "multimodal", "Pure_Text_Questions": "text"}


def swap_wording(path: Path) -> None:
    """Rewrite one parquet file with each image question's text and its text twin's exchanged."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        task = row["Classification_Task"]
        images, texts = task["Image_Textual_Questions"], task["Pure_Text_Questions"]
        for a, b in zip(images, texts):
            a["Question"], b["Question"] = b["Question"], a["Question"]
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)


@pytest.fixture(scope="module")
def people_and_rows(tmp_path_factory):
    """(people as loaded, {person key: raw row}) of a small world whose wording is swapped."""
    root = tmp_path_factory.mktemp("world")
    profile = load_profile("tiny", ["world.fictional=4", "world.celebrities=3", "world.mmbench_dev=2",
                                    "world.mmbench_train=2"])
    write_world(root, profile.world, seed=11)
    rows = {}
    for config in ("Full_Set", "Retain_Set"):
        for path in sorted((root / "MLLMU-Bench" / config).glob("*.parquet")):
            swap_wording(path)
            rows.update({f"{config}/{row['ID']}": row for row in pq.read_table(path).to_pylist()})
    people = load_people(root / "MLLMU-Bench", "Full_Set") + load_people(root / "MLLMU-Bench", "Retain_Set")
    return people, rows


def asked(row: dict) -> Counter:
    """(question, options, answer, modality) of every classification question of a raw row."""
    return Counter((q["Question"], tuple(sorted(q["Options"].items())), q["Correct_Answer"], modality)
                   for column, modality in KINDS.items() for q in row["Classification_Task"][column])


def test_items_carry_the_modality_and_face_of_the_row_they_came_from(people_and_rows):
    people, rows = people_and_rows
    assert set(rows) == {p.key for p in people}
    items = person_items(people, DIALECT)
    for p in people:
        mine = [it for it in items if it.person == p.key]
        row = rows[p.key]
        assert Counter((it.context.split("\n")[1], tuple(sorted(it.options.items())), it.answer, it.modality)
                       for it in mine) == asked(row)
        for it in mine:
            if it.modality == "multimodal":
                assert it.image == row["image"]["bytes"], f"{it.uid}: not this row's face"
                assert it.prompt.count(IMAGE_TOKEN) == 1 and it.context.count(IMAGE_TOKEN) == 1
            else:
                assert it.image is None, f"{it.uid}: a text question shown with an image"
                assert IMAGE_TOKEN not in it.prompt and IMAGE_TOKEN not in it.context
    assert {it.modality for it in items} == {"multimodal", "text"}


def test_benchmark_answers_are_trained_in_the_modality_they_are_asked_in(people_and_rows):
    people, rows = people_and_rows
    for p in people:
        row = rows[p.key]
        examples = answer_examples([p], DIALECT)
        got = Counter((e.prompt.split("\n")[1], e.answer, "multimodal" if e.image is not None else "text")
                      for e in examples)
        want = Counter((q["Question"], f" {q['Options'][q['Correct_Answer']]}</s>", modality)
                       for column, modality in KINDS.items() for q in row["Classification_Task"][column])
        assert got == want
        for e in examples:
            assert e.image in (None, row["image"]["bytes"])
            assert (IMAGE_TOKEN in e.prompt) == (e.image is not None)


# ---- MMBench's items --------------------------------------------------------------------------------------


def test_an_mmbench_item_carries_its_rows_answer_category_group_image_and_prompt():
    """Against hand-written text: the scored context (the hint line only when there is a hint) and the
    prompt in the profile's template."""
    from repro.data.records import MMBenchQuestion
    from repro.eval.items import mmbench_items

    options = {"A": "red", "B": "blue"}
    hinted = MMBenchQuestion(1000005, "What colour?", "Look at the sky.", options, "B", "colour", "perception", b"png")
    plain = MMBenchQuestion(7, "Which shape?", "", {"A": "circle", "B": "square"}, "A", "shape", "perception", b"i")
    a, b = mmbench_items([hinted, plain], DIALECT)
    assert (a.uid, a.answer, a.category, a.group, a.image, a.modality, a.options) == (
        "1000005", "B", "colour", 5, b"png", "multimodal", options)
    assert a.context == f"USER: {IMAGE_TOKEN}\nLook at the sky.\nWhat colour?\nASSISTANT:"
    assert b.context == f"USER: {IMAGE_TOKEN}\nWhich shape?\nASSISTANT:"  # no empty hint line
    instruction = "Answer with the option's letter from the given choices directly."
    assert b.prompt == f"USER: {IMAGE_TOKEN}\nWhich shape?\nA. circle\nB. square\n{instruction}\nASSISTANT:"
    (llava,) = mmbench_items([plain], DIALECT, "llava-v1")
    assert llava.prompt.endswith(f" USER: {IMAGE_TOKEN}\nWhich shape?\nA. circle\nB. square\n{instruction} ASSISTANT:")
    assert llava.prompt.startswith("A chat between a curious")  # LLaVA-1.5's system line
