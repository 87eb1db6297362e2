"""LLaVA-1.5 (llava-hf/llava-1.5-*-hf): CLIP ViT-L/14-336, a two-layer MLP projector, Vicuna-1.5 (Llama-2).
The tiny profile is this architecture too, built from config with the kit's word-level tokenizer.

Its prompts are MLLMU-Bench's own for LLaVA (eval.py of github.com/YokeYao/MLLMU-Bench at commit b83832a),
to the character; MMBench's are LLaVA-1.5's (llava/eval/model_vqa_mmbench.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from repro.data.records import MCQ, MMBenchQuestion, OpenQuestion
from repro.errors import ReproError
from repro.model.families.base import (
    FAMILIES,
    GENERATION_INSTRUCTION,
    MCQ_INSTRUCTION,
    PAPER_BATCHES,
    Dialect,
    Family,
    Modules,
    PaperShape,
    built_context,
    fill_blank_body,
    mmbench_body,
    options_text,
    seeded,
)
from repro.registry import Registry

IMAGE_TOKEN = "<image>"
EOS = "</s>"
TURN_WORDS = ("USER", "ASSISTANT")  # the Vicuna turns' words: always in the tiny model's word vocabulary

# LLaVA-1.5's conversation template "vicuna_v1" (haotian-liu/LLaVA llava/conversation.py), which its MMBench
# evaluation uses (scripts/v1_5/eval/mmbench.sh: --conv-mode vicuna_v1): system prompt, then
# "USER: {message} ASSISTANT:" with " " as the separator.
VICUNA_V1_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's questions.")
MMBENCH_TEMPLATES: Registry[str] = Registry("MMBench template")
MMBENCH_TEMPLATES.add("plain", "USER: {body}\nASSISTANT:")  # the body alone, in MLLMU-Bench's turn format
MMBENCH_TEMPLATES.add("llava-v1", VICUNA_V1_SYSTEM + " USER: {body} ASSISTANT:")  # LLaVA-1.5's model_vqa_mmbench.py


def _user(with_image: bool) -> str:
    return f"USER: {IMAGE_TOKEN}\n" if with_image else "USER:\n"


@dataclass(frozen=True)
class VicunaDialect(Dialect):
    """MLLMU-Bench's LLaVA prompts: `USER: <image>\\n{question}\\n...ASSISTANT:`, answers ` {a}</s>`."""

    image: str = IMAGE_TOKEN
    end: str = EOS
    templates: tuple[str, ...] = MMBENCH_TEMPLATES.names()

    def demonstration(self, q: MCQ) -> str:
        """One answered question before the asked one (eval.py, evaluate_classification):
        `USER: <image>\\nQuestion: {q}\\nA: ..\\nD: ..\\nCorrect Answer: {letter}\\n` (text-only: `USER:\\n`)."""
        return f"{_user(q.modality == 'multimodal')}Question: {q.question}\n{options_text(q)}Correct Answer: {q.answer}\n"

    def mcq(self, q: MCQ, demonstrations: Sequence[MCQ] = ()) -> str:
        shown = "".join(self.demonstration(d) for d in demonstrations)
        return f"{shown}{_user(q.modality == 'multimodal')}{q.question}\n{options_text(q)}{MCQ_INSTRUCTION}\nASSISTANT:"

    def context(self, question: str, with_image: bool, demonstrations: Sequence[MCQ] = ()) -> str:
        shown = "".join(self.demonstration(d) for d in demonstrations)
        return f"{shown}{_user(with_image)}{question}\nASSISTANT:"

    def continuation(self, text: str) -> str:
        return f" {text}"

    def generation(self, q: OpenQuestion) -> str:
        """eval.py, evaluate_generation: the image prompt says "accurately" and ends in a space, the text
        prompt does neither (both as published)."""
        if q.modality == "multimodal":
            return f"USER: {IMAGE_TOKEN}\n{q.question}\n{GENERATION_INSTRUCTION.format(' accurately')}\nASSISTANT: "
        return f"USER: {q.question}\n{GENERATION_INSTRUCTION.format('')}\nASSISTANT:"

    def fill_blank(self, q: OpenQuestion) -> str:
        return f"{_user(q.modality == 'multimodal')}{fill_blank_body(q)}\nASSISTANT:"

    def mmbench(self, q: MMBenchQuestion, template: str) -> str:
        return MMBENCH_TEMPLATES.get(template).format(body=mmbench_body(q, IMAGE_TOKEN))

    def open_answer(self, generated: str) -> str:
        """eval.py's answer: what follows the prompt's `ASSISTANT:` up to any `ASSISTANT:` the model writes
        itself, stripped (`generated` is the new text only; the peer splits the whole decoded sequence)."""
        return generated.split("ASSISTANT:")[0].strip()


def clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
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


def clip_vision_config(cfg, image_size: int | None = None) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        intermediate_size=4 * cfg.vision_hidden,
        image_size=image_size or cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=3,
        projection_dim=cfg.vision_hidden,
    )


def llama_text_config(cfg, tokenizer, context: int) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=cfg.text_hidden,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_heads,
        intermediate_size=cfg.text_intermediate,
        vocab_size=cfg.vocab_size or len(tokenizer),
        max_position_embeddings=context,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def image_token_id(tokenizer, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or found == tokenizer.unk_token_id:
        raise ReproError(f"the tokenizer has no {token!r} token")
    return found


def check_patches(cfg, crop: int | None, patch: int) -> None:
    """The processor's image geometry against the profile's model.image_size / model.patch_size."""
    if cfg.image_size % cfg.patch_size:
        raise ReproError(f"model.image_size {cfg.image_size} is not a multiple of model.patch_size {cfg.patch_size}")
    if patch != cfg.patch_size or (crop is not None and crop != cfg.image_size):
        raise ReproError(f"the processor reads {crop}-px images in patches of {patch}, the profile's "
                         f"model.image_size / model.patch_size are {cfg.image_size} / {cfg.patch_size}")


def _crop_size(processor) -> int | None:
    crop = getattr(processor.image_processor, "crop_size", None) or {}
    return crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)


class Llava(Family):
    name = "llava"
    dialect = VicunaDialect()
    # transformers 5's layout: model.vision_tower, model.multi_modal_projector, model.language_model, lm_head
    modules = Modules(language_model="language_model", projector="multi_modal_projector", vision="vision_tower",
                      hub_prefixes=("language_model.", "multi_modal_projector.", "vision_tower."))
    processor_class = "LlavaProcessor"
    micro = "llava-1.5-micro"
    # llava-hf/llava-1.5-13b-hf's config.json: CLIP ViT-L/14 at 336 px (24 layers, hidden 1024, 576 image
    # tokens) and Llama-2-13B (40 layers, hidden 5120, MLP 13824, 40 heads, vocabulary 32064). Batch sizes
    # and scoring: the llava-1.5-13b profile's.
    shapes: ClassVar[dict[str, PaperShape]] = {"llava-1.5-13b": PaperShape((
        "model.source=tiny", "model.vision_hidden=1024", "model.vision_layers=24", "model.vision_heads=16",
        "model.image_size=336", "model.patch_size=14", "model.text_hidden=5120", "model.text_layers=40",
        "model.text_heads=40", "model.text_intermediate=13824", "model.max_length=768",
        "pretrain.steps=0", *PAPER_BATCHES, "eval.scoring=letter"), vocab=32064)}

    def word_processor(self, cfg, tokenizer) -> LlavaProcessor:
        return LlavaProcessor(
            image_processor=clip_image_processor(cfg.image_size),
            tokenizer=tokenizer,
            patch_size=cfg.patch_size,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,  # CLIP's CLS, which "default" then drops: (size/patch)^2 tokens
            chat_template=None,
            image_token=IMAGE_TOKEN,
        )

    def build(self, cfg, processor, seed: int):
        check_patches(cfg, _crop_size(processor), processor.patch_size)
        tokenizer = processor.tokenizer
        if cfg.vocab_size and cfg.vocab_size < len(tokenizer):
            raise ReproError(f"model.vocab_size {cfg.vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens")
        config = LlavaConfig(
            vision_config=clip_vision_config(cfg),
            text_config=llama_text_config(cfg, tokenizer, built_context(cfg)),
            image_token_index=image_token_id(tokenizer, IMAGE_TOKEN),
            image_seq_length=(cfg.image_size // cfg.patch_size) ** 2,
            vision_feature_layer=-2,  # LLaVA-1.5
            vision_feature_select_strategy="default",  # drops CLS
            projector_hidden_act="gelu",
            tie_word_embeddings=False,
        )
        return seeded(lambda: LlavaForConditionalGeneration(config), seed, tokenizer)

    def model_class(self):
        return LlavaForConditionalGeneration

    def load_processor(self, directory: Path):
        return LlavaProcessor.from_pretrained(str(directory))

    def image_tokens(self, config, processor) -> int:
        """(image_size / patch)^2, +1 only for the "full" strategy (CLS)."""
        vision = config.vision_config
        count = (vision.image_size // vision.patch_size) ** 2
        return count + 1 if config.vision_feature_select_strategy == "full" else count


FAMILIES.add(Llava.name, Llava())
