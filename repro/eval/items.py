"""Scorable items: one prompt, its options and answer, whatever the benchmark it came from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from repro.data.records import MCQ, MMBenchQuestion, OpenQuestion, Person
from repro.model.families.base import Dialect


@dataclass(frozen=True)
class Item:
    uid: str  # unique within one evaluation: person key + question number, or MMBench index
    prompt: str  # the letter-answer prompt, in the model family's dialect
    context: str  # the plain question prompt, for option log-likelihood scoring
    options: dict[str, str]
    answer: str
    image: bytes | None
    modality: str  # "multimodal" or "text"
    person: str = ""  # person key, "" for MMBench
    category: str = ""  # MMBench category, "" for people
    group: int = -1  # MMBench circular group
    demo_images: tuple[bytes, ...] = ()  # the demonstrations' images, shown before `image` (eval.shots)

    def images(self) -> tuple[bytes, ...] | None:
        """Every image the prompt shows, in the order of its image placeholders; None when it shows none."""
        shown = self.demo_images + ((self.image,) if self.image is not None else ())
        return shown or None


@dataclass(frozen=True)
class Demonstration:
    """An answered question shown before the asked one (eval.shots): whose, which, and the face it shows."""

    person: str
    question: MCQ
    image: bytes | None


def person_items(people: list[Person], dialect: Dialect,
                 demonstrations: Mapping[str, Sequence[Demonstration]] | None = None) -> list[Item]:
    """Every classification question of `people`; with `demonstrations` (per modality), those come first in
    both the letter prompt and the option-likelihood context."""
    items = []
    for p in people:
        for n, q in enumerate(p.questions):
            image = p.image if q.modality == "multimodal" else None
            shown = tuple((demonstrations or {}).get(q.modality, ()))
            asked = [d.question for d in shown]
            context = dialect.context(q.question, image is not None, asked)
            items.append(Item(f"{p.key}#{n}", dialect.mcq(q, asked), context,
                              dict(q.options), q.answer, image, q.modality, person=p.key,
                              demo_images=tuple(d.image for d in shown if d.image is not None)))
    return items


def open_items(people: list[Person], questions: Callable[[Person], Sequence[OpenQuestion]],
               prompt: Callable[[OpenQuestion], str], tag: str) -> list[Item]:
    """Questions answered in words (MLLMU-Bench's generation and fill-in-the-blank tasks): `answer` holds the
    ground truth, `options` is empty; uids are `person#tag<n>`."""
    items = []
    for p in people:
        for n, q in enumerate(questions(p)):
            image = p.image if q.modality == "multimodal" else None
            items.append(Item(f"{p.key}#{tag}{n}", prompt(q), "", {}, q.answer, image, q.modality, person=p.key))
    return items


def generation_items(people: list[Person], dialect: Dialect) -> list[Item]:
    return open_items(people, lambda p: p.generation, dialect.generation, "gen")


def fill_blank_items(people: list[Person], dialect: Dialect) -> list[Item]:
    return open_items(people, lambda p: p.fill_blank, dialect.fill_blank, "blank")


def mmbench_items(questions: list[MMBenchQuestion], dialect: Dialect, template: str = "plain") -> list[Item]:
    items = []
    for q in questions:
        text = f"{q.hint}\n{q.question}" if q.hint else q.question
        context = dialect.context(text, True)
        items.append(Item(str(q.index), dialect.mmbench(q, template), context, dict(q.options), q.answer, q.image,
                          "multimodal", category=q.category, group=q.group))
    return items


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def item_digest(item: Item) -> tuple[str, ...]:
    """What a prediction of `item` depends on besides the model: its id, prompt and images (by hash; the
    demonstrations' images, when shown, after its own)."""
    own = _short_hash(item.image) if item.image is not None else ""
    return (item.uid, item.prompt, own, *(_short_hash(x) for x in item.demo_images))
