"""One unlearning request: a fresh LoRA adapter trained on the forget shard with a registered method,
then merged, so that chained requests compose (DESIGN.md section 4)."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import torch

from repro.data.records import Person
from repro.hashing import key_of, seed_from_key
from repro.model.lora import attach_lora, merge
from repro.train.examples import knowledge_examples
from repro.train.loop import batches_per_epoch, optimise, shuffled_batches
from repro.train.methods import UnlearnStep, get_method
from repro.train.reference import policy, reference


def request_key(start_key: str, forget: list[Person], retain: list[Person], method: str, target: str,
                session) -> str:
    p = session.profile
    return key_of("unlearn", start_key, method, target, asdict(p.unlearn), asdict(p.finetune),
                  [x.key for x in forget], [x.key for x in retain])


def unlearn_request(session, start_key: str, forget: list[Person], retain: list[Person], method: str,
                    target: str) -> tuple[str, list[float]]:
    """Unlearn `forget` from model `start_key`; returns the new model's key and the step losses."""
    key = request_key(start_key, forget, retain, method, target, session)
    if key in session._states:
        return key, []
    cfg = session.profile.unlearn
    spec = get_method(method)
    model = session.model(start_key)
    torch.manual_seed(seed_from_key(key))
    # LoRA shape (r, alpha, dropout, regex) as in fine-tuning: MLLMU-Bench uses one LoRA setting for both.
    peft_model = attach_lora(model, session.profile.finetune, target)
    # The same data a person was fine-tuned on (MLLMU-Bench unlearns on the forget set's training QA).
    forget_ex = knowledge_examples(forget, session.profile.finetune)
    retain_ex = knowledge_examples(retain, session.profile.finetune)
    steps = cfg.epochs * batches_per_epoch(forget_ex, cfg.batch_size) // cfg.grad_accum
    seed = session.profile.seed
    retain_batches = itertools.cycle(list(shuffled_batches(retain_ex, cfg.batch_size, 1, seed + 1))) \
        if spec.needs_retain else None
    pol, ref = policy(peft_model), reference(peft_model, cfg.reference)

    def step_loss(batch):
        retain_batch = session.encode(next(retain_batches)) if retain_batches else None
        return spec.fn(UnlearnStep(session.encode(batch), retain_batch, pol, ref, cfg))

    params = [p for p in peft_model.parameters() if p.requires_grad]
    peft_model.train()
    try:
        losses = optimise(params, shuffled_batches(forget_ex, cfg.batch_size, cfg.epochs, seed), steps,
                          step_loss, cfg.lr, 0, "constant", cfg.grad_accum, f"unlearn {method} {target}")
    except BaseException:
        # Drop the adapter unmerged. peft's unload() keeps the *trained* copy of every modules_to_save
        # module (the projector under proj+llm), so the live weights are no longer `start_key`'s: mark
        # them unknown, and the next session.model() reloads `start_key` from its kept weights.
        peft_model.unload().eval()
        session._live_key = None
        raise
    merged = merge(peft_model)
    merged.eval()
    session.remember(key, merged)
    return key, losses


