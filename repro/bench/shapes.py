"""Paper-scale shapes (`--shape`): a model of a family's paper checkpoint's size built from config with random
weights, so throughput and memory at paper scale are measurable without downloading weights. A family's
shapes are declared in its file (repro/model/families/, `Family.shapes`); LLaVA-1.5's reads with the kit's
word-level tokenizer padded to LLaVA's vocabulary, the others with the family's real processor, on its micro
profile. Meant for CUDA; on CPU a shape runs only when `--set model.*` overrides make it small."""

from __future__ import annotations

import torch

from repro.config import ModelConfig
from repro.errors import ReproError
from repro.model.factory import build_model, build_tiny_model, check_image_tokens, resolve_dtype
from repro.model.families import FAMILIES, family_named
from repro.model.families.base import PaperShape
from repro.model.tokenizer import build_word_tokenizer

CPU_MAX_PARAMS = 500_000_000  # about 2 GB of fp32 weights: beyond this a CPU run is not a measurement


def shapes() -> dict[str, PaperShape]:
    """Every family's paper shapes, by the paper profile's name."""
    return {name: shape for fam in (family_named(f) for f in FAMILIES) for name, shape in fam.shapes.items()}


def paper_shape(name: str) -> PaperShape:
    known = shapes()
    if name not in known:
        raise ReproError(f"unknown shape {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def shape_overrides(shape: str | None) -> list[str]:
    """The shape's settings, applied before the user's --set, which may override any of them."""
    return [] if shape is None else list(paper_shape(shape).overrides)


def shape_profile(shape: str | None, profile: str) -> str:
    """The profile a shape is built on: its family's micro profile (its processor), or `profile` itself for a
    shape that reads with the kit's word-level tokenizer."""
    if shape is None or not paper_shape(shape).micro:
        return profile
    micro = paper_shape(shape).micro
    if profile not in ("tiny", micro):
        raise ReproError(f"--shape {shape} is built on the {micro} profile (its family's processor); leave --profile "
                         f"out or name {micro}")
    return micro


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


def build_shaped_model(m: ModelConfig, texts: list[str], shape: str, seed: int, device: torch.device,
                       processor=None):
    """The shape's model with random weights, built directly on `device` in the profile's dtype: with
    `processor` (the family's own), over its vocabulary; without, LLaVA over the kit's word tokenizer."""
    vocab = paper_shape(shape).vocab
    check_fits(m, vocab, device, shape)
    if processor is not None:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(resolve_dtype(m.dtype, device))
        try:
            with torch.device(device):
                model, processor = build_model(m, processor, seed)
        finally:
            torch.set_default_dtype(previous)
        check_image_tokens(model, processor)
        return model.eval(), processor
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
