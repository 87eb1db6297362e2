"""`pulse-repro bench`: (a) evaluation, (b) training throughput, (c) peak memory and (d) stage times,
measured in one run on the profile's base model (or a --shape model) and its data."""

from __future__ import annotations

import dataclasses
import platform
import sys

import torch

from repro import hub
from repro.bench import ceiling, evaluation, flops, memory, output, projection, stages, trace, training
from repro.bench.baselines import BASELINE_NOTE
from repro.bench.shapes import check_fits, paper_shape, shape_overrides, shape_profile
from repro.bench.workload import load, prepare
from repro.choices import load_profile
from repro.errors import ReproError

WARMUP_NOTE = (f"each scorer first runs untimed: the batched ones on a full batch, the baseline on "
               f"{evaluation.WARMUP_ITEMS} questions; the batched scorers' figure is the faster of "
               f"{evaluation.TIMED_RUNS} timed runs, the baseline's one run")
TRACE_MIN_STEPS = 2 + trace.TRACED_BATCHES  # an untimed step, the traced batches, at least one timed step
MEMORY_STEPS = 3  # the peak is reached by the second step (AdamW's state exists from the first)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)"


def _ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def flipped_checkpointing(w, eval_qps: float, steps: int) -> dict:
    """Every training stage but the deep-copy variant again, with activation checkpointing the other way from
    the profile's: the figures a projection with and without it needs."""
    profile = w.profile
    on = not profile.model.gradient_checkpointing
    w.profile = dataclasses.replace(profile, model=dataclasses.replace(profile.model, gradient_checkpointing=on))
    try:
        train = {s: training.run_stage(w, s, steps) for s in training.stages(profile.unlearn.methods)
                 if s != training.DEEPCOPY}
    finally:
        w.profile = profile
    cuda = w.device.type == "cuda"
    rates = {s: t["samples_per_s"] for s, t in train.items()}
    return {"gradient_checkpointing": on,
            "train_samples_per_s": {s: v and round(v, 3) for s, v in rates.items()},
            "train_tokens_per_s": {s: t["tokens_per_s"] and round(t["tokens_per_s"], 1) for s, t in train.items()},
            "peak_mem_bytes": {s: t["cuda_peak_bytes"] for s, t in train.items()} if cuda else None,
            "mfu": flops.report(w.model, {"prompt_tokens": 0, "seconds": {"letter_fast": 1.0}}, train,
                                _device_name(w.device))["train"] if cuda else None,
            "paper_grid_projection": projection.project(w.pool, rates, eval_qps, w.shape) if w.shape else None}


def measure(profile_name: str, overrides: list[str], shape: str | None, n_items: int, steps: int,
            run_dir=None, checkpointing: str = "profile", trace_dir=None) -> dict:
    if n_items < 1 or steps < 1:
        raise ReproError("--items and --steps must be at least 1")
    if trace_dir is not None and steps < TRACE_MIN_STEPS:
        raise ReproError(f"--trace needs --steps {TRACE_MIN_STEPS} or more: the first step is untimed, the steps "
                         f"holding the next {trace.TRACED_BATCHES} batches are traced, and the rest are timed "
                         f"(got --steps {steps})")
    profile_name = shape_profile(shape, profile_name)
    overrides = shape_overrides(shape) + list(overrides)
    profile = load_profile(profile_name, overrides)
    # a profile's own model and data from the hub: offline from the cache where the hub does not answer
    hub.prepare(profile, hub.fetch_command(profile_name, overrides), say=lambda line: print(line, file=sys.stderr))
    seconds_by_stage = stages.stage_seconds(run_dir)  # fail early on a bad --run-dir
    if shape is not None:  # refuse a paper-scale model on CPU before loading any data
        check_fits(profile.model, paper_shape(shape).vocab, torch.device("cuda" if torch.cuda.is_available()
                                                                        else "cpu"), shape)
    w = load(prepare(profile, n_items, shape))
    cuda = w.device.type == "cuda"
    ev = evaluation.measure_eval(w)
    qps = ev["qps"]
    bound = ceiling.bound(w.model, ev["prompt_tokens"], ev["items"], ev["batch_size"],
                          ev["seconds"]["letter_fast"], qps["letter_generate_bs1"])
    training.warm_up(w, steps)
    train = {s: training.run_stage(w, s, steps, trace_dir) for s in training.stages(profile.unlearn.methods)}
    methods = [s for s in train if s != training.FINETUNE]
    peaks, mem_note = memory.method_peaks(train, methods, cuda, profile_name, overrides, shape,
                                          min(steps, MEMORY_STEPS))
    mfu = flops.report(w.model, ev, train, _device_name(w.device)) if cuda else None
    other = flipped_checkpointing(w, qps["profile_scoring"], steps) if checkpointing == "both" else None
    train_rates = {s: t["samples_per_s"] for s, t in train.items()}
    grid = projection.project(w.pool, train_rates, qps["profile_scoring"], shape) if shape else None
    weights = (f"--shape {shape}: built from config with random weights" if shape else
               f"the profile's base model ({profile.model.source}"
               + ((", pre-trained here and cached" if profile.pretrain.steps else ", not pre-trained: pretrain.steps=0")
                  if profile.model.source == "tiny" else "") + ")")
    return {
        "device": _device_name(w.device),
        "profile": profile.name,
        "shape": shape,
        "items": ev["items"],
        "eval_prompt_tokens": ev["prompt_tokens"],
        "eval_batch_size": ev["batch_size"],
        "eval_padding_share": ev["padding_share"],
        "eval_padding_share_in_question_order": ev["padding_share_in_question_order"],
        "attention": ev["attention"],
        "steps": steps,
        "eval_qps": round(qps["letter_fast"], 3),
        "eval_qps_baseline": round(qps["letter_generate_bs1"], 3),
        "eval_speedup": round(qps["letter_fast"] / qps["letter_generate_bs1"], 3),
        "eval_speedup_ceiling": bound["speedup_ceiling"],
        "eval_ceiling": bound,
        "agreement": ev["agreement"],
        "eval_answered": round(ev["answered"], 4),
        "eval_profile_scoring": ev["profile_scoring"],
        "eval_qps_profile_scoring": round(qps["profile_scoring"], 3),
        "train_samples_per_s": {s: t["samples_per_s"] and round(t["samples_per_s"], 3) for s, t in train.items()},
        "train_tokens_per_s": {s: t["tokens_per_s"] and round(t["tokens_per_s"], 1) for s, t in train.items()},
        "train_padding_share": {s: t["padding_share"] for s, t in train.items()},
        "train_diverged_at_step": {s: t["diverged_at_step"] for s, t in train.items() if t["diverged_at_step"]},
        "train_out_of_memory": [s for s, t in train.items() if t["out_of_memory"]],
        "peak_mem_bytes": peaks,
        "ref_mem_overhead": _ratio(peaks.get("ga_klr"), peaks.get("ga")),
        "deepcopy_mem_overhead": _ratio(peaks.get(training.DEEPCOPY), peaks.get("ga")),
        "deepcopy_vs_kit_mem": _ratio(peaks.get(training.DEEPCOPY), peaks.get("ga_klr")),
        "stage_seconds": seconds_by_stage,
        "mfu": mfu,
        "paper_grid_projection": grid,
        "other_checkpointing": other,
        "trace": {s: t["trace"] for s, t in train.items()} if trace_dir is not None else None,
        "method_notes": {
            "model": weights,
            "eval": (f"{ev['items']} questions sampled with the profile's seed from the fine-tuning pool's "
                     f"questions and MMBench dev; kit: score_letter fast at eval.batch_size {ev['batch_size']} "
                     f"(generation only for items whose first token is blank); agreement: share of "
                     f"questions where kit and baseline predict the same letter (or both none); "
                     f"eval_qps_profile_scoring: the profile's scoring ({ev['profile_scoring']}); "
                     f"{WARMUP_NOTE}"),
            "baseline": BASELINE_NOTE,
            "ceiling": " ".join(ceiling.__doc__.split()),
            "train": (f"{steps} optimiser steps per stage, the first untimed, after {steps} untimed fine-tuning "
                      "steps (a process's first training pays one-off costs); samples: forget "
                      "(unlearning) or training examples per second; tokens: non-padding tokens of every "
                      "policy forward (forget and retain batches), reference forwards not counted; "
                      f"{training.DEEPCOPY}: GA+KLR whose reference is a copy.deepcopy of the model "
                      "(MLLMU-Bench), the kit's is the same weights with the adapter disabled"),
            "memory": mem_note,
            "mfu": ("achieved FLOP/s over the device's dense bf16 peak; FLOPs 2 x N x prompt tokens for "
                    "evaluation, 6 x N x policy tokens + 2 x N x reference tokens for training (with LoRA the "
                    "frozen weights get no weight gradients, so this convention overstates the useful work), "
                    "N = parameters less the input embedding table" if cuda
                    else "not reported on CPU (MFU is against a GPU's bf16 peak)"),
            "projection": (projection.__doc__.split("\n\n")[0].replace("\n", " ") + "; evaluation at the "
                           "profile's scoring rate; examples per person from the bench's data"
                           if shape else "only with --shape (the paper grid at paper scale)"),
            "other_checkpointing": ("every training stage but the deep copy timed again with activation "
                                    "checkpointing the other way from the profile's (--checkpointing both)"
                                    if other else "omitted: --checkpointing both times it"),
            "trace": (f"--trace: the whole steps holding each stage's {trace.TRACED_BATCHES} batches after its "
                      "untimed first step profiled (torch.profiler) and not timed; device_busy_share: the GPU-side "
                      "events' summed time over the traced wall time (below 1 the GPU waited); top_ops_ms: "
                      "operators by their kernels' GPU time (CPU time on a CPU)" if trace_dir is not None
                      else "omitted: --trace DIR profiles a few batches of each training stage"),
            "stages": ("from RUN_DIR/stages.json written by `pulse-repro all`" if seconds_by_stage is not None
                       else "omitted: give --run-dir RUN_DIR of a finished `pulse-repro all` run"),
        },
    }


def bench_command(args) -> int:
    result = measure(args.profile, args.overrides, args.shape, args.items, args.steps, args.run_dir,
                     args.checkpointing, args.trace)
    print(output.to_json(result) if args.json else output.to_tables(result))
    return 0
