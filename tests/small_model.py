"""Small settings the tests share: a LLaVA shape big enough to exercise every code path, and MICRO, the
profile overrides that run the whole protocol in about a minute on a CPU."""

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

# `--set` overrides of the tiny profile: a miniature of the miniature, every experiment in about a minute.
MICRO = [
    "world.fictional=24", "world.celebrities=12", "world.mmbench_dev=12", "world.mmbench_train=12",
    "splits.fictional_pool=10", "splits.unlearn=5", "splits.shards=5",
    "splits.celebrity_keep=5", "splits.celebrity_unlearn=2", "splits.celebrity_retain=3", "splits.min_accuracy=0",
    "model.text_hidden=32", "model.text_intermediate=64", "model.text_layers=1", "model.vision_hidden=16",
    "model.vision_layers=1", "pretrain.steps=2", "pretrain.batch_size=8", "finetune.epochs=1",
    "eval.scoring=option-loglik",
]

# New tokens for the fast-vs-generate checks on the kit's word-level tokenizer (eval.generate_tokens is
# MLLMU-Bench's 50): it has no whitespace tokens, so the first-letter rule reads the first generated word
# either way, and both scorers under comparison generate the same number. 8 costs a sixth of 50.
WORD_LEVEL_TOKENS = 8
