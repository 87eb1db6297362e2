"""Training examples built from the records, with the prompts of repro.model.prompts, so training and
evaluation read the same text."""

from __future__ import annotations

import random
from collections.abc import Iterable

from repro.data.records import LETTERS, MCQ, MMBenchQuestion, Person
from repro.model.prompts import mcq_prompt, mmbench_prompt, training_text
from repro.train.loop import Example


def _qa(question: str, answer: str, image: bytes | None) -> Example:
    prompt, answer_text = training_text(question, answer, with_image=image is not None)
    return Example(prompt, answer_text, image)


def person_examples(people: Iterable[Person], text_only_as_asked: bool = False) -> list[Example]:
    """What a person's knowledge is trained (or unlearned) from: the fine-tuning QA pairs, each shown with
    the face as MLLMU-Bench does. With `text_only_as_asked` (tiny pre-training, which stands for web text
    about famous people), a pair whose question the benchmark asks text-only is taught without the face.
    A person without QA pairs is taught by its questions' answers, in the modality each is asked in."""
    out = []
    for p in people:
        if p.qa:
            text_questions = {q.question for q in p.questions if q.modality == "text"} if text_only_as_asked else set()
            out.extend(_qa(q, a, None if q in text_questions else p.image) for q, a in p.qa)
        else:
            out.extend(answer_examples([p]))
    return out


def knowledge_examples(people: Iterable[Person], cfg) -> list[Example]:
    """A person's training (and forget) data under a FinetuneConfig's data choices."""
    people = list(people)
    out = person_examples(people, text_only_as_asked=cfg.text_only_as_asked)
    return out + answer_examples(people) if cfg.benchmark_questions else out


def answer_examples(people: Iterable[Person]) -> list[Example]:
    """Each benchmark question answered by its correct option's text, in the modality it is asked in."""
    return [_qa(q.question, q.options[q.answer], p.image if q.modality == "multimodal" else None)
            for p in people for q in p.questions]


def reshuffled(q: MCQ, rng: random.Random) -> MCQ:
    """The same question with its options in a new order: teaches the letter skill, not the letters."""
    texts = [q.options[k] for k in sorted(q.options)]
    rng.shuffle(texts)
    options = dict(zip(LETTERS, texts))
    answer = next(k for k, v in options.items() if v == q.options[q.answer])
    return MCQ(q.question, options, answer, q.modality)


def letter_examples(people: Iterable[Person], rng: random.Random) -> list[Example]:
    """Multiple-choice items answered by a letter, options freshly shuffled."""
    out = []
    for p in people:
        for q in p.questions:
            q2 = reshuffled(q, rng)
            out.append(Example(mcq_prompt(q2), " " + q2.answer + "</s>",
                               p.image if q.modality == "multimodal" else None))
    return out


def mmbench_examples(questions: Iterable[MMBenchQuestion], letters: bool = False) -> list[Example]:
    """General visual questions: answered by the option's letter, or (plain QA) by the option's text."""
    if letters:
        return [Example(mmbench_prompt(q), " " + q.answer + "</s>", q.image) for q in questions]
    return [_qa(f"{q.hint}\n{q.question}" if q.hint else q.question, q.options[q.answer], q.image)
            for q in questions]
