"""The training recipes: pre-training the tiny base model, LoRA fine-tuning, and one unlearning request.
Each takes a live model and its examples and trains it; which weights are live, and what is kept, is the
caller's (repro/experiments/models.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from peft import PeftModel

from repro.config import FinetuneConfig, PretrainConfig, UnlearnConfig
from repro.data.records import MMBenchQuestion, Person
from repro.model.families.base import Dialect
from repro.model.lora import attach_lora, merge
from repro.model.prompts import answer_logits_only, encode_training_batch
from repro.train.examples import answer_examples, letter_examples, mmbench_examples, person_examples
from repro.train.loop import Example, batches_per_epoch, optimise, shuffled_batches
from repro.train.losses import answer_token_nll
from repro.train.methods import Method, UnlearnStep, step_inputs
from repro.train.reference import FrozenReference, model_logits, policy, reference

Encode = Callable[[Sequence[Example]], dict]


def encoder(processor, max_length: int, device: torch.device, answer_logits: bool = False) -> Encode:
    """Training examples -> the model's batch on `device` (input_ids, attention_mask, labels, pixel_values);
    with `answer_logits` (model.answer_logits), asking for the answer positions' logits only."""

    def encode(batch: Sequence[Example]) -> dict:
        enc = encode_training_batch(processor, [(e.prompt, e.answer, e.image) for e in batch], max_length)
        if answer_logits:
            enc = answer_logits_only(enc)
        return {k: v.to(device) for k, v in enc.items()}

    return encode


def training_loss(model, enc: dict) -> torch.Tensor:
    """The answer-token NLL: the model's own loss, or, for a batch that keeps the answer positions' logits
    only, the same NLL over them (a model's own loss may re-align labels by the attention mask: Gemma-3's)."""
    if "logits_to_keep" in enc:
        return answer_token_nll(model_logits(model, enc), enc["labels"])
    return model(**enc).loss


def train(model, params, batches: Iterator, steps: int, lr: float, warmup: int, schedule: str, accum: int,
          desc: str, encode: Encode) -> list[float]:
    """The answer-token NLL minimised over `batches`; the step losses."""
    model.train()
    losses = optimise(params, batches, steps, lambda enc: training_loss(model, enc), lr, warmup, schedule, accum,
                      desc, prepare=encode)
    model.eval()
    return losses


def pretrain(model, celebrities: list[Person], mmbench_train: list[MMBenchQuestion], cfg: PretrainConfig,
             seed: int, encode: Encode, dialect: Dialect) -> list[float]:
    """Tiny only: full-parameter training on the celebrities and mini-MMBench train, so that celebrity
    knowledge is pre-trained knowledge (docs/design.md, "The miniature")."""
    rng = random.Random(seed)
    # Celebrities are known as the web knows them: in many phrasings (the QA pairs and the benchmark's
    # own questions, answered in words), and general visual skills from mini-MMBench train.
    fixed = (person_examples(celebrities, dialect, text_only_as_asked=True) + answer_examples(celebrities, dialect)
             + mmbench_examples(mmbench_train, dialect))

    def batches():
        epoch = 0
        while True:  # fresh option orders each pass: the letter skill, not memorised letters
            pool = fixed
            if cfg.letters:
                pool = pool + letter_examples(celebrities, rng, dialect) + mmbench_examples(mmbench_train, dialect, True)
            yield from shuffled_batches(pool, cfg.batch_size, 1, seed + epoch)
            epoch += 1

    return train(model, list(model.parameters()), batches(), cfg.steps, cfg.lr, cfg.warmup, "cosine", 1,
                 "pre-train", encode)


def finetune(model, examples: list[Example], cfg: FinetuneConfig, seed: int, encode: Encode,
             checkpointing: bool = False,
             before_training: Callable[[PeftModel], None] | None = None) -> tuple[object, list[float]]:
    """LoRA fine-tuning on `examples` under `cfg.target`, merged: returns the merged model (the same object,
    its weights now the fine-tuned ones) and the step losses. The caller seeds torch (LoRA initialisation,
    dropout); `before_training` sees the adapter-wrapped model before the first step."""
    peft_model = attach_lora(model, cfg, cfg.target, checkpointing)
    steps = cfg.epochs * batches_per_epoch(examples, cfg.batch_size) // cfg.grad_accum
    params = [p for p in peft_model.parameters() if p.requires_grad]
    if before_training is not None:
        before_training(peft_model)
    losses = train(peft_model, params, shuffled_batches(examples, cfg.batch_size, cfg.epochs, seed), steps, cfg.lr,
                   0, "constant", cfg.grad_accum, "fine-tune", encode)
    return merge(peft_model), losses


@dataclass
class Request:
    """One unlearning request's inputs."""

    method: Method
    params: dict  # the method's own parameters, resolved (repro/train/methods/base.py, method_params)
    target: str  # "llm" or "proj+llm"
    forget: list[Example]
    retain: list[Example]
    seed: int  # the data order's seed (the profile's)


def unlearn(model, request: Request, cfg: UnlearnConfig, lora: FinetuneConfig, encode: Encode,
            frozen: FrozenReference | None = None, checkpointing: bool = False,
            before_training: Callable[[PeftModel], None] | None = None) -> tuple[PeftModel, list[float]]:
    """A fresh LoRA adapter over the live `model`, trained by the request's method on its schedule's
    batches. Returns the adapter-wrapped model, unmerged (the caller keeps the adapter, then merges), and the
    step losses. The reference is the model with its adapter disabled, or `frozen` (a chain's first model).
    The caller seeds torch (LoRA initialisation, dropout); `before_training` sees the adapter-wrapped model
    before the first step (to check there is room to keep the adapter, say)."""
    method = request.method
    # LoRA shape (r, alpha, dropout, regex) as in fine-tuning: MLLMU-Bench uses one LoRA setting for both.
    peft_model = attach_lora(model, lora, request.target, checkpointing)
    plan = method.schedule(request.forget, request.retain, cfg, request.seed, method.needs_retain)
    pol, ref = policy(peft_model), frozen if frozen is not None else reference(peft_model)

    def step_loss(pair) -> torch.Tensor:
        return method.loss(UnlearnStep(*pair, pol, ref, cfg, request.params))

    if before_training is not None:
        before_training(peft_model)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    peft_model.train()
    try:
        losses = optimise(params, plan.batches, plan.steps, step_loss, cfg.lr, 0, "constant", cfg.grad_accum,
                          f"unlearn {method.name} {request.target}", prepare=step_inputs(encode))
    except BaseException:
        # Drop the adapter unmerged. peft's unload() keeps the *trained* copy of every modules_to_save
        # module (the projector under proj+llm), so the live weights are no longer the start model's: the
        # caller must mark them unknown.
        peft_model.unload().eval()
        raise
    return peft_model, losses


def frozen_reference(model, request: Request, cfg: UnlearnConfig, encode: Encode) -> FrozenReference:
    """The reference logits of `model` (a chain's first model) on every example the request will read."""
    examples = request.forget + (request.retain if request.method.needs_retain else [])
    return FrozenReference(model, (encode(b) for b in shuffled_batches(examples, cfg.batch_size, 1, request.seed)))
