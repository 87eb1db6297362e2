"""(b) Training throughput of a fixed number of optimiser steps: LoRA fine-tuning and each unlearning
method, with the kit's own pieces (attach_lora, the method registry, the disabled-adapter reference,
optimise), plus GA+KLR with a deep-copied reference (the MLLMU-Bench way). The first optimiser step is
a warm-up and is not timed. On CUDA each stage's allocator peak is read too."""

from __future__ import annotations

import dataclasses
import gc
import math
from pathlib import Path

import torch

from repro.bench.baselines import deepcopy_reference
from repro.bench.clock import now
from repro.bench.trace import StageTrace, traced_batches
from repro.bench.workload import Workload
from repro.experiments.runner import PAPER_TARGET
from repro.model.lora import attach_lora
from repro.train.examples import knowledge_examples
from repro.train.loop import Diverged, batches_per_epoch, optimise, shuffled_batches
from repro.train.methods import UnlearnStep, get_method, method_params, step_inputs
from repro.train.recipes import training_loss
from repro.train.reference import policy, reference

FINETUNE = "finetune"
DEEPCOPY = "ga_klr_deepcopy"  # GA+KLR whose reference is a copy.deepcopy of the model


def stages(methods) -> list[str]:
    """What is timed: fine-tuning, the profile's methods, and the deep-copy variant of GA+KLR."""
    return [FINETUNE, *methods, *([DEEPCOPY] if "ga_klr" in methods else [])]


class Meter:
    """Samples and tokens of the timed calls; the clock starts at the first call after `warm_calls`, and
    after a tracer's batches, which follow them."""

    def __init__(self, warm_calls: int, device: torch.device, tracer: StageTrace | None = None):
        self.warm_calls, self.device, self.tracer = warm_calls + (tracer.batches if tracer else 0), device, tracer
        self.calls, self.t0 = 0, None
        self.samples, self.tokens, self.ref_tokens, self.positions = 0, 0, 0, 0

    def batch(self, n: int) -> None:
        if self.tracer is not None:
            self.tracer.at_batch(self.calls)
        if self.calls == self.warm_calls:
            self.t0, self.samples, self.tokens, self.ref_tokens = now(self.device), 0, 0, 0
            self.positions = 0
        self.calls += 1
        self.samples += n

    def add_tokens(self, batch: dict, ref: bool = False) -> None:
        n = int(batch["attention_mask"].sum())  # padding excluded
        if ref:
            self.ref_tokens += n
        else:
            self.tokens += n
            self.positions += batch["attention_mask"].numel()  # padding included

    def padding_share(self) -> float | None:
        """The share of the policy forwards' input positions that are padding."""
        return round(1 - self.tokens / self.positions, 4) if self.positions else None

    def counted(self, fn, ref: bool = False):
        """`fn` (batch -> logits), counting the tokens it reads."""
        def run(batch: dict):
            self.add_tokens(batch, ref)
            return fn(batch)
        return run

    def timed_batches(self) -> int:
        return max(0, self.calls - self.warm_calls)

    def seconds(self) -> float:
        return now(self.device) - self.t0 if self.t0 is not None else 0.0


def _epochs(examples, batch_size: int, calls: int) -> int:
    return math.ceil(calls / batches_per_epoch(examples, batch_size)) + 1


def _loss_fn(w: Workload, stage: str, peft_model, meter: Meter, base_copy_ref, steps: int):
    """(batches, grad_accum, lr, step_loss, prepare) of `stage`, as the kit's trainers build them."""
    p = w.profile
    if stage == FINETUNE:
        cfg = p.finetune
        examples = knowledge_examples(w.pool, cfg, w.data.dialect)
        batches = shuffled_batches(examples, cfg.batch_size, _epochs(examples, cfg.batch_size,
                                                                     steps * cfg.grad_accum), p.seed)

        def step_loss(enc):
            meter.batch(len(enc["input_ids"]))
            meter.add_tokens(enc)
            return training_loss(peft_model, enc)  # as repro.train.recipes.train

        return batches, cfg.grad_accum, cfg.lr, step_loss, w.encode
    spec = get_method("ga_klr" if stage == DEEPCOPY else stage)
    pol = meter.counted(policy(peft_model))
    ref = meter.counted(base_copy_ref or reference(peft_model), ref=True)
    forget_ex = knowledge_examples(w.unlearn, p.finetune, w.data.dialect)
    # the method's own schedule, as a request draws it, over enough epochs for `steps`
    cfg = dataclasses.replace(p.unlearn, epochs=_epochs(forget_ex, p.unlearn.batch_size, steps * p.unlearn.grad_accum))
    plan = spec.schedule(forget_ex, knowledge_examples(w.retain, p.finetune, w.data.dialect), cfg, p.seed, spec.needs_retain)
    params = method_params(cfg, spec)

    def step_loss(pair):
        meter.batch(len(next(part for part in pair if part is not None)["input_ids"]))
        return spec.loss(UnlearnStep(*pair, pol, ref, cfg, params))

    return plan.batches, cfg.grad_accum, cfg.lr, step_loss, step_inputs(w.encode)


def run_stage(w: Workload, stage: str, steps: int, trace_dir: Path | None = None) -> dict:
    """Train `stage` for `steps` optimiser steps from the loaded weights, then restore them. With
    `trace_dir`, the micro-batches after the untimed first step are profiled there, untimed too."""
    p, cuda = w.profile, w.device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(p.seed)
    base_copy_ref = deepcopy_reference(w.model) if stage == DEEPCOPY else None
    target = p.finetune.target if stage == FINETUNE else PAPER_TARGET
    peft_model = attach_lora(w.model, p.finetune, target, p.model.gradient_checkpointing)
    accum = (p.finetune if stage == FINETUNE else p.unlearn).grad_accum
    warm = accum if steps > 1 else 0
    tracer = StageTrace(trace_dir, stage, warm, w.device, traced_batches(accum)) if trace_dir is not None else None
    meter = Meter(warm, w.device, tracer)
    batches, accum, lr, step_loss, prepare = _loss_fn(w, stage, peft_model, meter, base_copy_ref, steps)
    params = [q for q in peft_model.parameters() if q.requires_grad]
    peft_model.train()
    diverged, oom = None, False
    try:
        optimise(params, batches, steps, step_loss, lr, 0, "constant", accum, f"bench {stage}",
                 prepare=prepare)
    except Diverged as exc:
        diverged = exc.step
    except torch.cuda.OutOfMemoryError:  # at paper scale a stage may not fit: say so, measure the others
        oom = True
    finally:
        if tracer is not None:
            tracer.finish()
    seconds = 0.0 if oom else meter.seconds()
    peak = torch.cuda.max_memory_allocated() if cuda and not oom else None
    del params, step_loss, base_copy_ref, batches
    w.model = peft_model.unload()
    del peft_model
    w.restore()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {"stage": stage, "timed_batches": meter.timed_batches(), "samples": meter.samples, "tokens": meter.tokens,
            "ref_tokens": meter.ref_tokens, "seconds": seconds,
            "samples_per_s": meter.samples / seconds if seconds else None,
            "tokens_per_s": meter.tokens / seconds if seconds else None, "padding_share": meter.padding_share(),
            "cuda_peak_bytes": peak, "diverged_at_step": diverged, "out_of_memory": oom,
            "trace": tracer.summary if tracer is not None else None}


def warm_up(w: Workload, steps: int) -> None:
    """Fine-tuning steps, untimed, before any stage is timed: a process's first training steps pay
    one-off costs (on CUDA, kernels loaded on first use and GEMM heuristics for each new shape). Measured
    at 13B shape on an H100: the same 12 fine-tuning steps at 22.7% MFU first, 29.9% when run again."""
    run_stage(w, FINETUNE, steps)
