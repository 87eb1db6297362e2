"""The miniature world: MLLMU-Bench-shaped people and mini-MMBench, written in the real schemas."""

from __future__ import annotations

from pathlib import Path

from repro.atomic import output_dir
from repro.config import WorldConfig
from repro.data.world_mmbench import DEV_NAME, TRAIN_NAME, write_mmbench_world
from repro.data.world_people import write_mllmu_world

# The generator's edition: raised whenever it writes other content for the same settings and seed, so that a
# world cached by an earlier edition is not read as this one's (2: the generation and fill-in-the-blank
# questions in the phrasings the tiny model is trained on).
EDITION = 2
MMBENCH_DEV = f"MMBench/{DEV_NAME}"
MMBENCH_TRAIN = f"MMBench/{TRAIN_NAME}"


def write_world(out: Path, cfg: WorldConfig, seed: int) -> None:
    """Write `out/MLLMU-Bench/` (laid out as the hub repository) and `out/MMBench/` (VLMEvalKit TSVs)."""
    for part in ("MLLMU-Bench", "MMBench"):
        output_dir(Path(out) / part, "the miniature world")
    write_mllmu_world(out / "MLLMU-Bench", seed, cfg.fictional, cfg.celebrities, cfg.image_size)
    write_mmbench_world(out / "MMBench", seed, cfg.mmbench_dev, cfg.mmbench_train, cfg.image_size,
                        cfg.long_hints)
