"""The miniature world: MLLMU-Bench-shaped people and mini-MMBench, written in the real schemas."""

from __future__ import annotations

from pathlib import Path

from repro.config import WorldConfig
from repro.data.world_mmbench import write_mmbench_world
from repro.data.world_people import write_mllmu_world

MMBENCH_DEV = "MMBench/MMBench_DEV_EN.tsv"
MMBENCH_TRAIN = "MMBench/MMBench_TRAIN_EN.tsv"


def write_world(out: Path, cfg: WorldConfig, seed: int) -> None:
    """Write `out/MLLMU-Bench/` (laid out as the hub repository) and `out/MMBench/` (VLMEvalKit TSVs)."""
    write_mllmu_world(out / "MLLMU-Bench", seed, cfg.fictional, cfg.celebrities, cfg.image_size)
    write_mmbench_world(out / "MMBench", seed, cfg.mmbench_dev, cfg.mmbench_train, cfg.image_size,
                        cfg.long_hints)
