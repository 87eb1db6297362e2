"""How a question set's answers are got from a model: multiple-choice letters under eval.scoring
(`Letters`), or answers in words, as MLLMU-Bench's generation and fill-in-the-blank tasks take them
(`Words`). Each says how it is named in the predictions' cache key, what it feeds the model and how many
tokens it may generate (what the batch size is sized by), and answers a batch of items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repro.config import EvalConfig
from repro.eval.items import Item
from repro.eval.scoring import generate_answers, predict, prompt_limit
from repro.model.factory import context_length


@dataclass(frozen=True)
class Letters:
    """A letter per question under eval.scoring; `rule` reads a generated answer (repro/eval/answers.py)."""

    rule: str = "first-letter"

    def how(self, cfg: EvalConfig) -> list:
        return [cfg.scoring] if cfg.scoring != "letter" else [cfg.scoring, self.rule, cfg.generate_tokens]

    def generates(self, cfg: EvalConfig) -> bool:
        return cfg.scoring == "letter"  # the letter scorer may fall back to generation; option-loglik never

    def texts(self, items: Sequence[Item], cfg: EvalConfig) -> list[str]:
        return [it.prompt if self.generates(cfg) else it.context for it in items]

    def new_tokens(self, cfg: EvalConfig) -> int:
        return cfg.generate_tokens if self.generates(cfg) else 0

    def answer(self, model, processor, items: Sequence[Item], batch: int, cfg: EvalConfig, desc: str) -> dict:
        return predict(model, processor, items, cfg.scoring, batch, prompt_limit(context_length(model), cfg), desc,
                       self.rule, cfg.generate_tokens)


@dataclass(frozen=True)
class Words:
    """The answer in words of a greedy generation of up to eval.generate_tokens."""

    def how(self, cfg: EvalConfig) -> list:
        return ["open-answer", cfg.generate_tokens]

    def texts(self, items: Sequence[Item], cfg: EvalConfig) -> list[str]:
        return [it.prompt for it in items]

    def new_tokens(self, cfg: EvalConfig) -> int:
        return cfg.generate_tokens

    def answer(self, model, processor, items: Sequence[Item], batch: int, cfg: EvalConfig, desc: str) -> dict:
        return generate_answers(model, processor, items, batch, context_length(model) - cfg.generate_tokens, desc,
                                cfg.generate_tokens)


Answering = Letters | Words
LETTERS = Letters()  # the people's questions: MLLMU-Bench's first-letter rule
