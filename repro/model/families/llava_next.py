"""LLaVA-NeXT (LLaVA-1.6; llava-hf/llava-v1.6-vicuna-13b-hf): LLaVA-1.5's CLIP ViT-L/14-336, projector and
Vicuna-1.5, with "anyres" images: a face is seen whole at 336 px and as a grid of 336-px tiles, each tile row
ended by a learned newline feature. It reads LLaVA-1.5's prompts (the same Vicuna turns; MLLMU-Bench's LLaVA
prompts, to the character) and LLaMA's tokenizer.

How many tokens a face becomes follows its size and shape (the grid that fits it best). So that the number
is fixed per profile, a face is cropped to its centred square and resized to the largest square grid
(672 px for the published grids: 2 x 2 tiles, 576 + 48 x 48 + 48 = 2,928 tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from PIL import Image
from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

from repro.errors import ReproError
from repro.model.families.base import (
    FAMILIES,
    PAPER_BATCHES,
    Family,
    Modules,
    PaperShape,
    built_context,
    seeded,
    square_crop,
)
from repro.model.families.llava import (
    IMAGE_TOKEN,
    VicunaDialect,
    check_patches,
    clip_vision_config,
    image_token_id,
    llama_text_config,
)


def largest_square(pinpoints) -> int:
    """The side of the largest square grid among the processor's (or config's) image_grid_pinpoints."""
    sides = [h for h, w in pinpoints if h == w]
    if not sides:
        raise ReproError(f"image_grid_pinpoints {pinpoints} hold no square grid for a face")
    return max(sides)


class LlavaNext(Family):
    name = "llava-next"
    dialect = VicunaDialect()
    # transformers 5's layout: model.vision_tower, model.multi_modal_projector, model.image_newline (a
    # parameter: frozen, as the kit freezes everything of the image side but the projector),
    # model.language_model, lm_head
    modules = Modules(language_model="language_model", projector="multi_modal_projector", vision="vision_tower",
                      hub_prefixes=("image_newline", "language_model.", "multi_modal_projector.", "vision_tower."))
    processor_class = "LlavaNextProcessor"
    micro = "llava-next-micro"
    # llava-hf/llava-v1.6-vicuna-13b-hf: LLaVA-1.5-13B's CLIP and Vicuna-13B (vocabulary 32064); a face of
    # 2,928 tokens, so a training example needs model.max_length 3072.
    shapes: ClassVar[dict[str, PaperShape]] = {"llava-next-13b": PaperShape((
        "model.vision_hidden=1024", "model.vision_layers=24", "model.vision_heads=16",
        "model.text_hidden=5120", "model.text_layers=40", "model.text_heads=40", "model.text_intermediate=13824",
        *PAPER_BATCHES), vocab=32064, micro="llava-next-micro")}
    face_side = 672  # the face's side before the processor: the largest square of the published grids

    def build(self, cfg, processor, seed: int):
        check_patches(cfg, processor.image_processor.crop_size.get("height")
                      if isinstance(processor.image_processor.crop_size, dict)
                      else processor.image_processor.crop_size.height, processor.patch_size)
        tokenizer = processor.tokenizer
        pinpoints = processor.image_processor.image_grid_pinpoints
        if largest_square(pinpoints) != self.face_side:
            raise ReproError(f"the processor's largest square grid is {largest_square(pinpoints)} px; the "
                             f"{self.name} family sizes faces for {self.face_side}")
        config = LlavaNextConfig(
            vision_config=clip_vision_config(cfg),
            text_config=llama_text_config(cfg, tokenizer, built_context(cfg)),
            image_token_index=image_token_id(tokenizer, IMAGE_TOKEN),
            image_grid_pinpoints=pinpoints,
            image_seq_length=(cfg.image_size // cfg.patch_size) ** 2,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
            tie_word_embeddings=False,
        )
        return seeded(lambda: LlavaNextForConditionalGeneration(config), seed, tokenizer)

    def model_class(self):
        return LlavaNextForConditionalGeneration

    def load_processor(self, directory: Path):
        return LlavaNextProcessor.from_pretrained(str(directory))

    def image_tokens(self, config, processor) -> int:
        """A square face of `face_side`: the whole image at the tile size (CLS dropped), then the grid's
        patches with one newline feature a row (transformers' LlavaNextProcessor._get_number_of_features)."""
        vision = config.vision_config
        per_side = vision.image_size // vision.patch_size
        grid = per_side * (self.face_side // vision.image_size)
        base = per_side ** 2 + (1 if config.vision_feature_select_strategy == "full" else 0)
        return base + grid * grid + grid

    def prepare_image(self, image: Image.Image) -> Image.Image:
        square = square_crop(image)
        if square.size == (self.face_side, self.face_side):
            return square
        return square.resize((self.face_side, self.face_side), Image.Resampling.BICUBIC)


FAMILIES.add(LlavaNext.name, LlavaNext())
