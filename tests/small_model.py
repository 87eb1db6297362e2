"""The small LLaVA shape the unit tests build: big enough to exercise every code path, fast on a CPU."""

from repro.config import ModelConfig

SMALL_MODEL = ModelConfig(
    source="tiny",
    vision_hidden=32,
    vision_layers=2,
    vision_heads=4,
    image_size=32,
    patch_size=8,
    text_hidden=64,
    text_layers=2,
    text_heads=4,
    text_intermediate=128,
    max_length=96,
)
