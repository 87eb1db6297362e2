"""One unlearning request: a fresh LoRA adapter over the start model, trained on the forget shard with a
registered method, kept as a unit (units/adapter-KEY.safetensors) and merged, so that chained requests
compose (DESIGN.md section 4).

`unlearn.reference` says what the KL / NPO reference of a chained request is:
- "request": the model at the start of the request (the adapter disabled);
- "original": the chain's first model (the model before any unlearning), whose logits are taken once
  before the request trains (repro/train/reference.py, FrozenReference)."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import torch

from repro import distributed
from repro.data.records import Person
from repro.experiments.disk import require_free, weight_bytes
from repro.experiments.session import Adapter
from repro.hashing import key_of, seed_from_key
from repro.model.lora import attach_lora, merge
from repro.train.examples import knowledge_examples
from repro.train.loop import batches_per_epoch, optimise, shuffled_batches
from repro.train.methods import UnlearnStep, get_method, step_inputs
from repro.train.reference import FrozenReference, policy, reference


def request_key(start_key: str, forget: list[Person], retain: list[Person], method: str, target: str,
                session) -> str:
    p = session.profile
    return key_of("unlearn", start_key, method, target, asdict(p.unlearn), asdict(p.finetune),
                  [x.key for x in forget], [x.key for x in retain])


def unlearn_request(session, start_key: str, forget: list[Person], retain: list[Person], method: str,
                    target: str) -> tuple[str, list[float]]:
    """Unlearn `forget` from model `start_key`; returns the new model's key and the step losses."""
    key = request_key(start_key, forget, retain, method, target, session)
    if session.has_model(key):  # trained before (in this process, or a unit left by an interrupted run)
        return key, []
    cfg = session.profile.unlearn
    spec = get_method(method)
    previous = session.adapter(start_key)
    root = previous.root if previous is not None else start_key  # the chain's first model
    # The same data a person was fine-tuned on (MLLMU-Bench unlearns on the forget set's training QA).
    forget_ex = knowledge_examples(forget, session.profile.finetune)
    retain_ex = knowledge_examples(retain, session.profile.finetune)
    steps = cfg.epochs * batches_per_epoch(forget_ex, cfg.batch_size) // cfg.grad_accum
    seed = session.profile.seed
    frozen = None
    if cfg.reference == "original" and root != start_key and spec.needs_reference:
        examples = forget_ex + (retain_ex if spec.needs_retain else [])
        frozen = FrozenReference(session.model(root), (session.encode(b) for b in
                                                       shuffled_batches(examples, cfg.batch_size, 1, seed)))
    torch.manual_seed(seed_from_key(key))
    # LoRA shape (r, alpha, dropout, regex) as in fine-tuning: MLLMU-Bench uses one LoRA setting for both.
    peft_model = attach_lora(session.model(start_key), session.profile.finetune, target,
                             session.profile.model.gradient_checkpointing)
    retain_batches = itertools.cycle(list(shuffled_batches(retain_ex, cfg.batch_size, 1, seed + 1))) \
        if spec.needs_retain else None
    pol, ref = policy(peft_model), frozen if frozen is not None else reference(peft_model, cfg.reference)
    forget_batches = shuffled_batches(forget_ex, cfg.batch_size, cfg.epochs, seed)
    if retain_batches is not None:
        # (forget, retain) pairs, drawn in the order one process draws them, so that under a launcher
        # the optimiser can give every rank its slice of both (repro/distributed.py); the KL/NPO
        # reference is then computed on each rank's own slice.
        forget_batches = zip(forget_batches, retain_batches)

    def step_loss(pair) -> torch.Tensor:
        return spec.fn(UnlearnStep(*pair, pol, ref, cfg))

    if distributed.is_main():
        require_free(session.units, weight_bytes(peft_model, trainable_only=True),
                     f"the request's adapter ({session.adapter_unit(key).name})")
    params = [p for p in peft_model.parameters() if p.requires_grad]
    peft_model.train()
    try:
        losses = optimise(params, forget_batches, steps, step_loss, cfg.lr, 0, "constant", cfg.grad_accum,
                          f"unlearn {method} {target}",
                          prepare=step_inputs(session.encode, retain_batches is not None))
    except BaseException:
        # Drop the adapter unmerged. peft's unload() keeps the *trained* copy of every modules_to_save
        # module (the projector under proj+llm), so the live weights are no longer `start_key`'s: mark
        # them unknown, and the next session.model() reloads `start_key` from its kept weights.
        peft_model.unload().eval()
        session._live_key = None
        raise
    session.keep_adapter(key, Adapter(start_key, target, root), peft_model)
    merge(peft_model).eval()
    session._live_key = key
    return key, losses


