"""Qwen2.5-VL (Qwen/Qwen2.5-VL-*-Instruct): a ViT read in 14-px patches with window attention, whose 2 x 2
patch groups the `merger` (inside `visual`) projects into the language model's width, and Qwen2.5's language
model with multimodal rotary positions. MLLMU-Bench and PULSE define no prompt for it: a question is one user
turn in Qwen2.5-VL's own chat template (its default system turn, `<|im_start|>user ... <|im_end|>`, then the
assistant's turn), the face first in the turn as the template places an image; an answer ends on
`<|im_end|>`.

A face becomes (side / 28)^2 tokens, its side whatever Qwen's processor resizes it to. So that the number is
fixed per profile, a face is cropped to its centred square and resized to FACE_SIDE (448 px: 256 tokens,
inside every pixel range of the published processor)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
)
from transformers.processing_utils import ProcessorMixin

from repro.assets import ASSETS
from repro.errors import ReproError
from repro.model.families import qwen2_5_vl_processor
from repro.model.families.base import (
    FAMILIES,
    PAPER_BATCHES,
    ChatDialect,
    Family,
    Modules,
    PaperShape,
    built_context,
    seeded,
    square_crop,
)

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
IM_END = "<|im_end|>"
FACE_SIDE = 448
# Qwen2.5-VL's chat template (qwen2_5_vl_processor.CHAT_TEMPLATE): its default system turn, then the turns.
DIALECT = ChatDialect(image=IMAGE, end=IM_END,
                      prefix="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
                      user="<|im_start|>user\n{body}<|im_end|>\n", assistant="<|im_start|>assistant\n")


class Qwen2_5_VLImageProcessor(Qwen2_5_VLProcessor):
    """Qwen2_5_VLProcessor without its video processor: the kit shows no video, and transformers builds the
    video processor only where torchvision is installed. Images and text are processed by the parent's own
    code; a hub snapshot's files load as they are."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class Qwen2_5_VL(Family):
    name = "qwen2.5-vl"
    dialect = DIALECT
    # transformers 5's layout: model.visual (blocks, then merger: the projector), model.language_model, lm_head
    modules = Modules(language_model="language_model", projector="merger", vision="visual",
                      hub_prefixes=("lm_head.", "model.", "visual."))
    processor_class = "Qwen2_5_VLImageProcessor"
    micro = "qwen2.5-vl-micro"
    # Qwen/Qwen2.5-VL-7B-Instruct config.json: vision depth 32, hidden 1280, MLP 3420, 16 heads; Qwen2.5-7B
    # (28 layers, hidden 3584, MLP 18944, 28 heads, 4 key-value heads; vocabulary 152,064).
    shapes: ClassVar[dict[str, PaperShape]] = {"qwen2.5-vl-7b": PaperShape((
        "model.vision_hidden=1280", "model.vision_layers=32", "model.vision_heads=16",
        "model.text_hidden=3584", "model.text_layers=28", "model.text_heads=28", "model.text_intermediate=18944",
        *PAPER_BATCHES), vocab=152064, micro="qwen2.5-vl-micro")}
    # The 7B's: key-value heads a seventh of the heads, the vision MLP and its full-attention blocks.
    vision_intermediate_ratio = 3420 / 1280

    def build(self, cfg, processor, seed: int):
        if cfg.image_size != FACE_SIDE:
            raise ReproError(f"model.image_size {cfg.image_size}: the {self.name} family shows faces at {FACE_SIDE} px")
        if cfg.patch_size != processor.image_processor.patch_size:
            raise ReproError(f"the processor reads patches of {processor.image_processor.patch_size}, the profile's "
                             f"model.patch_size is {cfg.patch_size}")
        tokenizer = processor.tokenizer
        head_dim = cfg.text_hidden // cfg.text_heads
        # multimodal RoPE over (time, height, width): the 7B's 16/24/24 of its 64 frequencies, scaled to head_dim
        t = head_dim // 8
        mrope = [t, (head_dim // 2 - t) // 2, head_dim // 2 - t - (head_dim // 2 - t) // 2]
        text = Qwen2_5_VLTextConfig(
            vocab_size=cfg.vocab_size or len(tokenizer), hidden_size=cfg.text_hidden,
            intermediate_size=cfg.text_intermediate, num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads, num_key_value_heads=max(1, cfg.text_heads // 7),
            max_position_embeddings=built_context(cfg), pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.eos_token_id,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope})
        depth = cfg.vision_layers
        vision = Qwen2_5_VLVisionConfig(
            depth=depth, hidden_size=cfg.vision_hidden, num_heads=cfg.vision_heads,
            intermediate_size=round(cfg.vision_hidden * self.vision_intermediate_ratio),
            patch_size=cfg.patch_size, out_hidden_size=cfg.text_hidden,
            fullatt_block_indexes=[i for i in range(depth) if i % 8 == 7] or [depth - 1])
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                                  image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"))
        return seeded(lambda: Qwen2_5_VLForConditionalGeneration(config), seed, tokenizer, IM_END)

    def model_class(self):
        return Qwen2_5_VLForConditionalGeneration

    def load_processor(self, directory: Path):
        return Qwen2_5_VLImageProcessor.from_pretrained(str(directory))

    def image_tokens(self, config, processor) -> int:
        """A FACE_SIDE square: (side / (patch x merge))^2 merged patches."""
        merged = processor.image_processor.patch_size * processor.image_processor.merge_size
        return (FACE_SIDE // merged) ** 2

    def prepare_image(self, image: Image.Image) -> Image.Image:
        square = square_crop(image)
        if square.size == (FACE_SIDE, FACE_SIDE):
            return square
        return square.resize((FACE_SIDE, FACE_SIDE), Image.Resampling.BICUBIC)

    def explicit_positions(self) -> bool:
        return False  # multimodal RoPE: the model derives every position from the tokens and the mask


FAMILIES.add(Qwen2_5_VL.name, Qwen2_5_VL())
ASSETS.add("qwen2.5-vl", lambda out: qwen2_5_vl_processor.fetch(out, FACE_SIDE * FACE_SIDE))
