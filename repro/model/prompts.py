"""Every prompt the kit shows a model, and the tensors made from them, in one place (docs/design.md,
"Prompts and scoring")."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from repro.data.records import LETTERS, MCQ, MMBenchQuestion, OpenQuestion
from repro.errors import ReproError
from repro.registry import Registry

IMAGE_TOKEN = "<image>"
EOS = "</s>"
MCQ_INSTRUCTION = "Just give ONE letter representing the answer directly."  # MLLMU-Bench
MMBENCH_INSTRUCTION = (
    "Answer with the option's letter from the given choices directly."  # LLaVA's MMBench eval
)
IGNORE = -100  # label value PyTorch's cross-entropy skips

ImageLike = bytes | Image.Image
# A prompt's images, one per <image> in order: None (none), one image, or a sequence (a demonstration's first)
PromptImages = ImageLike | Sequence[ImageLike] | None


def _user(with_image: bool) -> str:
    return f"USER: {IMAGE_TOKEN}\n" if with_image else "USER:\n"


def _options(q: MCQ) -> str:
    return "".join(f"{k}: {q.options[k]}\n" for k in LETTERS if k in q.options)


def mcq_prompt(q: MCQ, demonstrations: Sequence[MCQ] = ()) -> str:
    """MLLMU-Bench's classification prompt; the face is shown only for multimodal questions. Demonstrations,
    if any, come first (`demonstration`)."""
    shown = "".join(demonstration(d) for d in demonstrations)
    return f"{shown}{_user(q.modality == 'multimodal')}{q.question}\n{_options(q)}{MCQ_INSTRUCTION}\nASSISTANT:"


# MLLMU-Bench's own evaluation code, eval.py of github.com/YokeYao/MLLMU-Bench at commit b83832a: its few-shot
# classification demonstration, its generation-task and fill-in-the-blank prompts, to the character.
def demonstration(q: MCQ) -> str:
    """One answered classification question before the asked one (eval.py, evaluate_classification):
    `USER: <image>\nQuestion: {q}\nA: ..\nB: ..\nC: ..\nD: ..\nCorrect Answer: {letter}\n` (text-only: `USER:\n`)."""
    return f"{_user(q.modality == 'multimodal')}Question: {q.question}\n{_options(q)}Correct Answer: {q.answer}\n"


GENERATION_INSTRUCTION = "Answer the question based on your trained knowledge in one sentence{} in ENGLISH."
FILL_BLANK_INSTRUCTION = "Please **ONLY** provide the correct answer that should replace the [Blank]."


def generation_prompt(q: OpenQuestion) -> str:
    """eval.py, evaluate_generation: the image prompt says "accurately" and ends in a space, the text prompt
    does neither (both as published)."""
    if q.modality == "multimodal":
        return f"USER: {IMAGE_TOKEN}\n{q.question}\n{GENERATION_INSTRUCTION.format(' accurately')}\nASSISTANT: "
    return f"USER: {q.question}\n{GENERATION_INSTRUCTION.format('')}\nASSISTANT:"


def fill_blank_prompt(q: OpenQuestion) -> str:
    """eval.py, evaluate_fill_in_the_blank: `__` becomes `[Blank]`, then the one-answer instruction."""
    question = q.question.replace("__", "[Blank]") + "\n" + FILL_BLANK_INSTRUCTION
    return f"{_user(q.modality == 'multimodal')}{question}\nASSISTANT:"


def open_answer(generated: str) -> str:
    """eval.py's answer of a generated text: what follows the prompt's `ASSISTANT:` up to any `ASSISTANT:`
    the model writes itself, stripped (`generated` is the new text only; the peer splits the whole decoded
    sequence, whose first `ASSISTANT:` ends the prompt)."""
    return generated.split("ASSISTANT:")[0].strip()


# LLaVA-1.5's conversation template "vicuna_v1" (haotian-liu/LLaVA llava/conversation.py), which its MMBench
# evaluation uses (scripts/v1_5/eval/mmbench.sh: --conv-mode vicuna_v1): system prompt, then
# "USER: {message} ASSISTANT:" with " " as the separator.
VICUNA_V1_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's questions.")
MMBENCH_TEMPLATES: Registry[str] = Registry("MMBench template")
MMBENCH_TEMPLATES.add("plain", "USER: {body}\nASSISTANT:")  # the body alone, in MLLMU-Bench's turn format
MMBENCH_TEMPLATES.add("llava-v1", VICUNA_V1_SYSTEM + " USER: {body} ASSISTANT:")  # LLaVA-1.5's model_vqa_mmbench.py


def mmbench_prompt(q: MMBenchQuestion, template: str = "plain") -> str:
    """LLaVA's MMBench question (llava/eval/model_vqa_mmbench.py): the image, the hint line only when there
    is a hint, the question, "A. option" lines for the non-empty options, the single-answer instruction;
    wrapped in `template` (MMBENCH_TEMPLATES)."""
    hint = f"{q.hint}\n" if q.hint and q.hint.strip() else ""
    options = "".join(f"\n{k}. {q.options[k]}" for k in LETTERS if q.options.get(k, "").strip())
    body = f"{IMAGE_TOKEN}\n{hint}{q.question}{options}\n{MMBENCH_INSTRUCTION}"
    return MMBENCH_TEMPLATES.get(template).format(body=body)


def training_text(question: str, answer: str, with_image: bool) -> tuple[str, str]:
    """(prompt, answer_text); their concatenation is `USER: <image>\\n{q}\\nASSISTANT: {a}</s>`."""
    return f"{_user(with_image)}{question}\nASSISTANT:", f" {answer}{EOS}"


def token_counts(tokenizer, texts: Sequence[str], image_tokens: int) -> list[int]:
    """Tokens each text takes as the processor encodes it: the tokenizer's count, each <image> expanded to
    the model's `image_tokens` (what the pre-flight checks and the evaluation batch size is sized by)."""
    if not texts:
        return []
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    return [len(i) + (image_tokens - 1) * t.count(IMAGE_TOKEN) for i, t in zip(ids, texts)]


def to_pil(image: ImageLike) -> Image.Image:
    """Encoded bytes (as the records hold them) or a PIL image -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.open(io.BytesIO(image)).convert("RGB")


def _listed(images: PromptImages) -> list[ImageLike]:
    if images is None:
        return []
    return [images] if isinstance(images, (bytes, Image.Image)) else list(images)


def _images_match(texts: Sequence[str], images: Sequence[PromptImages]) -> list[Image.Image]:
    if len(texts) != len(images):
        raise ReproError(f"{len(texts)} prompts but {len(images)} images (use None for text-only prompts)")
    pil = []
    for i, (text, image) in enumerate(zip(texts, images)):
        own = _listed(image)
        if text.count(IMAGE_TOKEN) != len(own):
            raise ReproError(f"prompt {i}: {text.count(IMAGE_TOKEN)} {IMAGE_TOKEN} tokens but "
                             f"{len(own) if own else 'no'} image{'s' if len(own) != 1 else ''} given")
        pil.extend(to_pil(x) for x in own)
    return pil


def _encode(
    processor, texts: list[str], images: Sequence[PromptImages], max_length: int, side: str
) -> dict[str, Any]:
    # The processor consumes the flat image list in order, one per <image>, and LLaVA matches image
    # features to image tokens in that same order: so a batch may mix rows with and without an image.
    pil = _images_match(texts, images)
    batch = processor(
        text=texts,
        images=pil or None,
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
    (and </s>) only. MLLMU-Bench puts loss on the prompt too; the kit does not (docs/design.md, "Prompts and scoring").
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


def encode_prompts(
    processor, prompts: Sequence[str], images: Sequence[PromptImages], max_length: int
) -> dict[str, torch.Tensor]:
    """Evaluation prompts, LEFT padded: position -1 is the next-token position of every row.

    Includes position_ids counted from each row's first real token, exactly as `generate` derives
    them from the attention mask, so a plain forward (the fast scorer) sees the positions generation
    sees. (RoPE is shift-invariant, so without them the difference is only rounding; with them it is none.)
    """
    batch = _encode(processor, list(prompts), images, max_length, "left")
    mask = batch["attention_mask"].long()
    batch["position_ids"] = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    return batch
