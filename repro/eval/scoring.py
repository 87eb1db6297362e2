"""Multiple-choice scoring.

`letter` follows MLLMU-Bench: the prediction is the first character of the greedy answer, upper-cased,
if it is A-D. The fast path reads the greedy first token from one batched forward pass; only items whose
first token is whitespace fall back to generation (so do special tokens, which the decoded answer skips), so it gives exactly what `generate` + parse gives.
`option-loglik` follows lm-evaluation-harness: the option whose text is most likely as the answer.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Sequence

import torch
from PIL import Image

from repro import distributed, prefetch
from repro.errors import ReproError
from repro.eval.answers import ANSWER_RULES, first_letter
from repro.eval.items import Item
from repro.model.families import family_of_processor
from repro.model.prompts import encode_prompts, encode_training_batch
from repro.progress import progress
from repro.registry import Registry

GENERATE_TOKENS = 50  # MLLMU-Bench eval.py: max_new_tokens=50


def prompt_limit(context: int, eval_cfg) -> int:
    """The longest evaluation prompt: the model's context, less the answer the letter scorer may generate
    (model.max_length is a training budget and does not limit evaluation)."""
    return context - (eval_cfg.generate_tokens if eval_cfg.scoring == "letter" else 0)


def parse_letter(text: str) -> str:
    """MLLMU-Bench's parse: first non-space character, upper-cased, if A-D; else no answer."""
    return first_letter(text, "ABCD")


def _images(item: Item) -> list[Image.Image] | None:
    """The prompt's images in placeholder order (demonstrations' first), decoded."""
    shown = item.images()
    return [Image.open(io.BytesIO(x)).convert("RGB") for x in shown] if shown is not None else None


def shown_images(item: Item) -> int:
    """How many images a prompt shows: each one is hundreds of tokens (LLaVA-1.5: 576), far more than its text."""
    return len(item.images() or ())


def length_batches(items: Sequence[Item], size: int, length: Callable[[Item], int]) -> list[list[Item]]:
    """Batch by the number of images shown (prompts with none, one, or a demonstration's face too never
    mix) and by length within it, so padding stays small."""
    order = sorted(items, key=lambda it: (it.image is None, shown_images(it), length(it), it.uid))
    out: list[list[Item]] = []
    for it in order:
        if out and len(out[-1]) < size and shown_images(out[-1][0]) == shown_images(it):
            out[-1].append(it)
        else:
            out.append([it])
    return out


def _mine(batches: list[list[Item]]) -> list[list[Item]]:
    """Under a launcher, this rank's share of the batches (dealt round-robin); alone, all of them.
    The batches themselves are formed as in one process, so each prediction is computed on the same
    batch (same padding) whatever the process count."""
    dist = distributed.current()
    return batches if dist is None else batches[dist.rank::dist.world]


def _gathered(part: dict) -> dict:
    """Every rank's results merged (alone: `part` itself)."""
    dist = distributed.current()
    if dist is None:
        return part
    merged: dict = {}
    for d in dist.gather(part):
        merged.update(d)
    return merged


def _encode(processor, prompts: list[str], batch: list[Item], max_length: int, device) -> dict:
    enc = encode_prompts(processor, prompts, [_images(it) for it in batch], max_length)
    return {k: v.to(device) for k, v in enc.items()}


def halving_on_oom(score: Callable[[list], dict], batch: list, desc: str = "eval") -> dict:
    """`score(batch)`; when the GPU runs out of memory, the batch in two halves (down to one item), and
    a line on stderr says the batch size it fell back to. Only the batch that did not fit is split."""
    try:
        return score(batch)
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(batch) // 2
        print(f"pulse-repro: {desc}: out of GPU memory on a batch of {len(batch)}; scoring it as batches of "
              f"{half} and {len(batch) - half} (lower eval.batch_size to avoid the retry)", file=sys.stderr)
        return {**halving_on_oom(score, batch[:half], desc), **halving_on_oom(score, batch[half:], desc)}


def _each_batch(batches: list[list], encode: Callable[[list], dict], score: Callable[[list, dict], dict],
                ahead: bool, desc: str) -> dict:
    """score(batch, encode(batch)) merged over the batches. With `ahead` (on CUDA) the next batch is encoded
    in a background thread while this one is scored; halves of a batch split by `halving_on_oom` are
    encoded anew."""
    out: dict = {}
    bar = progress(len(batches), desc)
    with prefetch.prepared_ahead(batches, encode, ahead) as source:
        for batch, get in source:
            encoded = get()

            def scored(part: list, whole: list = batch, enc: dict = encoded) -> dict:
                return score(part, enc if part is whole else encode(part))

            out.update(halving_on_oom(scored, batch, desc))
            bar.update()
    bar.close()
    return out


@torch.no_grad()
def _generate_text(model, processor, batch: list[Item], max_length: int, enc: dict | None = None,
                   new_tokens: int = GENERATE_TOKENS) -> list[str]:
    enc = enc if enc is not None else _encode(processor, [it.prompt for it in batch], batch, max_length,
                                              model.device)
    out = model.generate(**enc, do_sample=False, max_new_tokens=new_tokens,
                         pad_token_id=processor.tokenizer.pad_token_id)
    new = out[:, enc["input_ids"].shape[1]:]
    return processor.tokenizer.batch_decode(new, skip_special_tokens=True)


@torch.no_grad()
def score_letter(model, processor, items: Sequence[Item], batch_size: int, max_length: int,
                 mode: str = "fast", desc: str = "eval", rule: str = "first-letter",
                 new_tokens: int = GENERATE_TOKENS) -> dict[str, str]:
    """Predicted letter per item uid ("" when the answer gives none) by the answer `rule`
    (repro/eval/answers.py). The fast path reads the first token, which decides `first-letter` alone; any
    other rule reads the generated answer."""
    if mode not in ("fast", "generate"):
        raise ReproError(f"unknown letter scoring mode {mode!r}: use 'fast' or 'generate'")
    parse = ANSWER_RULES.get(rule)
    if rule != "first-letter":
        mode = "generate"
    tok = processor.tokenizer

    def encode(batch: list[Item]) -> dict:
        return _encode(processor, [it.prompt for it in batch], batch, max_length, model.device)

    def letters(batch: list[Item], enc: dict) -> dict[str, str]:
        if mode == "generate":
            texts = _generate_text(model, processor, batch, max_length, enc, new_tokens)
            return {it.uid: parse(text, it.options) for it, text in zip(batch, texts)}
        # left padding: the last column predicts the next token; the LM head runs on that column alone
        first = model(**enc, logits_to_keep=1).logits[:, -1, :].argmax(-1).tolist()
        out, fallback = {}, []
        for it, token in zip(batch, first):
            # Decoded as generate + parse decodes: a special or whitespace first token shows nothing,
            # and only generation can say what comes after it.
            text = tok.decode([token], skip_special_tokens=True)
            if text.strip():
                out[it.uid] = parse(text, it.options)
            else:
                fallback.append(it)
        if fallback:
            texts = _generate_text(model, processor, fallback, max_length, None, new_tokens)
            out.update((it.uid, parse(text, it.options)) for it, text in zip(fallback, texts))
        return out

    batches = _mine(length_batches(items, batch_size, lambda it: len(it.prompt)))
    # the baseline (generate) encodes in line, as MLLMU-Bench does
    preds = _each_batch(batches, encode, letters, mode == "fast" and prefetch.pays_on(model.device), desc)
    if distributed.current() is not None:
        merged = _gathered(preds)
        preds = {it.uid: merged[it.uid] for it in items}
    return preds


@torch.no_grad()
def generate_answers(model, processor, items: Sequence[Item], batch_size: int, max_length: int,
                     desc: str = "eval", new_tokens: int = GENERATE_TOKENS) -> dict[str, str]:
    """The answer in words per item uid, as MLLMU-Bench reads it (`open_answer`) from a greedy generation of
    at most `new_tokens` tokens: its generation and fill-in-the-blank tasks."""
    if not items:
        return {}
    model.eval()
    dialect = family_of_processor(processor).dialect

    def encode(batch: list[Item]) -> dict:
        return _encode(processor, [it.prompt for it in batch], batch, max_length, model.device)

    def answers(batch: list[Item], enc: dict) -> dict[str, str]:
        texts = _generate_text(model, processor, batch, max_length, enc, new_tokens)
        return {it.uid: dialect.open_answer(text) for it, text in zip(batch, texts)}

    batches = _mine(length_batches(items, batch_size, lambda it: len(it.prompt)))
    return _gathered(_each_batch(batches, encode, answers, prefetch.pays_on(model.device), desc))


def _single_token_options(tokenizer, item: Item, dialect) -> dict[str, int] | None:
    """Option letter -> token id when every option is one token after the context, else None."""
    ids = {k: tokenizer(dialect.continuation(v), add_special_tokens=False)["input_ids"] for k, v in item.options.items()}
    return {k: v[0] for k, v in ids.items()} if all(len(v) == 1 for v in ids.values()) else None


@torch.no_grad()
def score_option_loglik(model, processor, items: Sequence[Item], batch_size: int, max_length: int,
                        desc: str = "eval") -> dict[str, str]:
    """The option whose text has the highest summed log-probability as the continuation of the question
    (lm-evaluation-harness's multiple-choice `acc`; ties go to the first letter). When every option is a
    single token, one forward pass over the question gives all of them at once; otherwise each option is
    scored as its own continuation."""
    from repro.train.losses import sequence_logprob

    tok = processor.tokenizer
    dialect = family_of_processor(processor).dialect
    scores: dict[tuple[str, str], float] = {}
    single = {it.uid: ids for it in items if (ids := _single_token_options(tok, it, dialect)) is not None}
    fast = [it for it in items if it.uid in single]

    def encode_contexts(batch: list[Item]) -> dict:
        return _encode(processor, [it.context for it in batch], batch, max_length, model.device)

    def single_token_scores(batch: list[Item], enc: dict) -> dict:
        logp = torch.log_softmax(model(**enc, logits_to_keep=1).logits[:, -1, :].float(), dim=-1)
        return {(it.uid, letter): logp[row, token].item()
                for row, it in enumerate(batch) for letter, token in single[it.uid].items()}

    scores.update(_each_batch(_mine(length_batches(fast, batch_size, lambda it: len(it.context))), encode_contexts,
                              single_token_scores, prefetch.pays_on(model.device), desc))
    # Options of several tokens: one row per (item, option), the continuation's log-probability summed.
    rows = [(it, letter) for it in items if it.uid not in single for letter in sorted(it.options)]
    pseudo = [Item(f"{i}", "", it.context, {}, "", it.image, it.modality, demo_images=it.demo_images)
              for i, (it, _) in enumerate(rows)]

    def encode_continuations(batch: list[Item]) -> dict:
        picked = [rows[int(p.uid)] for p in batch]
        enc = encode_training_batch(processor, [(it.context, dialect.continuation(it.options[letter]), _images(it))
                                                for it, letter in picked], max_length)
        return {k: v.to(model.device) for k, v in enc.items()}

    def continuation_scores(batch: list[Item], enc: dict) -> dict:
        picked = [rows[int(p.uid)] for p in batch]
        logits = model(**{k: v for k, v in enc.items() if k != "labels"}).logits
        return {(it.uid, letter): value
                for (it, letter), value in zip(picked, sequence_logprob(logits, enc["labels"]).tolist())}

    scores.update(_each_batch(_mine(length_batches(pseudo, batch_size, lambda p: len(p.context))), encode_continuations,
                              continuation_scores, prefetch.pays_on(model.device), desc))
    scores = _gathered(scores)
    return {it.uid: max(sorted(it.options), key=lambda L: scores[(it.uid, L)]) for it in items}


def predict(model, processor, items: Sequence[Item], scoring: str, batch_size: int, max_length: int,
            desc: str = "eval", rule: str = "first-letter", new_tokens: int = GENERATE_TOKENS) -> dict[str, str]:
    """Predictions per item uid under the profile's scoring (and, for `letter`, answer `rule`)."""
    if not items:
        return {}
    score = SCORINGS.get(scoring)
    model.eval()
    return score(model, processor, items, batch_size, max_length, desc, rule, new_tokens)


# How a multiple-choice answer is read: MLLMU-Bench's letter parse of the greedy answer, or
# lm-evaluation-harness's option log-likelihood. (model, processor, items, batch, limit, desc, rule, tokens).
SCORINGS: Registry[Callable[..., dict[str, str]]] = Registry("scoring")
SCORINGS.add("letter", lambda model, processor, items, batch_size, limit, desc, rule, new_tokens: score_letter(
    model, processor, items, batch_size, limit, "fast", desc, rule, new_tokens))
SCORINGS.add("option-loglik", lambda model, processor, items, batch_size, limit, desc, rule, new_tokens:
             score_option_loglik(model, processor, items, batch_size, limit, desc))
