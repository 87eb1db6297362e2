"""Scorable items: one prompt, its options and answer, whatever the benchmark it came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from repro.data.records import MMBenchQuestion, Person
from repro.model.prompts import mcq_prompt, mmbench_prompt, training_text


@dataclass(frozen=True)
class Item:
    uid: str  # unique within one evaluation: person key + question number, or MMBench index
    prompt: str  # the letter-answer prompt (MLLMU-Bench / LLaVA MMBench format)
    context: str  # the plain question prompt, for option log-likelihood scoring
    options: dict[str, str]
    answer: str
    image: bytes | None
    modality: str  # "multimodal" or "text"
    person: str = ""  # person key, "" for MMBench
    category: str = ""  # MMBench category, "" for people
    group: int = -1  # MMBench circular group


def person_items(people: list[Person]) -> list[Item]:
    items = []
    for p in people:
        for n, q in enumerate(p.questions):
            image = p.image if q.modality == "multimodal" else None
            context, _ = training_text(q.question, "", with_image=image is not None)
            items.append(Item(f"{p.key}#{n}", mcq_prompt(q), context, dict(q.options), q.answer, image,
                              q.modality, person=p.key))
    return items


def mmbench_items(questions: list[MMBenchQuestion], template: str = "plain") -> list[Item]:
    items = []
    for q in questions:
        text = f"{q.hint}\n{q.question}" if q.hint else q.question
        context, _ = training_text(text, "", with_image=True)
        items.append(Item(str(q.index), mmbench_prompt(q, template), context, dict(q.options), q.answer, q.image,
                          "multimodal", category=q.category, group=q.group))
    return items


def item_digest(item: Item) -> tuple[str, str, str]:
    """What a prediction of `item` depends on besides the model: its id, prompt and image (by hash)."""
    return item.uid, item.prompt, hashlib.sha256(item.image).hexdigest()[:16] if item.image is not None else ""
