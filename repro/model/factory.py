"""Model + processor factory: the tiny LLaVA built from config, or a LLaVA-1.5 checkpoint loaded from
the hub or a local mirror. Both give a `LlavaForConditionalGeneration` and a `LlavaProcessor`, so every
later stage runs the same code (docs/design.md, "Profiles")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerBase,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from repro.atomic import temporary_dir
from repro.config import ModelConfig
from repro.errors import ReproError
from repro.model.prompts import IMAGE_TOKEN


def _image_processor(image_size: int) -> CLIPImageProcessorPil:
    # The PIL backend explicitly: same pixels with or without torchvision installed.
    return CLIPImageProcessorPil(
        do_resize=True,
        size={"shortest_edge": image_size},
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_normalize=True,
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
        do_convert_rgb=True,
    )


def build_tiny_model(
    cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A LLaVA-architecture model (CLIP vision tower + Llama LM) with random weights from `seed`, reading
    with `tokenizer` and a CLIP image processor at `cfg.image_size`."""
    return build_model(cfg, tiny_processor(cfg, tokenizer), seed)


def tiny_processor(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> LlavaProcessor:
    """The processor of a model built from config with the kit's own tokenizer."""
    return LlavaProcessor(
        image_processor=_image_processor(cfg.image_size),
        tokenizer=tokenizer,
        patch_size=cfg.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS, which "default" then drops: (size/patch)^2 tokens
        chat_template=None,
        image_token=IMAGE_TOKEN,
    )


def load_processor(directory: Path) -> LlavaProcessor:
    """A LLaVA processor from a directory laid out as a hub snapshot (`pulse-repro assets fetch` writes one)."""
    try:
        return LlavaProcessor.from_pretrained(str(directory))
    except (OSError, ValueError) as exc:
        raise ReproError(f"processor {directory}: cannot load a LLaVA processor ({exc})") from exc


def _processor_agrees(cfg: ModelConfig, processor: LlavaProcessor) -> None:
    crop = getattr(processor.image_processor, "crop_size", None) or {}
    size = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
    if processor.patch_size != cfg.patch_size or (size is not None and size != cfg.image_size):
        raise ReproError(f"the processor reads {size}-px images in patches of {processor.patch_size}, the profile's "
                         f"model.image_size / model.patch_size are {cfg.image_size} / {cfg.patch_size}")


def build_model(cfg: ModelConfig, processor: LlavaProcessor, seed: int = 0) -> tuple[LlavaForConditionalGeneration,
                                                                                     LlavaProcessor]:
    """A LLaVA-architecture model (CLIP vision tower + Llama LM) with random weights from `seed`, for
    `processor` (its tokenizer sets the vocabulary unless `cfg.vocab_size` is larger, as LLaVA-1.5 pads
    32,002 tokens to 32,064)."""
    if cfg.image_size % cfg.patch_size:
        raise ReproError(
            f"model.image_size {cfg.image_size} is not a multiple of model.patch_size {cfg.patch_size}"
        )
    _processor_agrees(cfg, processor)
    tokenizer = processor.tokenizer
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_id is None or image_id == tokenizer.unk_token_id:
        raise ReproError(f"the tokenizer has no {IMAGE_TOKEN!r} token")
    if cfg.vocab_size and cfg.vocab_size < len(tokenizer):
        raise ReproError(f"model.vocab_size {cfg.vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens")
    n_image = (cfg.image_size // cfg.patch_size) ** 2
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        intermediate_size=4 * cfg.vision_hidden,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=3,
        projection_dim=cfg.vision_hidden,
    )
    text = LlamaConfig(
        hidden_size=cfg.text_hidden,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_heads,
        intermediate_size=cfg.text_intermediate,
        vocab_size=cfg.vocab_size or len(tokenizer),
        max_position_embeddings=built_context(cfg),
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        image_seq_length=n_image,
        vision_feature_layer=-2,  # LLaVA-1.5
        vision_feature_select_strategy="default",  # drops CLS
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    # fork_rng: the init is a function of `seed` alone, and the caller's RNG stream is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval(), processor


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


def load_model(
    source: str, dtype: str = "auto", device: torch.device | str = "cpu"
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A LLaVA checkpoint from a hub id or a local directory, safetensors only, no remote code."""
    check_model_source(source)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        # trust_remote_code is never passed: LLaVA is in transformers, no repository code runs.
        model = LlavaForConditionalGeneration.from_pretrained(source, dtype=torch_dtype, use_safetensors=True)
        processor = LlavaProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ReproError(f"model source {source}: cannot load a LLaVA checkpoint ({exc})") from exc
    return model.to(device).eval(), processor


def save_model(
    model: LlavaForConditionalGeneration, processor: LlavaProcessor, out_dir: str | os.PathLike
) -> Path:
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


def built_context(cfg: ModelConfig) -> int:
    """The context of a model built from config: model.context, else room for model.max_length."""
    return cfg.context or max(cfg.max_length, 128)


def context_length(model) -> int:
    """The longest sequence the language model reads (LLaVA-1.5: 4,096): the limit of an evaluation prompt
    plus its generated answer. model.max_length is a training budget, not this."""
    return int(model.config.text_config.max_position_embeddings)


def image_token_count(model) -> int:
    """Image tokens per image the model expects: (image_size / patch)^2, +1 only for the "full" strategy (CLS)."""
    cfg = model.config
    vision = cfg.vision_config
    count = (vision.image_size // vision.patch_size) ** 2
    if cfg.vision_feature_select_strategy == "full":
        count += 1
    return count


def check_image_tokens(model, processor: LlavaProcessor) -> int:
    """Fail before any forward pass if the processor expands <image> into a number of tokens (or a token)
    the model does not expect; LLaVA's own error comes later and less clearly."""
    expected = image_token_count(model)
    image_id = model.config.image_token_id
    size = model.config.vision_config.image_size
    image = Image.new("RGB", (size, size), (128, 128, 128))
    batch = processor(text=[f"USER: {IMAGE_TOKEN}\nx\nASSISTANT:"], images=[image], return_tensors="pt")
    got = int((batch["input_ids"] == image_id).sum())
    if got != expected:
        raise ReproError(
            f"processor expands {IMAGE_TOKEN} into {got} tokens of id {image_id}, but the model expects "
            f"{expected} (vision image_size {size}, patch {model.config.vision_config.patch_size}, "
            f"strategy {model.config.vision_feature_select_strategy!r}); processor patch_size "
            f"{processor.patch_size}, image token id {processor.image_token_id}"
        )
    return got
