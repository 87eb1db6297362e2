"""Training examples built from the records, with the prompts of repro.model.prompts, so training and
evaluation read the same text."""

from __future__ import annotations

import random
from collections.abc import Iterable

from repro.data.records import LETTERS, MCQ, MMBenchQuestion, Person
from repro.model.families.base import Dialect
from repro.train.loop import Example


def _qa(question: str, answer: str, image: bytes | None, dialect: Dialect) -> Example:
    return Example(dialect.context(question, image is not None), dialect.answer(answer), image)


def person_examples(people: Iterable[Person], dialect: Dialect, text_only_as_asked: bool = False) -> list[Example]:
    """What a person's knowledge is trained (or unlearned) from: the fine-tuning QA pairs, each shown with
    the face as MLLMU-Bench does. With `text_only_as_asked` (tiny pre-training, which stands for web text
    about famous people), a pair whose question the benchmark asks text-only is taught without the face.
    A person without QA pairs is taught by its questions' answers, in the modality each is asked in."""
    out = []
    for p in people:
        if p.qa:
            text_questions = {q.question for q in p.questions if q.modality == "text"} if text_only_as_asked else set()
            out.extend(_qa(q, a, None if q in text_questions else p.image, dialect) for q, a in p.qa)
        else:
            out.extend(answer_examples([p], dialect))
    return out


def knowledge_examples(people: Iterable[Person], cfg, dialect: Dialect) -> list[Example]:
    """A person's training (and forget) data under a FinetuneConfig's data choices, in the family's dialect."""
    people = list(people)
    out = person_examples(people, dialect, text_only_as_asked=cfg.text_only_as_asked)
    return out + answer_examples(people, dialect) if cfg.benchmark_questions else out


def answer_examples(people: Iterable[Person], dialect: Dialect) -> list[Example]:
    """Each benchmark question answered by its correct option's text, in the modality it is asked in."""
    return [_qa(q.question, q.options[q.answer], p.image if q.modality == "multimodal" else None, dialect)
            for p in people for q in p.questions]


def reshuffled(q: MCQ, rng: random.Random) -> MCQ:
    """The same question with its options in a new order: teaches the letter skill, not the letters."""
    texts = [q.options[k] for k in sorted(q.options)]
    rng.shuffle(texts)
    options = dict(zip(LETTERS, texts))
    answer = next(k for k, v in options.items() if v == q.options[q.answer])
    return MCQ(q.question, options, answer, q.modality)


def letter_examples(people: Iterable[Person], rng: random.Random, dialect: Dialect) -> list[Example]:
    """Multiple-choice items answered by a letter, options freshly shuffled."""
    out = []
    for p in people:
        for q in p.questions:
            q2 = reshuffled(q, rng)
            out.append(Example(dialect.mcq(q2), dialect.answer(q2.answer),
                               p.image if q.modality == "multimodal" else None))
    return out


def mmbench_examples(questions: Iterable[MMBenchQuestion], dialect: Dialect, letters: bool = False) -> list[Example]:
    """General visual questions: answered by the option's letter, or (plain QA) by the option's text."""
    if letters:
        return [Example(dialect.mmbench(q, "plain"), dialect.answer(q.answer), q.image) for q in questions]
    return [_qa(f"{q.hint}\n{q.question}" if q.hint else q.question, q.options[q.answer], q.image, dialect)
            for q in questions]
