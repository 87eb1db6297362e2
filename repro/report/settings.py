"""Whether a run was measured as a golden file's runs were: the evaluation settings that change what a record
of the same name measures (the prompt, the scorer, the answer rule). A range recorded under other settings
says nothing of this run. (Settings that only add records, such as eval.benchmarks, are not among them.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from repro.config import EvalConfig, available_profiles, read_profile
from repro.run_profile import read_run_profile

MEASURING = ("scoring", "shots", "mmbench_template", "mmbench_answer", "generate_tokens")


def measuring(eval_table: dict[str, Any]) -> dict[str, Any]:
    """The measuring settings of a profile's eval table; a key it lacks has the kit's default."""
    defaults = dataclasses.asdict(EvalConfig())
    return {k: eval_table.get(k, defaults[k]) for k in MEASURING}


def recorded_settings(meta: dict[str, Any], profile: str | None) -> dict[str, Any] | None:
    """The settings a golden file's runs were measured with: its `eval` table (`golden record` writes one), else
    those of the shipped profile it is for; None when neither says (a file whose numbers hold for any run)."""
    if isinstance(meta.get("eval"), dict):
        return measuring(meta["eval"])
    if profile in available_profiles():
        return measuring(dataclasses.asdict(read_profile(profile).eval))
    return None


def run_eval(run_dir: Path) -> dict[str, Any] | None:
    """The eval table of a run's profile.json; None when the run has no profile.json (a malformed one: ReproError)."""
    if not (run_dir / "profile.json").exists():
        return None
    return read_run_profile(run_dir).eval


def settings_differences(run_dir: Path, meta: dict[str, Any], profile: str | None) -> list[str]:
    """`eval.KEY: X here, Y in the golden file` for each measuring setting the run changed; empty when the run
    has no profile.json or the file records no settings."""
    run = run_eval(run_dir)
    recorded = recorded_settings(meta, profile)
    if run is None or recorded is None:
        return []
    mine = measuring(run)
    return [f"eval.{k}: {mine[k]!r} here, {recorded[k]!r} there" for k in MEASURING if mine[k] != recorded[k]]
