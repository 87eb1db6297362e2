"""Gemma-3 (google/gemma-3-*-it): a SigLIP vision tower at 896 px whose 4,096 patch features are pooled to 256
soft tokens a face, a projector (`multi_modal_projector`), and Gemma-3's language model over a 262,144-piece
vocabulary. MLLMU-Bench and PULSE define no prompt for it: a question is one user turn in Gemma-3's own chat
template (`<start_of_turn>user ... <end_of_turn>`, the model's turn after), the face first in the turn as the
template places an image; an answer ends on `<end_of_turn>`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3Processor,
    Gemma3TextConfig,
    SiglipVisionConfig,
)

from repro.assets import ASSETS
from repro.errors import ReproError
from repro.model.families import gemma3_processor
from repro.model.families.base import (
    FAMILIES,
    PAPER_BATCHES,
    ChatDialect,
    Family,
    Modules,
    PaperShape,
    built_context,
    seeded,
)

BOI, EOI, SOFT = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
END_OF_TURN = "<end_of_turn>"
IMAGE_SIZE = 896  # google/gemma-3-12b-it preprocessor_config.json: SigLIP at 896 x 896

# The chat template's turns (gemma3_processor.CHAT_TEMPLATE): the BOS is the tokenizer's own (added on
# encoding), so it is not written into the text.
DIALECT = ChatDialect(image=BOI, end=END_OF_TURN, prefix="",
                      user="<start_of_turn>user\n{body}<end_of_turn>\n", assistant="<start_of_turn>model\n")


class Gemma3(Family):
    name = "gemma-3"
    dialect = DIALECT
    # transformers 5's layout: model.vision_tower, model.multi_modal_projector, model.language_model, lm_head
    # (tied to the embeddings, as Gemma's is)
    modules = Modules(language_model="language_model", projector="multi_modal_projector", vision="vision_tower",
                      hub_prefixes=("language_model.", "multi_modal_projector.", "vision_tower."))
    processor_class = "Gemma3Processor"
    micro = "gemma-3-micro"
    # google/gemma-3-12b-it config.json: SigLIP so400m (27 layers, hidden 1152, MLP 4304, 16 heads) and a
    # 48-layer LM (hidden 3840, MLP 15360, 16 heads, 8 key-value heads, head 256; vocabulary 262,208).
    shapes: ClassVar[dict[str, PaperShape]] = {"gemma-3-12b": PaperShape((
        "model.vision_hidden=1152", "model.vision_layers=27", "model.vision_heads=16",
        "model.text_hidden=3840", "model.text_layers=48", "model.text_heads=16", "model.text_intermediate=15360",
        *PAPER_BATCHES), vocab=262208, micro="gemma-3-micro")}
    # google/gemma-3-12b-it: head_dim 256 for 16 heads of 3840; key-value heads half the heads; the 5:1
    # sliding-window pattern of its layers (window 1024).
    head_dim_at_scale = 256
    sliding_window = 1024

    def build(self, cfg, processor, seed: int):
        image = processor.image_processor.size
        side = image.get("height") if isinstance(image, dict) else image.height
        if side != cfg.image_size or cfg.image_size % cfg.patch_size:
            raise ReproError(f"the processor reads {side}-px images, the profile's model.image_size / "
                             f"model.patch_size are {cfg.image_size} / {cfg.patch_size}")
        tokenizer = processor.tokenizer
        head_dim = self.head_dim_at_scale if cfg.text_hidden >= 2048 else cfg.text_hidden // cfg.text_heads
        text = Gemma3TextConfig(
            vocab_size=cfg.vocab_size or len(tokenizer), hidden_size=cfg.text_hidden,
            intermediate_size=cfg.text_intermediate, num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads, num_key_value_heads=max(1, cfg.text_heads // 2), head_dim=head_dim,
            query_pre_attn_scalar=head_dim, max_position_embeddings=built_context(cfg),
            sliding_window=self.sliding_window, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        vision = SiglipVisionConfig(
            hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden,
            num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.vision_heads,
            image_size=cfg.image_size, patch_size=cfg.patch_size, vision_use_head=False)
        config = Gemma3Config(
            text_config=text, vision_config=vision, mm_tokens_per_image=processor.image_seq_length,
            boi_token_index=tokenizer.convert_tokens_to_ids(BOI), eoi_token_index=tokenizer.convert_tokens_to_ids(EOI),
            image_token_index=tokenizer.convert_tokens_to_ids(SOFT))
        return seeded(lambda: Gemma3ForConditionalGeneration(config), seed, tokenizer, END_OF_TURN)

    def model_class(self):
        return Gemma3ForConditionalGeneration

    def load_processor(self, directory: Path):
        return Gemma3Processor.from_pretrained(str(directory))

    def image_tokens(self, config, processor) -> int:
        return int(config.mm_tokens_per_image)

    def processor_images(self, per_row):
        """Gemma3Processor counts the images of each prompt: a list per prompt (empty for text-only ones)."""
        return per_row if any(per_row) else None

    def placeholder_extra(self, processor, image_tokens: int) -> int:
        """`<start_of_image>` becomes `\\n\\n<start_of_image>`, the soft tokens, `<end_of_image>\\n\\n`: the
        leading `\\n\\n` merges with the user turn's newline into one piece (the face opens the turn), so
        each face adds its soft tokens, `<end_of_image>` and the closing `\\n\\n`."""
        return image_tokens + 2


FAMILIES.add(Gemma3.name, Gemma3())
ASSETS.add("gemma-3", lambda out: gemma3_processor.fetch(out, IMAGE_SIZE))
