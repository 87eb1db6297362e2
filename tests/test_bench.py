"""`pulse-repro bench` on a micro profile: every key of the JSON object, the kit's fast scorer agreeing
exactly with generate + parse, a positive speedup. No timing assertions."""

from __future__ import annotations

import json

import pytest
from small_model import MICRO

from repro.cli import main

# The bench on the shared MICRO world and model, with batches small enough for its few items.
BENCH_MICRO = [*MICRO, "finetune.batch_size=4", "unlearn.batch_size=4", "eval.batch_size=8"]
KEYS = {"eval_qps", "eval_qps_baseline", "eval_speedup", "agreement", "train_samples_per_s", "peak_mem_bytes",
        "ref_mem_overhead", "stage_seconds", "device", "method_notes"}


def _bench(capsys, *extra: str) -> dict:
    args = ["bench", "--json", "--items", "12", "--steps", "2"]
    for o in BENCH_MICRO:
        args += ["--set", o]
    assert main(args + list(extra)) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_json_has_every_key_and_the_scorers_agree(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stages.json").write_text(json.dumps({"finetuned": 1.5, "total": 2.0}))
    result = _bench(capsys, "--run-dir", str(run_dir))
    assert KEYS <= set(result)
    assert result["agreement"] == 1.0  # batched first-token scoring gives exactly generate + parse
    assert isinstance(result["eval_speedup"], float) and result["eval_speedup"] > 0
    assert result["eval_qps"] > 0 and result["eval_qps_baseline"] > 0
    assert set(result["train_samples_per_s"]) == {"finetune", "ga", "ga_klr", "npo", "ga_klr_deepcopy"}
    assert all(v is None or v > 0 for v in result["train_samples_per_s"].values())
    assert set(result["peak_mem_bytes"]) == {"ga", "ga_klr", "npo", "ga_klr_deepcopy"}
    assert all(v > 0 for v in result["peak_mem_bytes"].values())
    assert result["ref_mem_overhead"] > 0
    assert result["stage_seconds"] == {"finetuned": 1.5, "total": 2.0}
    assert "memory" in result["method_notes"] and "baseline" in result["method_notes"]


def test_bench_refuses_the_13b_shape_on_cpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the refusal is for machines without CUDA")
    assert main(["bench", "--shape", "llava-1.5-13b", "--items", "4", "--steps", "2"]) == 2
    assert "meant for CUDA" in capsys.readouterr().err
