"""The tensors made from the prompts a model family's dialect writes (repro/model/families/): images
matched to their placeholders, padding, the answer's labels (docs/design.md, "Prompts and scoring")."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from repro.errors import ReproError
from repro.model.families import family_of_processor

IGNORE = -100  # label value PyTorch's cross-entropy skips

ImageLike = bytes | Image.Image
# A prompt's images, one per image placeholder in order: None (none), one image, or a sequence (a demonstration's first)
PromptImages = ImageLike | Sequence[ImageLike] | None


def token_counts(processor, texts: Sequence[str], image_tokens: int) -> list[int]:
    """Tokens each text takes as the processor encodes it: the tokenizer's count, each image placeholder
    expanded to the model's `image_tokens` (what the pre-flight checks and the evaluation batch size is
    sized by)."""
    if not texts:
        return []
    fam = family_of_processor(processor)
    tokenizer = processor.tokenizer
    extra = fam.placeholder_extra(processor, image_tokens)
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    return [len(i) + extra * t.count(fam.dialect.image) for i, t in zip(ids, texts)]


def to_pil(image: ImageLike) -> Image.Image:
    """Encoded bytes (as the records hold them) or a PIL image -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.open(io.BytesIO(image)).convert("RGB")


def _listed(images: PromptImages) -> list[ImageLike]:
    if images is None:
        return []
    return [images] if isinstance(images, (bytes, Image.Image)) else list(images)


def _images_match(texts: Sequence[str], images: Sequence[PromptImages], family) -> list[list[Image.Image]]:
    """Each prompt's images, prepared as its family's processor receives them; one list a prompt."""
    if len(texts) != len(images):
        raise ReproError(f"{len(texts)} prompts but {len(images)} images (use None for text-only prompts)")
    pil = []
    placeholder = family.dialect.image
    for i, (text, image) in enumerate(zip(texts, images)):
        own = _listed(image)
        if text.count(placeholder) != len(own):
            raise ReproError(f"prompt {i}: {text.count(placeholder)} {placeholder} tokens but "
                             f"{len(own) if own else 'no'} image{'s' if len(own) != 1 else ''} given")
        pil.append([family.prepare_image(to_pil(x)) for x in own])
    return pil


def _encode(
    processor, texts: list[str], images: Sequence[PromptImages], max_length: int, side: str
) -> dict[str, Any]:
    # The processor consumes the flat image list in order, one per placeholder, and the model matches image
    # features to image tokens in that same order: so a batch may mix rows with and without an image.
    family = family_of_processor(processor)
    per_row = _images_match(texts, images, family)
    batch = processor(
        text=texts,
        images=family.processor_images(per_row),
        padding="longest",
        padding_side=side,
        truncation=False,  # truncating could cut image tokens or the answer: refuse instead (below)
        return_tensors="pt",
    )
    length = batch["input_ids"].shape[1]
    if length > max_length:
        raise ReproError(f"an encoded prompt has {length} tokens, over the limit of {max_length} (training: "
                         "model.max_length; evaluation: the model's context less eval.generate_tokens)")
    return dict(batch)


def encode_training_batch(
    processor, items: Sequence[tuple[str, str, PromptImages]], max_length: int
) -> dict[str, torch.Tensor]:
    """(prompt, answer_text, image|None) items -> input_ids, attention_mask, labels[, pixel_values].

    Right padding. Labels are -100 on the prompt and the padding: the loss is on the answer tokens
    (and the family's end-of-answer token) only. MLLMU-Bench puts loss on the prompt too; the kit does not (docs/design.md, "Prompts and scoring").
    """
    if not items:
        raise ReproError("encode_training_batch: empty batch")
    prompts = [p for p, _, _ in items]
    images = [img for _, _, img in items]
    batch = _encode(processor, [p + a for p, a, _ in items], images, max_length, "right")
    # Tokenise the prompts alone (same images, so the same image-token expansion): the answer starts
    # where the full text stops sharing a prefix with its prompt. A common prefix, not len(prompt):
    # a SentencePiece tokenizer may merge across the boundary.
    prompt_ids = _encode(processor, prompts, images, max_length, "right")
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = IGNORE
    for row in range(len(items)):
        full = batch["input_ids"][row]
        n_prompt = int(prompt_ids["attention_mask"][row].sum())
        n = min(n_prompt, full.shape[0])
        differ = (prompt_ids["input_ids"][row, :n] != full[:n]).nonzero()
        start = int(differ[0, 0]) if len(differ) else n  # the common prefix, in one tensor op
        labels[row, :start] = IGNORE
        if not (labels[row] != IGNORE).any():
            raise ReproError(
                f"training item {row}: no answer tokens left after the prompt ({items[row][1]!r})"
            )
    batch["labels"] = labels
    return batch


def answer_logits_only(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch asking the model for the logits of its answer positions only (`logits_to_keep`), its labels
    laid out to match: a model's logits over every position cost B x T x V, and a face of thousands of image
    tokens (LLaVA-NeXT) or a vocabulary of 262,208 (Gemma-3) makes that most of a training step.

    Kept: the positions Q whose next token is an answer token in some row, and one more after the last
    (its logit predicts nothing). Labels become [ignored, labels[:, Q + 1]], so logits[:, i] predicts
    labels[:, i + 1] as over the whole sequence, and every loss of repro/train/losses.py reads the same
    answer tokens from the same logits."""
    labels = batch["labels"]
    predicting = (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(-1)
    if predicting.numel() == 0:
        raise ReproError("batch has no answer tokens (labels all -100): was the answer truncated by max_length?")
    keep = torch.cat([predicting, predicting[-1:] + 1])
    compact = torch.full((labels.shape[0], keep.numel()), IGNORE, dtype=labels.dtype)
    compact[:, 1:] = labels[:, predicting + 1]
    return {**batch, "labels": compact, "logits_to_keep": keep}


def encode_prompts(
    processor, prompts: Sequence[str], images: Sequence[PromptImages], max_length: int
) -> dict[str, torch.Tensor]:
    """Evaluation prompts, LEFT padded: position -1 is the next-token position of every row.

    Includes position_ids counted from each row's first real token, exactly as `generate` derives
    them from the attention mask, so a plain forward (the fast scorer) sees the positions generation
    sees. (RoPE is shift-invariant, so without them the difference is only rounding; with them it is none.)
    """
    batch = _encode(processor, list(prompts), images, max_length, "left")
    if family_of_processor(processor).explicit_positions():
        mask = batch["attention_mask"].long()
        batch["position_ids"] = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    return batch
