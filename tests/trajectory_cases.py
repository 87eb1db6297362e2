"""The cases whose first steps' losses tests/trajectories.json pins: pre-training, fine-tuning and one
unlearning request per registered method, each through the kit's own recipe (repro/train/recipes.py), on a
fixed micro LLaVA and a fixed handful of people written here (not the miniature world, so that a change to
the world's generator moves no trajectory). One torch thread, so that the numbers depend on the
instruction set and the library versions only, which the file records next to them.

Re-record (after a deliberate change, saying why in the commit message), under each instruction set this
machine can run (AVX2 up to its own, each in a new capped process, as `pulse-repro golden record` does):

    python tests/record_trajectories.py
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from llava_text import DIALECT
from PIL import Image

from repro.config import FinetuneConfig, ModelConfig, PretrainConfig, UnlearnConfig
from repro.data.records import MCQ, MMBenchQuestion, Person
from repro.environment import differences, numeric_environment
from repro.model.factory import build_tiny_model
from repro.model.tokenizer import build_word_tokenizer
from repro.train import recipes
from repro.train.examples import knowledge_examples, letter_examples, mmbench_examples, person_examples
from repro.train.methods import METHODS, get_method, method_params

PINNED = Path(__file__).with_name("trajectories.json")
RECORD_COMMAND = "python tests/record_trajectories.py"

MODEL = ModelConfig(source="tiny", vision_hidden=16, vision_layers=1, vision_heads=2, image_size=16, patch_size=8,
                    text_hidden=32, text_layers=2, text_heads=4, text_intermediate=64, max_length=64)
PRETRAIN = PretrainConfig(steps=4, batch_size=4, lr=1e-2, warmup=1, letters=True)
FINETUNE = FinetuneConfig(epochs=1, batch_size=4, lr=1e-2, lora_r=4, lora_alpha=4, lora_dropout=0.05,
                          benchmark_questions=True, text_only_as_asked=True)
UNLEARN = UnlearnConfig(epochs=1, batch_size=4, lr=1e-2)
TARGET = "proj+llm"

JOBS = ("baker", "nurse", "pilot", "tailor")
CITIES = ("Elsin", "Morra", "Pellam", "Oakdale")
NAMES = ("Ada Brisk", "Lin Varo", "Omar Tesh", "Ines Quill", "Tom Hale", "Eva Lund")


def face(seed: int) -> bytes:
    """A 16x16 PNG drawn from `seed` (decoded pixels do not depend on the PNG encoder's version)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def person(i: int, config: str) -> Person:
    name, job, city = NAMES[i], JOBS[i % 4], CITIES[(i + 1) % 4]
    jobs = {k: v for k, v in zip("ABCD", JOBS)}
    cities = {k: v for k, v in zip("ABCD", CITIES)}
    questions = (
        MCQ("What is the job of the person in the image?", jobs, "ABCD"[i % 4], "multimodal"),
        MCQ(f"Where does {name} live?", cities, "ABCD"[(i + 1) % 4], "text"),
    )
    qa = ((f"What does {name} do?", f"{name} is a {job}."), ("Where does the person in the image live?", city))
    return Person(f"{i:03d}", config, face(i), questions, qa)


def mmbench(i: int) -> MMBenchQuestion:
    colours = {"A": "red", "B": "green", "C": "blue", "D": "grey"}
    return MMBenchQuestion(i, "Which colour is most of the image?", "", colours, "ABCD"[i % 4], "colour",
                           "attribute", face(100 + i))


FICTIONAL = [person(i, "Full_Set") for i in range(4)]
CELEBRITIES = [person(i, "Retain_Set") for i in range(4, 6)]
MMBENCH = [mmbench(i) for i in range(4)]


def _texts() -> list[str]:
    import random

    examples = (person_examples(FICTIONAL + CELEBRITIES, DIALECT) + knowledge_examples(FICTIONAL, FINETUNE, DIALECT)
                + letter_examples(CELEBRITIES, random.Random(0), DIALECT) + mmbench_examples(MMBENCH, DIALECT)
                + mmbench_examples(MMBENCH, DIALECT, letters=True))
    return [e.prompt + e.answer for e in examples]


def _model():
    model, processor = build_tiny_model(MODEL, build_word_tokenizer(_texts()), seed=0)
    return model, recipes.encoder(processor, MODEL.max_length, torch.device("cpu"))


@contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def step_losses() -> Iterator[list[list[float]]]:
    """The losses every optimisation loop returns while the block runs (a recipe may keep them to itself)."""
    seen: list[list[float]] = []
    real = recipes.optimise

    def kept(*args, **kwargs):
        losses = real(*args, **kwargs)
        seen.append(losses)
        return losses

    with mock.patch.object(recipes, "optimise", kept):
        yield seen


def pretrain() -> list[float]:
    model, encode = _model()
    torch.manual_seed(0)
    return recipes.pretrain(model, CELEBRITIES, MMBENCH, PRETRAIN, 0, encode, DIALECT)


def finetune() -> list[float]:
    model, encode = _model()
    torch.manual_seed(1)  # LoRA initialisation and dropout
    with step_losses() as seen:
        recipes.finetune(model, knowledge_examples(FICTIONAL, FINETUNE, DIALECT), FINETUNE, 0, encode)
    (losses,) = seen
    return losses


def unlearn(method: str) -> list[float]:
    model, encode = _model()
    spec = get_method(method)
    request = recipes.Request(spec, method_params(UNLEARN, spec), TARGET, knowledge_examples(FICTIONAL[:2], FINETUNE, DIALECT),
                              knowledge_examples(FICTIONAL[2:], FINETUNE, DIALECT), 0)
    torch.manual_seed(2)
    _, losses = recipes.unlearn(model, request, UNLEARN, FINETUNE, encode)
    return losses


def cases() -> dict[str, Callable[[], list[float]]]:
    """Every pinned case by name: the two recipes, then one per registered method."""
    out: dict[str, Callable[[], list[float]]] = {"pretrain": pretrain, "finetune": finetune}
    out.update({f"unlearn-{name}": (lambda name=name: unlearn(name)) for name in METHODS.names()})
    return out


def environment() -> dict:
    """The numeric environment the cases run in (one thread)."""
    with one_thread():
        return numeric_environment()


def run(name: str) -> list[float]:
    with one_thread():
        return cases()[name]()


def record_here() -> dict:
    """Every case's losses in this process, and the environment they were computed in."""
    return {"environment": environment(), "trajectories": {name: run(name) for name in cases()}}


def matching(pinned: dict, env: dict) -> dict | None:
    """The recording made in numeric environment `env`, if any."""
    for recording in pinned["recordings"]:
        if not differences(env, [recording["environment"]]):
            return recording
    return None


def load(path: Path = PINNED) -> dict:
    return json.loads(path.read_text())
