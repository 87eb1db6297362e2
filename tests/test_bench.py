"""`pulse-repro bench` on a micro profile: every key of the JSON object, the kit's fast scorer agreeing
exactly with generate + parse, a positive speedup. No timing assertions."""

from __future__ import annotations

import json

import pytest
from small_model import MICRO

from repro.cli import main

# The bench on the shared MICRO world and model, with batches small enough for its few items.
BENCH_MICRO = [*MICRO, "finetune.batch_size=4", "unlearn.batch_size=4", "eval.batch_size=8"]
KEYS = {"eval_qps", "eval_qps_baseline", "eval_speedup", "eval_speedup_ceiling", "eval_ceiling", "agreement",
        "train_samples_per_s", "peak_mem_bytes", "ref_mem_overhead", "stage_seconds", "device", "method_notes"}


def _bench(capsys, *extra: str) -> dict:
    args = ["bench", "--json", "--items", "12", "--steps", "2"]
    for o in BENCH_MICRO:
        args += ["--set", o]
    assert main(args + list(extra)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
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
    # the scorer's batches, grouped by images shown and length, pad less than the same questions in their order
    assert 0 <= result["eval_padding_share"] < result["eval_padding_share_in_question_order"] < 1
    assert result["attention"] in ("sdpa", "eager")
    # every training stage's padding share is measured; batches never mix examples with and without a face
    assert set(result["train_padding_share"]) == set(result["train_samples_per_s"])
    assert all(0 <= v < 1 for v in result["train_padding_share"].values())
    assert result["stage_seconds"] == {"finetuned": 1.5, "total": 2.0}
    assert "memory" in result["method_notes"] and "baseline" in result["method_notes"]
    c = result["eval_ceiling"]
    # MICRO's decoder: 1 layer, hidden 32, MLP 64, as many key/value heads as heads: k and v (32 x 32) on
    # every prompt token, q, o (32 x 32), gate, up (64 x 32) and down (32 x 64) on the last one
    assert c["floor_flops"] == 2 * (2 * 32 * 32 * result["eval_prompt_tokens"]
                                    + (2 * 32 * 32 + 3 * 32 * 64) * result["items"])
    assert c["qps_ceiling"] == pytest.approx(result["items"] / c["floor_seconds"], rel=1e-2)
    assert result["eval_speedup_ceiling"] == pytest.approx(c["qps_ceiling"] / result["eval_qps_baseline"], rel=1e-2)
    # the kit's scorer does these products and more: its time cannot be below their floor
    assert 0 < c["kit_matmul_share"] < 1


@pytest.mark.parametrize("shape", ["llava-1.5-13b", "llava-next-13b", "qwen2.5-vl-7b", "gemma-3-12b"])
def test_bench_refuses_a_paper_shape_on_cpu(capsys, shape):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the refusal is for machines without CUDA")
    assert main(["bench", "--shape", shape, "--items", "4", "--steps", "2"]) == 2
    assert "meant for CUDA" in capsys.readouterr().err


def test_paper_grid_projection_counts_every_unit_of_all():
    from repro.bench.projection import grid, project
    from repro.choices import load_profile

    paper = load_profile("llava-1.5-13b")
    g = grid(paper, 11)
    # Counted by hand from the paper: 100 fictional people x 10 questions + 1164 MMBench dev questions
    # per fictional evaluation (vanilla, GA, GA+KLR, NPO; 15 chained models; GA on `llm`), 45 kept
    # celebrities x 10 + 1164 per pre-trained evaluation (base, 3 methods), 153 x 10 for the selection; the
    # base model's (the selection and its own evaluation) are made once whatever the number of seeds.
    assert g["eval_questions"] == (4 + 15 + 1) * 2164 + 3 * 1614
    assert g["base_eval_questions"] == 1530 + 1614
    assert g["finetune_examples"] == 4 * 100 * 11  # 4 epochs over the pool
    assert g["unlearn_examples_per_method"] == (50 + 20 + 50) * 11  # one epoch per request
    rates = {"finetune": 2.0, "ga": 4.0, "ga_klr": 2.0, "npo": 4.0}
    assert project([], rates, 0.0, "llava-1.5-13b") is None  # no evaluation rate, no projection
    assert project([], {**rates, "npo": None}, 10.0, "llava-1.5-13b") is None
    one = project([], rates, 10.0, "llava-1.5-13b")
    base_hours = (1530 + 1614) / 10.0 / 3600
    assert one["hours_three_seeds"] == pytest.approx(3 * one["hours"] - 2 * base_hours, abs=2e-3)


def test_the_ceiling_is_the_decoder_products_at_their_measured_rate():
    from small_model import SMALL_MODEL

    from repro.bench import ceiling
    from repro.model.factory import build_tiny_model
    from repro.model.tokenizer import build_word_tokenizer

    model, _ = build_tiny_model(SMALL_MODEL, build_word_tokenizer(["a b c"]))
    # SMALL_MODEL's decoder: 2 layers of q, k, v, o 64 x 64 and gate, up, down 64 x 128; the first layer
    # on all 1000 tokens, the last layer's k and v too, the rest of the last layer on 20 last tokens
    layer = 4 * 64 * 64 + 3 * 64 * 128
    flops = 2 * ((layer + 2 * 64 * 64) * 1000 + (layer - 2 * 64 * 64) * 20)
    b = ceiling.bound(model, prompt_tokens=1000, items=20, batch_size=8, kit_seconds=10.0, baseline_qps=4.0)
    assert b["floor_flops"] == flops
    assert b["matmul_rows"] == 400  # 50 tokens an item, 8 items a batch
    assert b["floor_seconds"] == pytest.approx(flops / b["matmul_flops_per_s"], rel=1e-3)
    assert b["speedup_ceiling"] == pytest.approx(20 / b["floor_seconds"] / 4.0, rel=1e-3)
    assert b["kit_matmul_share"] == pytest.approx(b["floor_seconds"] / 10.0, rel=1e-2)


SMALL_SHAPE = ["model.text_layers=1", "model.text_hidden=64", "model.text_intermediate=128", "model.text_heads=4",
               "model.vision_layers=1", "model.vision_hidden=32", "model.vision_heads=4",
               "finetune.batch_size=2", "unlearn.batch_size=2", "eval.batch_size=4"]


@pytest.mark.slow
def test_the_shape_path_fills_the_vocabulary_and_projects_the_paper_grid(capsys):
    args = ["bench", "--json", "--shape", "llava-1.5-13b", "--items", "6", "--steps", "2", "--checkpointing", "both"]
    for o in SMALL_SHAPE:
        args += ["--set", o]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    # every id of the shape's 32064-token vocabulary decodes to a word: no item needs generation
    assert result["agreement"] == 1.0
    grid = result["paper_grid_projection"]
    assert grid["hours"] < grid["hours_three_seeds"] < 3 * grid["hours"]  # the base model's evaluations once
    # the same grid with activation checkpointing, from the stages timed again with it on
    other = result["other_checkpointing"]
    assert other["gradient_checkpointing"] is True and set(other["train_samples_per_s"]) == {"finetune", "ga",
                                                                                            "ga_klr", "npo"}
    assert other["paper_grid_projection"]["hours"] > 0
    assert grid["hours"] > 0 and set(grid["seconds_by_stage"]) == {"finetune", "ga", "ga_klr", "npo", "modality",
                                                                   "evaluation", "base_evaluation"}


@pytest.mark.parametrize("shape", ["llava-next-13b", "qwen2.5-vl-7b", "gemma-3-12b"])
def test_a_familys_shape_builds_its_familys_model_at_the_shapes_widths(shape):
    import torch

    from repro.assets import asset_path
    from repro.bench.shapes import build_shaped_model, paper_shape, shape_overrides, shape_profile
    from repro.choices import load_profile
    from repro.experiments.base_model import processor_to_build
    from repro.experiments.data import RunData
    from repro.model.families import family_named

    name = shape_profile(shape, "tiny")
    small = ["model.vision_hidden=32", "model.vision_heads=2", "model.text_hidden=64", "model.text_heads=2",
             "model.text_intermediate=128"]  # the shape's depths (its layer counts), small widths
    profile = load_profile(name, [*shape_overrides(shape), *small, "model.vision_layers=1"])
    if not (asset_path(profile.model.processor) / "tokenizer.json").is_file():
        pytest.skip(f"no processor for {name}: run `pulse-repro assets fetch`")
    processor = processor_to_build(profile, RunData(profile))
    model, _ = build_shaped_model(profile.model, [], shape, 0, torch.device("cpu"), processor)
    family = family_named(profile.model.family)
    assert isinstance(model, family.model_class()) and family.micro == name == paper_shape(shape).micro
    text = model.config.get_text_config()
    assert text.num_hidden_layers == profile.model.text_layers == load_profile(name, shape_overrides(shape)).model.text_layers
    assert text.vocab_size == paper_shape(shape).vocab


@pytest.mark.slow
def test_a_familys_shape_is_built_on_its_micro_profile_and_projects_its_own_paper_grid(capsys):
    shape = "qwen2.5-vl-7b"  # one family's bench end to end (the others' shapes are built above)
    from repro.assets import asset_path
    from repro.bench.shapes import paper_shape
    from repro.choices import load_profile

    micro = load_profile(paper_shape(shape).micro)
    if not (asset_path(micro.model.processor) / "tokenizer.json").is_file():
        pytest.skip(f"no processor for {micro.name}: run `pulse-repro assets fetch`")
    args = ["bench", "--json", "--shape", shape, "--items", "4", "--steps", "2"]
    for o in SMALL_SHAPE:
        args += ["--set", o]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["profile"] == micro.name and result["agreement"] == 1.0
    grid = result["paper_grid_projection"]
    paper = load_profile(shape)
    assert grid["grid"]["finetune_examples"] > 0 and grid["hours"] > 0
    assert paper.model.family == micro.model.family


def test_the_bench_asks_its_questions_as_a_run_does_demonstrations_included():
    from repro.bench.workload import prepare
    from repro.choices import load_profile

    zero = prepare(load_profile("tiny", MICRO), 10_000)
    one = prepare(load_profile("tiny", [*MICRO, "eval.shots=1"]), 10_000)
    assert [it.uid for it in one.items] == [it.uid for it in zero.items]  # the same questions sampled
    people = [it for it in one.items if it.person]  # MMBench questions are asked zero-shot
    assert people and all(it.demo_images or it.image is None for it in people)  # every multimodal one shows a face first
    assert all("Correct Answer:" in it.prompt for it in people)  # ... and an answered question
    assert not any(it.demo_images or "Correct Answer:" in it.prompt for it in zero.items)


@pytest.mark.slow
def test_the_bench_scores_one_shot_prompts_under_the_runs_prompt_limit(capsys):
    # one-shot prompts are longer than model.max_length (a training budget); a run scores them under the
    # model's context less the answer, and so must the bench
    result = _bench(capsys, "--set", "eval.shots=1")
    assert result["agreement"] == 1.0
    assert 0 <= result["eval_padding_share"] < result["eval_padding_share_in_question_order"] < 1


def test_a_stage_trace_profiles_the_batches_after_the_first_and_writes_them(tmp_path):
    import torch

    from repro.bench.trace import TRACED_BATCHES, StageTrace

    tracer = StageTrace(tmp_path, "ga", 1, torch.device("cpu"))
    x = torch.randn(64, 64)
    for index in range(TRACED_BATCHES + 3):
        tracer.at_batch(index)
        x = (x @ x).tanh()  # the batch's work
    assert tracer.summary["batches"] == TRACED_BATCHES
    assert tracer.summary["wall_s"] > 0 and tracer.summary["device_busy_share"] is None  # no GPU here
    assert "aten::mm" in [name for name, _ in tracer.summary["top_ops_ms"]]
    assert (tmp_path / "ga.trace.json").stat().st_size > 0
    assert "aten::mm" in (tmp_path / "ga.ops.txt").read_text()
    # a stage that ends inside the traced batches still writes what it traced, once
    early = StageTrace(tmp_path / "early", "npo", 0, torch.device("cpu"))
    early.at_batch(0)
    early.finish()
    early.finish()
    assert early.summary["batches"] == 1 and (tmp_path / "early" / "npo.ops.txt").exists()


def test_trace_refuses_too_few_steps_to_leave_one_timed(tmp_path, capsys):
    from repro.bench.run import TRACE_MIN_STEPS

    args = ["bench", "--steps", str(TRACE_MIN_STEPS - 1), "--trace", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--trace needs --steps {TRACE_MIN_STEPS} or more" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_the_bench_traces_every_training_stage_outside_its_timed_steps(tmp_path, capsys):
    from repro.bench.trace import TRACED_BATCHES

    steps = 5
    result = _bench(capsys, "--steps", str(steps), "--trace", str(tmp_path))
    assert set(result["trace"]) == set(result["train_samples_per_s"])
    for stage, t in result["trace"].items():
        assert t["batches"] == TRACED_BATCHES and t["top_ops_ms"]
        assert (tmp_path / f"{stage}.trace.json").exists() and (tmp_path / f"{stage}.ops.txt").exists()
    # BENCH_MICRO trains with grad_accum 1: of the 5 steps the first is untimed, 2 traced, 2 timed
    assert all(v is not None and v > 0 for s, v in result["train_samples_per_s"].items())
    from repro.bench.output import to_tables

    tables = to_tables(result)  # what the bench prints without --json
    assert f"trace ga: {TRACED_BATCHES} batches in" in tables and str(tmp_path / "ga.trace.json") in tables


def test_traced_batches_are_left_out_of_the_timed_ones(tmp_path):
    import torch

    from repro.bench.trace import TRACED_BATCHES, StageTrace
    from repro.bench.training import Meter

    cpu = torch.device("cpu")
    plain, traced = Meter(1, cpu), Meter(1, cpu, StageTrace(tmp_path, "ga", 1, cpu))
    for meter in (plain, traced):
        for _ in range(8):
            meter.batch(4)
    assert plain.timed_batches() == 7 and plain.samples == 28
    assert traced.timed_batches() == 7 - TRACED_BATCHES and traced.samples == 4 * (7 - TRACED_BATCHES)
    assert traced.tracer.summary["batches"] == TRACED_BATCHES


def test_a_trace_covers_whole_steps_and_counts_the_gpus_time_once():
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from repro.bench.trace import time_spent, traced_batches

    assert [traced_batches(a) for a in (1, 2, 3, 4)] == [2, 2, 3, 4]  # the timed steps start on a step

    def ev(key, device, us, annotation=False):
        return SimpleNamespace(key=key, device_type=device, self_device_time_total=us, self_cpu_time_total=10,
                               is_user_annotation=annotation)

    # aten::mm launched the gemm kernel: its time shows on both, and on a user annotation's GPU-side range too
    averages = [ev("aten::mm", DeviceType.CPU, 6000), ev("sm90_gemm", DeviceType.CUDA, 6000),
                ev("aten::add", DeviceType.CPU, 1000), ev("add_kernel", DeviceType.CUDA, 1000),
                ev("Optimizer.step", DeviceType.CUDA, 7000, annotation=True)]
    busy, top = time_spent(averages, cuda=True)
    assert busy == 0.007
    assert top == [["aten::mm", 6.0], ["aten::add", 1.0]]  # operators, not their kernels again
    assert time_spent(averages, cuda=False)[0] is None
