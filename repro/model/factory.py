"""Model + processor factory: a model built from config with random weights, or a checkpoint loaded from
the hub or a local mirror, of the profile's model family (repro/model/families/): every later stage runs
the same code whatever the family (docs/design.md, "Profiles", "Model families")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from repro.atomic import temporary_dir
from repro.config import ModelConfig
from repro.errors import ReproError
from repro.model.families import family_named, family_of_processor
from repro.model.image_features import with_cached_images


def build_tiny_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0):
    """A model of the profile's family with random weights from `seed`, reading with the kit's word-level
    `tokenizer` (the tiny profile: a LLaVA-architecture model, CLIP vision tower + Llama LM)."""
    return build_model(cfg, tiny_processor(cfg, tokenizer), seed)


def tiny_processor(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase):
    """The processor of a model built from config with the kit's own tokenizer."""
    return with_cached_images(family_named(cfg.family).word_processor(cfg, tokenizer))


def load_processor(directory: Path, family: str = "llava"):
    """The family's processor from a directory laid out as a hub snapshot (`pulse-repro assets fetch` writes one)."""
    fam = family_named(family)
    try:
        return with_cached_images(fam.load_processor(directory))
    except (OSError, ValueError) as exc:
        raise ReproError(f"processor {directory}: cannot load a {fam.name} processor ({exc})") from exc


def build_model(cfg: ModelConfig, processor, seed: int = 0):
    """(model, processor): the family's architecture shrunk to `cfg`'s shape, random weights from `seed`, for
    `processor` (its tokenizer sets the vocabulary unless `cfg.vocab_size` is larger, as LLaVA-1.5 pads
    32,002 tokens to 32,064)."""
    fam = family_named(cfg.family)
    if family_of_processor(processor) is not fam:
        raise ReproError(f"model.family {cfg.family!r} does not read with a {type(processor).__name__}")
    tokenizer = processor.tokenizer
    if cfg.vocab_size and cfg.vocab_size < len(tokenizer):
        raise ReproError(f"model.vocab_size {cfg.vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens")
    return fam.build(cfg, processor, seed), processor


def resolve_dtype(dtype: str, device: torch.device | str) -> torch.dtype:
    """`auto`: bf16 on CUDA (the paper's 13B: 26 GB of weights), fp32 on CPU (bf16 matmuls are slow there)."""
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise ReproError(f"model.dtype {dtype!r}: expected auto or one of {', '.join(sorted(table))}")
    return table[dtype]


def check_model_source(source: str) -> None:
    """A model source is a local directory holding safetensors weights, or a hub id ('namespace/name');
    anything else is refused in one line before any download or load."""
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise ReproError(f"model source {source}: not a directory")
        if not any(path.glob("*.safetensors")):
            # use_safetensors=True would refuse pickled weights anyway; say why in one line.
            raise ReproError(
                f"model source {source}: no *.safetensors weights (pickled .bin/.pt are not loaded)"
            )
    elif source.startswith((".", "/", "~")) or source.count("/") != 1:
        # A hub id is exactly "namespace/name"; anything else was meant as a local directory.
        raise ReproError(f"model source {source}: no such directory (a hub id is 'namespace/name')")


def load_model(source: str, dtype: str = "auto", device: torch.device | str = "cpu", family: str = "llava"):
    """A checkpoint of `family` from a hub id or a local directory, safetensors only, no remote code."""
    check_model_source(source)
    torch_dtype = resolve_dtype(dtype, device)
    fam = family_named(family)
    try:
        # trust_remote_code is never passed: every family is in transformers, no repository code runs.
        model = fam.model_class().from_pretrained(source, dtype=torch_dtype, use_safetensors=True)
        processor = with_cached_images(fam.load_processor(Path(source) if Path(source).is_dir() else source))
    except (OSError, ValueError) as exc:
        raise ReproError(f"model source {source}: cannot load a {fam.name} checkpoint ({exc})") from exc
    return model.to(device).eval(), processor


def save_model(model, processor, out_dir: str | os.PathLike) -> Path:
    """Write model + processor to `out_dir` atomically: a crash never leaves a half-written checkpoint."""
    out = Path(out_dir)
    tmp = temporary_dir(out)  # same filesystem: rename is atomic
    try:
        model.save_pretrained(tmp)  # transformers 5.x writes safetensors only (no safe_serialization flag)
        processor.save_pretrained(tmp)
        pickled = [p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
        if pickled or not any(tmp.glob("*.safetensors")):
            raise ReproError(
                f"save_model: expected safetensors only, got {sorted(p.name for p in tmp.iterdir())}"
            )
        old = None
        if out.exists():  # os.replace cannot replace a non-empty directory: move the old one aside first
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def context_length(model) -> int:
    """The longest sequence the language model reads (LLaVA-1.5: 4,096): the limit of an evaluation prompt
    plus its generated answer. model.max_length is a training budget, not this."""
    return config_context(model.config)


def config_context(config) -> int:
    """`context_length` from a model's config alone (the pre-flight reads no weights)."""
    return int(config.get_text_config().max_position_embeddings)


def image_token_count(model, processor) -> int:
    """Image tokens one face becomes for this model and processor (fixed per profile)."""
    return family_of_processor(processor).image_tokens(model.config, processor)


def check_image_tokens(model, processor) -> int:
    """Fail before any forward pass if the processor expands a face into a number of tokens (or a token) the
    model does not expect; the model's own error comes later and less clearly."""
    fam = family_of_processor(processor)
    expected = fam.image_tokens(model.config, processor)
    image_id = model.config.image_token_id
    image = fam.prepare_image(Image.new("RGB", (336, 336), (128, 128, 128)))
    batch = processor(text=[fam.dialect.context("x", True)], images=[image], return_tensors="pt")
    got = int((batch["input_ids"] == image_id).sum())
    if got != expected:
        raise ReproError(f"processor expands {fam.dialect.image} into {got} tokens of id {image_id}, but the "
                         f"{fam.name} model expects {expected} ({type(processor).__name__} settings against the "
                         "model's vision config)")
    return got
