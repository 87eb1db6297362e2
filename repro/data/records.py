"""Typed records every loader returns, whatever the source (hub, local mirror, miniature world)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from repro.data.circular import group_of

Modality = Literal["multimodal", "text"]
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class MCQ:
    """One multiple-choice question. `options` maps letters to texts, empty options left out."""

    question: str
    options: dict[str, str]
    answer: str  # a letter among options
    modality: Modality


@dataclass(frozen=True)
class OpenQuestion:
    """One question answered in words: MLLMU-Bench's generation task (scored by ROUGE-L against `answer`) or
    fill-in-the-blank task (`__` in the question; right when the answer contains `answer`)."""

    question: str
    answer: str  # the benchmark's `Ground_Truth`
    modality: Modality


@dataclass(frozen=True)
class Person:
    """One MLLMU-Bench profile: a face, ten classification questions and fine-tuning QA pairs."""

    id: str  # zero-padded as published, e.g. "093"
    config: str  # "Full_Set" (fictional) or "Retain_Set" (celebrities)
    image: bytes  # encoded image (PNG or JPEG) of the face
    questions: tuple[MCQ, ...]
    qa: tuple[tuple[str, str], ...] = ()  # (question, answer) pairs used to fine-tune
    generation: tuple[OpenQuestion, ...] = ()  # `Generation_Task`
    fill_blank: tuple[OpenQuestion, ...] = ()  # `Mask_Task`

    @property
    def key(self) -> str:
        """Unique across configs: fictional and celebrity IDs overlap in MLLMU-Bench."""
        return f"{self.config}/{self.id}"


@dataclass(frozen=True)
class MMBenchQuestion:
    """One MMBench row. Circular copies share `group` (repro/data/circular.py)."""

    index: int
    question: str
    hint: str
    options: dict[str, str]  # non-empty options only
    answer: str
    category: str
    l2_category: str
    image: bytes

    @property
    def group(self) -> int:
        return group_of(self.index)
