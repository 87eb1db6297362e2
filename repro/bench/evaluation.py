"""(a) MCQ evaluation throughput: the kit's batched first-token letter scorer and the profile's scoring
against one `generate` per question at batch size 1, on the same questions, with their agreement."""

from __future__ import annotations

from repro.bench.baselines import generate_per_question
from repro.bench.clock import best_of, timed
from repro.bench.workload import Workload
from repro.eval.batch_size import resolve_batch_size
from repro.eval.scoring import length_batches, predict, prompt_limit, score_letter
from repro.model.factory import context_length
from repro.model.prompts import encode_prompts

WARMUP_ITEMS = 4
TIMED_RUNS = 2  # the batched scorers (seconds each) are timed twice and the faster run kept, as timeit does


def positions(w: Workload, grouped: bool, size: int, limit: int) -> tuple[int, int]:
    """(tokens, input positions) of the letter scorer's batches: tokens are what it reads (image tokens
    included, padding not), positions count the padding too. `grouped`: its own batches (by images shown and
    prompt length); else the same questions batched alike in their order. `limit`: the longest prompt scored."""
    batches = (length_batches(w.items, size, lambda it: len(it.prompt)) if grouped
               else [w.items[i:i + size] for i in range(0, len(w.items), size)])
    tokens = padded = 0
    for batch in batches:
        enc = encode_prompts(w.processor, [it.prompt for it in batch], [it.images() for it in batch], limit)
        padded += enc["attention_mask"].numel()
        tokens += int(enc["attention_mask"].sum())
    return tokens, padded


def padding_share(tokens: int, padded: int) -> float:
    return round(1 - tokens / padded, 4) if padded else 0.0


def attention_implementation(model) -> str:
    """The attention the language model runs (sdpa, eager, flash_attention_2, ...), as transformers chose it."""
    config = getattr(model.config, "text_config", model.config)
    return str(getattr(config, "_attn_implementation", None) or "unknown")


def measure_eval(w: Workload) -> dict:
    model, proc, items = w.model.eval(), w.processor, w.items
    # the prompt limit a run scores under (the model's context less the answer), not the training budget
    length, scoring = prompt_limit(context_length(model), w.profile.eval), w.profile.eval.scoring
    bs = resolve_batch_size(w.profile.eval.batch_size, model, proc, [it.prompt for it in items],
                            w.profile.eval.generate_tokens)
    # First calls pay one-off costs (allocations, kernel selection): each scorer first runs untimed on
    # batches of the shapes it will see (a full batch for the batched scorers).
    score_letter(model, proc, items[:max(bs, WARMUP_ITEMS)], bs, length, "fast", "bench warm-up")
    predict(model, proc, items[:max(bs, WARMUP_ITEMS)], scoring, bs, length, "bench warm-up")
    generate_per_question(model, proc, items[:WARMUP_ITEMS], length)
    fast, t_fast = best_of(TIMED_RUNS, w.device,
                           lambda: score_letter(model, proc, items, bs, length, "fast", "bench fast"))
    slow, t_slow = timed(w.device, lambda: generate_per_question(model, proc, items, length))
    _, t_prof = best_of(TIMED_RUNS, w.device,
                        lambda: predict(model, proc, items, scoring, bs, length, "bench profile"))
    n = len(items)
    in_order = positions(w, grouped=False, size=bs, limit=length)  # the tokens read are the same however they are batched
    return {
        "items": n,
        "batch_size": bs,
        "profile_scoring": scoring,
        "seconds": {"letter_fast": t_fast, "letter_generate_bs1": t_slow, "profile_scoring": t_prof},
        "qps": {"letter_fast": n / t_fast, "letter_generate_bs1": n / t_slow, "profile_scoring": n / t_prof},
        "agreement": sum(fast[it.uid] == slow[it.uid] for it in items) / n,
        "answered": sum(bool(fast[it.uid]) for it in items) / n,  # share of answers that start with A-D
        "prompt_tokens": in_order[0],
        "padding_share": padding_share(*positions(w, grouped=True, size=bs, limit=length)),
        "padding_share_in_question_order": padding_share(*in_order),
        "attention": attention_implementation(model),
    }
