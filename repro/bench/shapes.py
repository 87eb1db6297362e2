"""Paper-scale shapes (`--shape`): a LLaVA built from config with random weights, so throughput and memory
at paper scale are measurable without downloading weights. Meant for CUDA; on CPU a shape runs only when
`--set model.*` overrides make it small."""

from __future__ import annotations

import torch

from repro.config import ModelConfig
from repro.errors import ReproError
from repro.model.factory import build_tiny_model, check_image_tokens, resolve_dtype
from repro.model.tokenizer import build_word_tokenizer

# llava-hf/llava-1.5-13b-hf's config.json: CLIP ViT-L/14 at 336 px (24 layers, hidden 1024, 576 image
# tokens) and Llama-2-13B (40 layers, hidden 5120, MLP 13824, 40 heads, vocabulary 32064). Batch sizes and
# scoring: the llava-1.5-13b profile's. Applied before the user's --set, which may override any of them.
SHAPES: dict[str, dict] = {
    "llava-1.5-13b": {
        "overrides": (
            "model.source=tiny", "model.vision_hidden=1024", "model.vision_layers=24", "model.vision_heads=16",
            "model.image_size=336", "model.patch_size=14", "model.text_hidden=5120", "model.text_layers=40",
            "model.text_heads=40", "model.text_intermediate=13824", "model.max_length=768",
            "pretrain.steps=0", "finetune.batch_size=4", "finetune.grad_accum=1", "unlearn.batch_size=4",
            "unlearn.grad_accum=1", "eval.batch_size=16", "eval.scoring=letter",
        ),
        "vocab": 32064,
    },
}
CPU_MAX_PARAMS = 500_000_000  # about 2 GB of fp32 weights: beyond this a CPU run is not a measurement


def shape_overrides(shape: str | None) -> list[str]:
    if shape is None:
        return []
    if shape not in SHAPES:
        raise ReproError(f"unknown shape {shape!r} (known: {', '.join(sorted(SHAPES))})")
    return list(SHAPES[shape]["overrides"])


def estimate_params(m: ModelConfig, vocab: int) -> int:
    """Parameters of a LLaVA of this shape (weights only, biases and norms left out)."""
    hv, h, i = m.vision_hidden, m.text_hidden, m.text_intermediate
    vision = m.vision_layers * 12 * hv * hv + 3 * m.patch_size ** 2 * hv
    text = m.text_layers * (4 * h * h + 3 * h * i) + 2 * vocab * h
    return vision + hv * h + h * h + text


def check_fits(m: ModelConfig, vocab: int, device: torch.device, shape: str) -> None:
    n = estimate_params(m, vocab)
    if device.type != "cuda" and n > CPU_MAX_PARAMS:
        raise ReproError(
            f"--shape {shape} builds a model of about {n / 1e9:.1f}B parameters ({4 * n / 1e9:.0f} GB in "
            f"fp32): it is meant for CUDA, and no CUDA device is available here. On CPU, make it small with "
            f"--set overrides (e.g. --set model.text_layers=1 --set model.text_hidden=64 "
            f"--set model.text_intermediate=128 --set model.text_heads=4 --set model.vision_layers=1 "
            f"--set model.vision_hidden=32 --set model.vision_heads=4), at most {CPU_MAX_PARAMS / 1e6:.0f}M.")


def build_shaped_model(m: ModelConfig, texts: list[str], shape: str, seed: int, device: torch.device):
    """The shape's model with random weights, built directly on `device` in the profile's dtype."""
    vocab = SHAPES[shape]["vocab"]
    check_fits(m, vocab, device, shape)
    tokenizer = build_word_tokenizer(texts)
    # Filler words up to the shape's vocabulary: its LM head does the real model's FLOPs, and a random
    # model's greedy first token decodes to a word (as LLaVA's "A" does), so the letter scorer takes its
    # one-forward path instead of falling back to generation on undecodable ids.
    fillers = vocab - len(tokenizer)
    if fillers > 0:
        tokenizer = build_word_tokenizer([*texts, " ".join(f"filler{i:05d}" for i in range(fillers))])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(resolve_dtype(m.dtype, device))
    try:
        with torch.device(device):
            model, processor = build_tiny_model(m, tokenizer, seed)
            if vocab > model.config.text_config.vocab_size:  # the shape's vocabulary: its LM head's FLOPs
                model.resize_token_embeddings(vocab, mean_resizing=False)
    finally:
        torch.set_default_dtype(previous)
    check_image_tokens(model, processor)
    return model.eval(), processor
