"""What a person's knowledge is trained and unlearned from (repro/train/examples.py), against hand-built
people: the QA pairs with the face, or, under `text_only_as_asked`, without it where the benchmark asks the
question text-only."""

from __future__ import annotations

import dataclasses

from llava_text import DIALECT

from repro.choices import load_profile
from repro.data.records import MCQ, Person
from repro.train.examples import knowledge_examples, person_examples

FACE = b"face"
PERSON = Person("001", "Full_Set", FACE, (
    MCQ("Where does she live?", {"A": "Rome", "B": "Oslo"}, "A", "text"),
    MCQ("What is her job?", {"A": "cook", "B": "pilot"}, "B", "multimodal"),
), qa=(("Where does she live?", "Rome"), ("What is her job?", "pilot"), ("Her hobby?", "chess")))



def test_every_qa_pair_is_taught_with_the_face_by_default():
    examples = person_examples([PERSON], DIALECT)
    assert [e.answer for e in examples] == [" Rome</s>", " pilot</s>", " chess</s>"]
    assert all(e.image == FACE for e in examples)


def test_text_only_as_asked_drops_the_face_exactly_where_the_benchmark_asks_text_only():
    examples = person_examples([PERSON], DIALECT, text_only_as_asked=True)
    assert [e.image for e in examples] == [None, FACE, FACE]  # only "Where does she live?" is asked text-only
    assert "<image>" not in examples[0].prompt and "<image>" in examples[1].prompt


def test_a_profiles_setting_reaches_the_examples():
    tiny = dataclasses.replace(load_profile("tiny").finetune, benchmark_questions=False)
    assert tiny.text_only_as_asked
    assert [e.image for e in knowledge_examples([PERSON], tiny, DIALECT)] == [None, FACE, FACE]
    plain = dataclasses.replace(tiny, text_only_as_asked=False)
    assert [e.image for e in knowledge_examples([PERSON], plain, DIALECT)] == [FACE, FACE, FACE]


def test_a_person_without_qa_pairs_is_taught_by_the_benchmarks_answers_as_asked():
    from repro.train.examples import answer_examples

    bare = dataclasses.replace(PERSON, qa=())
    examples = person_examples([bare], DIALECT)
    assert examples == answer_examples([bare], DIALECT)
    assert [(e.answer, e.image) for e in examples] == [(" Rome</s>", None), (" pilot</s>", FACE)]


def test_mmbench_training_questions_carry_their_hint_when_they_have_one():
    from repro.data.records import MMBenchQuestion
    from repro.train.examples import mmbench_examples

    hinted = MMBenchQuestion(1, "Which colour?", "Look up.", {"A": "red", "B": "blue"}, "B", "c", "p", b"i")
    plain = dataclasses.replace(hinted, index=2, hint="")
    a, b = mmbench_examples([hinted, plain], DIALECT)
    assert a.prompt == "USER: <image>\nLook up.\nWhich colour?\nASSISTANT:" and a.answer == " blue</s>"
    assert b.prompt == "USER: <image>\nWhich colour?\nASSISTANT:" and b.image == b"i"
