"""What a model family is: everything the kit needs to know about one architecture, in one object
(docs/design.md, "Model families"). The rest of the kit asks the family and names no architecture itself.

A family has two parts: its `Dialect` (the text around a question: conversation turns, where an image
goes, the token an answer ends on) and the model-side facts (building from config, loading, image tokens
per image, module names for LoRA and the update targets, the hub's key layout, the bench's FLOP shape).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image

from repro.data.records import LETTERS, MCQ, MMBenchQuestion, OpenQuestion
from repro.errors import ConfigError, ReproError
from repro.registry import Registry

MCQ_INSTRUCTION = "Just give ONE letter representing the answer directly."  # MLLMU-Bench
MMBENCH_INSTRUCTION = "Answer with the option's letter from the given choices directly."  # LLaVA's MMBench eval
GENERATION_INSTRUCTION = "Answer the question based on your trained knowledge in one sentence{} in ENGLISH."
FILL_BLANK_INSTRUCTION = "Please **ONLY** provide the correct answer that should replace the [Blank]."


def options_text(q: MCQ) -> str:
    """MLLMU-Bench's option lines, `A: text\\n` each."""
    return "".join(f"{k}: {q.options[k]}\n" for k in LETTERS if k in q.options)


def mmbench_body(q: MMBenchQuestion, image: str) -> str:
    """LLaVA's MMBench question (llava/eval/model_vqa_mmbench.py): the image, the hint line only when there
    is a hint, the question, "A. option" lines for the non-empty options, the single-answer instruction."""
    hint = f"{q.hint}\n" if q.hint and q.hint.strip() else ""
    options = "".join(f"\n{k}. {q.options[k]}" for k in LETTERS if q.options.get(k, "").strip())
    return f"{image}\n{hint}{q.question}{options}\n{MMBENCH_INSTRUCTION}"


def fill_blank_body(q: OpenQuestion) -> str:
    """MLLMU-Bench eval.py, evaluate_fill_in_the_blank: `__` becomes `[Blank]`, then the one-answer instruction."""
    return q.question.replace("__", "[Blank]") + "\n" + FILL_BLANK_INSTRUCTION


class Dialect(ABC):
    """The text a family's model reads around a question. Every prompt the kit shows a model is one of
    these methods; each ends where the model's answer begins."""

    image: str  # the text that stands for one image in a prompt (the processor expands it)
    end: str  # the token a trained answer ends on (the training labels end on it)
    templates: tuple[str, ...]  # the eval.mmbench_template values this dialect writes

    @abstractmethod
    def mcq(self, q: MCQ, demonstrations: Sequence[MCQ] = ()) -> str:
        """A classification question with its options, the face shown when multimodal; answered
        demonstrations first."""

    @abstractmethod
    def context(self, question: str, with_image: bool, demonstrations: Sequence[MCQ] = ()) -> str:
        """The plain question (no options), up to where its answer starts: the prompt of a training example
        and the context of option log-likelihood scoring."""

    @abstractmethod
    def continuation(self, text: str) -> str:
        """`text` as the model's answer right after `context` (without the end token)."""

    def answer(self, text: str) -> str:
        """A trained answer: the continuation and the end-of-answer token."""
        return self.continuation(text) + self.end

    @abstractmethod
    def generation(self, q: OpenQuestion) -> str:
        """MLLMU-Bench's generation-task prompt."""

    @abstractmethod
    def fill_blank(self, q: OpenQuestion) -> str:
        """MLLMU-Bench's fill-in-the-blank prompt."""

    @abstractmethod
    def mmbench(self, q: MMBenchQuestion, template: str) -> str:
        """An MMBench question under eval.mmbench_template."""

    @abstractmethod
    def open_answer(self, generated: str) -> str:
        """The answer in words read from a generated text (the new tokens only, special tokens skipped)."""

    def check_template(self, template: str) -> None:
        if template not in self.templates:
            raise ConfigError(f"eval.mmbench_template {template!r}: expected one of {', '.join(self.templates)} "
                              "(the templates this model family writes)")


@dataclass(frozen=True)
class ChatDialect(Dialect):
    """A chat-template family (Qwen2.5-VL, Gemma-3): each question is one user turn, a demonstration one
    user turn and its answered assistant turn, written as the family's own chat template renders them
    (MLLMU-Bench and PULSE define no prompt for these families; docs/design.md, "Model families")."""

    image: str
    end: str
    prefix: str  # before the first turn (a system turn, a BOS)
    user: str  # "{body}" inside a user turn
    assistant: str  # the start of the assistant's turn: the prompt ends here
    templates: tuple[str, ...] = ("plain",)

    def _turn(self, body: str, images: int = 0) -> str:
        return self.user.format(body=self.image * images + body)

    def _demonstrations(self, shown: Sequence[MCQ]) -> str:
        return "".join(self._turn(f"{d.question}\n{options_text(d)}{MCQ_INSTRUCTION}", d.modality == "multimodal")
                       + self.assistant + d.answer + self.end + "\n" for d in shown)

    def _prompt(self, body: str, images: int, shown: Sequence[MCQ] = ()) -> str:
        return self.prefix + self._demonstrations(shown) + self._turn(body, images) + self.assistant

    def mcq(self, q: MCQ, demonstrations: Sequence[MCQ] = ()) -> str:
        return self._prompt(f"{q.question}\n{options_text(q)}{MCQ_INSTRUCTION}", q.modality == "multimodal",
                            demonstrations)

    def context(self, question: str, with_image: bool, demonstrations: Sequence[MCQ] = ()) -> str:
        return self._prompt(question, int(with_image), demonstrations)

    def continuation(self, text: str) -> str:
        return text  # the assistant turn's header ends in a newline: the answer follows directly

    def generation(self, q: OpenQuestion) -> str:
        accurately = " accurately" if q.modality == "multimodal" else ""
        return self._prompt(f"{q.question}\n{GENERATION_INSTRUCTION.format(accurately)}", q.modality == "multimodal")

    def fill_blank(self, q: OpenQuestion) -> str:
        return self._prompt(fill_blank_body(q), q.modality == "multimodal")

    def mmbench(self, q: MMBenchQuestion, template: str) -> str:
        self.check_template(template)
        return self._prompt(mmbench_body(q, "").removeprefix("\n"), 1)

    def open_answer(self, generated: str) -> str:
        return generated.split(self.end)[0].strip()


# The llava-1.5-13b profile's batch sizes (MLLMU-Bench's micro-batch of 4; evaluation 16), which every paper
# shape measures with.
PAPER_BATCHES = ("finetune.batch_size=4", "finetune.grad_accum=1", "unlearn.batch_size=4", "unlearn.grad_accum=1",
                 "eval.batch_size=16")


@dataclass(frozen=True)
class PaperShape:
    """A paper-scale model for `bench --shape`: the family's micro profile with these overrides makes a model
    of the paper checkpoint's size (random weights), `vocab` its text vocabulary."""

    overrides: tuple[str, ...]
    vocab: int
    micro: str = ""  # the profile whose processor the shape reads with ("" for the kit's word tokenizer)


@dataclass(frozen=True)
class Modules:
    """Where a family keeps its parts, as module names in transformers' layout (`model.<...>`)."""

    language_model: str  # LoRA goes here only
    projector: str  # trained in full under `proj+llm` (peft's modules_to_save, matched as a name suffix)
    vision: str  # always frozen (the projector may sit inside it, as Qwen's merger does)
    hub_prefixes: tuple[str, ...]  # the top-level keys of the hub's safetensors, which a saved model keeps


class Family(ABC):
    """One architecture. Registered in FAMILIES under the name a profile's `model.family` gives."""

    name: str
    dialect: Dialect
    modules: Modules
    processor_class: str  # transformers' processor class name: how a loaded processor finds its family
    micro: str  # the family's micro profile: its architecture shrunk, random weights, its real processor
    shapes: ClassVar[dict[str, PaperShape]] = {}  # the paper-scale shapes `bench --shape` builds, by profile name

    @abstractmethod
    def build(self, cfg, processor, seed: int):
        """A model of this architecture with random weights from `seed`, shaped by `cfg` (ModelConfig), for
        `processor`."""

    def word_processor(self, cfg, tokenizer):
        """The processor of a model built from config that reads with the kit's word-level tokenizer (the
        tiny profile); a family that needs its real tokenizer has none."""
        raise ReproError(f"model family {self.name!r} reads with its own tokenizer: set model.processor to its "
                         "asset (pulse-repro assets fetch)")

    @abstractmethod
    def model_class(self):
        """transformers' class of the whole model (loading, and the pre-flight's parameter count)."""

    @abstractmethod
    def load_processor(self, directory: Path):
        """The family's processor from a directory laid out as a hub snapshot."""

    @abstractmethod
    def image_tokens(self, config, processor) -> int:
        """Image tokens one face becomes (fixed per profile), from the model's config and the processor."""

    def placeholder_extra(self, processor, image_tokens: int) -> int:
        """Tokens the processor adds for each image placeholder beyond the text's own: it replaces the one
        image token of the placeholder (LLaVA's `<image>`, Qwen's `<|image_pad|>`) by the image's tokens."""
        return image_tokens - 1

    def processor_images(self, per_row: list[list[Image.Image]]):
        """The `images` argument of the processor: one flat list in prompt order (None without any image); a
        family whose processor wants them per prompt nests them."""
        flat = [image for row in per_row for image in row]
        return flat or None

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """The image as the processor receives it (a family whose token count follows the image's shape
        crops it to the profile's fixed shape here)."""
        return image

    def explicit_positions(self) -> bool:
        """Whether evaluation passes position_ids counted from each row's first token (as `generate` does);
        a family with its own position scheme (Qwen's multimodal RoPE) computes them itself."""
        return True


FAMILIES: Registry[Family] = Registry("model family")


def family_named(name: str) -> Family:
    return FAMILIES.get(name)


def family_of_processor(processor) -> Family:
    """The family a processor belongs to, by its class (the processor travels with the model everywhere)."""
    name = type(processor).__name__
    known = [FAMILIES.get(n) for n in FAMILIES]
    for fam in known:
        if fam.processor_class == name:
            return fam
    raise ReproError(f"no model family reads with a {name} (known: {', '.join(f.processor_class for f in known)})")


def family_of_model(model) -> Family:
    """The family of a model (or of a peft-wrapped one), by its class."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for fam in (FAMILIES.get(n) for n in FAMILIES):
        if isinstance(base, fam.model_class()):
            return fam
    raise ReproError(f"no model family builds a {type(base).__name__}")


def square_crop(image: Image.Image) -> Image.Image:
    """The largest centred square: a face keeps its proportions and becomes a fixed number of tokens."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image if w == h else image.crop((left, top, left + side, top + side))


def built_context(cfg) -> int:
    """The context of a model built from config: model.context, else room for model.max_length."""
    return cfg.context or max(cfg.max_length, 128)


def seeded(make, seed: int, tokenizer, end: str = ""):
    """`make()` under `seed`, the caller's RNG stream untouched (the init is a function of `seed` alone), with
    generation stopping on `end` (a chat family's end of turn; "" the tokenizer's EOS)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(end) if end else tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval()
