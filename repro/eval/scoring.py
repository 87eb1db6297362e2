"""Multiple-choice scoring.

`letter` follows MLLMU-Bench: the prediction is the first character of the greedy answer, upper-cased,
if it is A-D. The fast path reads the greedy first token from one batched forward pass; only items whose
first token is whitespace fall back to generation (so do special tokens, which the decoded answer skips), so it gives exactly what `generate` + parse gives.
`option-loglik` follows lm-evaluation-harness: the option whose text is most likely as the answer.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from repro.errors import ReproError
from repro.eval.items import Item
from repro.model.prompts import encode_prompts, encode_training_batch

GENERATE_TOKENS = 8  # enough for a letter after a few whitespace tokens


def parse_letter(text: str) -> str:
    """MLLMU-Bench's parse: first non-space character, upper-cased, if A-D; else no answer."""
    text = text.lstrip()
    return text[0].upper() if text and text[0].upper() in "ABCD" else ""


def _image(item: Item) -> Image.Image | None:
    return Image.open(io.BytesIO(item.image)).convert("RGB") if item.image is not None else None


def _batches(items: Sequence[Item], size: int, length: Callable[[Item], int]) -> list[list[Item]]:
    """Batch by modality (images and no images never mix) and by length, so padding stays small."""
    order = sorted(items, key=lambda it: (it.image is None, length(it), it.uid))
    out: list[list[Item]] = []
    for it in order:
        if out and len(out[-1]) < size and (out[-1][0].image is None) == (it.image is None):
            out[-1].append(it)
        else:
            out.append([it])
    return out


def _encode(processor, prompts: list[str], batch: list[Item], max_length: int, device) -> dict:
    enc = encode_prompts(processor, prompts, [_image(it) for it in batch], max_length)
    return {k: v.to(device) for k, v in enc.items()}


@torch.no_grad()
def _generate_text(model, processor, batch: list[Item], max_length: int) -> list[str]:
    enc = _encode(processor, [it.prompt for it in batch], batch, max_length, model.device)
    out = model.generate(**enc, do_sample=False, max_new_tokens=GENERATE_TOKENS,
                         pad_token_id=processor.tokenizer.pad_token_id)
    new = out[:, enc["input_ids"].shape[1]:]
    return processor.tokenizer.batch_decode(new, skip_special_tokens=True)


@torch.no_grad()
def score_letter(model, processor, items: Sequence[Item], batch_size: int, max_length: int,
                 mode: str = "fast", desc: str = "eval") -> dict[str, str]:
    """Predicted letter per item uid ("" when the answer does not start with A-D)."""
    if mode not in ("fast", "generate"):
        raise ReproError(f"unknown letter scoring mode {mode!r}: use 'fast' or 'generate'")
    tok = processor.tokenizer
    preds: dict[str, str] = {}
    batches = _batches(items, batch_size, lambda it: len(it.prompt))
    for batch in tqdm(batches, desc=desc, leave=False, disable=None):
        if mode == "generate":
            for it, text in zip(batch, _generate_text(model, processor, batch, max_length)):
                preds[it.uid] = parse_letter(text)
            continue
        enc = _encode(processor, [it.prompt for it in batch], batch, max_length, model.device)
        first = model(**enc).logits[:, -1, :].argmax(-1).tolist()  # left padding: last column is next token
        fallback = []
        for it, token in zip(batch, first):
            # Decoded as generate + parse decodes: a special or whitespace first token shows nothing,
            # and only generation can say what comes after it.
            text = tok.decode([token], skip_special_tokens=True)
            if text.strip():
                preds[it.uid] = parse_letter(text)
            else:
                fallback.append(it)
        if fallback:
            for it, text in zip(fallback, _generate_text(model, processor, fallback, max_length)):
                preds[it.uid] = parse_letter(text)
    return preds


@torch.no_grad()
def score_option_loglik(model, processor, items: Sequence[Item], batch_size: int, max_length: int,
                        desc: str = "eval") -> dict[str, str]:
    """The option whose text has the highest summed log-probability as the answer to the question."""
    from repro.train.losses import sequence_logprob

    flat = [(it, letter) for it in items for letter in sorted(it.options)]
    scores: dict[tuple[str, str], float] = {}
    by_uid = {it.uid: it for it in items}
    pseudo = [Item(f"{it.uid}\x00{letter}", "", it.context, {}, "", it.image, it.modality) for it, letter in flat]
    for batch in tqdm(_batches(pseudo, batch_size, lambda it: len(it.context)), desc=desc, leave=False,
                      disable=None):
        rows = []
        for p in batch:
            uid, letter = p.uid.split("\x00")
            rows.append((p.context, by_uid[uid].options[letter], _image(p)))
        enc = encode_training_batch(processor, rows, max_length)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        logp = sequence_logprob(model(**{k: v for k, v in enc.items() if k != "labels"}).logits, enc["labels"])
        for p, value in zip(batch, logp.tolist()):
            uid, letter = p.uid.split("\x00")
            scores[(uid, letter)] = value
    return {it.uid: max(sorted(it.options), key=lambda L: scores[(it.uid, L)]) for it in items}


def predict(model, processor, items: Sequence[Item], scoring: str, batch_size: int, max_length: int,
            desc: str = "eval") -> dict[str, str]:
    """Predictions per item uid under the profile's scoring rule."""
    if not items:
        return {}
    model.eval()
    if scoring == "letter":
        return score_letter(model, processor, items, batch_size, max_length, "fast", desc)
    if scoring == "option-loglik":
        return score_option_loglik(model, processor, items, batch_size, max_length, desc)
    raise ReproError(f"unknown scoring {scoring!r}: use 'letter' or 'option-loglik'")
