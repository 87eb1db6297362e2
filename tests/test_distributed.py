"""Two processes over gloo on the CPU, launched as a user launches them (`accelerate launch --multi_gpu
--num_processes 2 -m repro run ...`), against the same commands in one process.

- Evaluation is exactly the single-process one: the same model (the pre-trained base, read from the shared
  cache) gives the same predictions, record for record, because the scorer's batches are formed as in one
  process and only dealt out to the ranks (repro/eval/scoring.py).
- Training is within a tolerance, not exact: each rank computes the token-mean loss of its half of every
  batch and the halves are averaged by their share of examples (not of answer tokens), the all-reduce sums
  in another order than one backward pass, and LoRA dropout draws its masks per rank. So the fine-tuned
  weights differ by a little, and an accuracy on 50 questions may move by a few answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from small_model import MICRO

from repro.experiments.results import IDENTITY, read_results

ACCURACY_TOLERANCE = 10.0  # points: 5 of 50 questions (see the module docstring for why not exact)
# Relative distance of the two fine-tuned models' changes from the base (measured 0.25 on the micro profile:
# a handful of AdamW steps, whose first updates are nearly lr * sign(gradient), so any coordinate with a
# near-zero gradient may move either way; dropout masks differ per rank). The exact check of the gradient
# reduction itself is test_optimise_two_processes_equals_one below.
WEIGHT_TOLERANCE = 0.5


def _command(experiment: str, out: Path, processes: int) -> list[str]:
    launch = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu",
              "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "--main_process_port", "0"] if processes > 1 else [sys.executable]
    args = launch + ["-m", "repro", "run", experiment, "--method", "ga", "--out", str(out),
                     "--units", str(out / "units")]
    for override in MICRO:
        args += ["--set", override]
    return args


def _run(experiment: str, out: Path, processes: int, cache: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    # One thread per process on both sides, so a forward pass computes the same bits in either run.
    env.update(PULSE_CACHE=str(cache), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(_command(experiment, out, processes), env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    cache = root / "cache"  # shared: the two-process run reads the base model the first run pre-trained
    one, two = root / "one", root / "two"
    for experiment in ("pretrained", "finetuned"):
        _run(experiment, one, 1, cache)
    for experiment in ("pretrained", "finetuned"):
        _run(experiment, two, 2, cache)
    return one, two


def _by_identity(run: Path) -> dict:
    return {tuple(r[f] for f in IDENTITY): r for r in read_results(run / "results.jsonl")}


@pytest.mark.slow
def test_evaluation_of_one_model_is_exactly_the_single_process_one(runs):
    one, two = runs
    a, b = _by_identity(one), _by_identity(two)
    base = [k for k, r in a.items() if r["experiment"] == "pretrained" and r["step"] == 0]
    assert base, "no pre-unlearning records of the pre-trained experiment"
    for k in base:  # the base model (same weights, from the cache): every accuracy, exactly
        assert {f: b[k][f] for f in ("accuracy", "n", "model")} == {f: a[k][f] for f in ("accuracy", "n", "model")}
    # the celebrity selection scores every celebrity with the base model: the same scores, exactly
    sa = json.loads((one / "manifest.json").read_text())["celebrities"]
    sb = json.loads((two / "manifest.json").read_text())["celebrities"]
    assert sa == sb
    # and the kept prediction units of that model (celebrities, people, MMBench) are byte-identical
    units = sorted(p.name for p in (one / "units").glob("eval-*.json"))
    same = [n for n in units if (two / "units" / n).exists()
            and (one / "units" / n).read_text() == (two / "units" / n).read_text()]
    assert len(same) >= 3, same


@pytest.mark.slow
def test_training_is_within_tolerance_of_the_single_process_one(runs):
    one, two = runs
    a, b = _by_identity(one), _by_identity(two)
    assert a.keys() == b.keys()  # every cell recorded once, by rank 0 only
    for k in a:
        assert abs(a[k]["accuracy"] - b[k]["accuracy"]) <= ACCURACY_TOLERANCE, (k, a[k], b[k])
    # the fine-tuned model (a LoRA fine-tune, merged) is kept under the same key in both runs
    [ft] = [p.name for p in (one / "units").glob("model-*.safetensors")]
    wa, wb = load_file(str(one / "units" / ft)), load_file(str(two / "units" / ft))
    base = next(r for r in a.values() if r["experiment"] == "pretrained" and r["step"] == 0)["model"]
    wbase = _base_weights(one.parent / "cache", base)
    changed = [n for n in wa if n in wbase and not torch.equal(wa[n], wbase[n])]
    assert changed, "fine-tuning changed no weight"
    delta = torch.cat([(wa[n] - wbase[n]).flatten().float() for n in changed])
    gap = torch.cat([(wb[n] - wa[n]).flatten().float() for n in changed])
    assert (gap.norm() / delta.norm()).item() <= WEIGHT_TOLERANCE, (gap.norm().item(), delta.norm().item())


def _base_weights(cache: Path, base_key: str) -> dict:
    from repro.environment import numeric_tag
    from repro.model.factory import load_model

    model, _ = load_model(str(cache / "models" / f"base-{base_key}-{numeric_tag()}"), "auto", torch.device("cpu"))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_only_rank_zero_writes_artefacts(runs):
    _, two = runs
    lines = (two / "results.jsonl").read_text().splitlines()
    identities = [tuple(json.loads(x)[f] for f in IDENTITY) for x in lines]
    assert len(identities) == len(set(identities)), "a record was written twice (by two ranks)"
    env = json.loads((two / "environment.json").read_text())
    assert env["processes"] == 2 and env["backend"] == "gloo"
    leftovers = [p.name for p in two.rglob("*") if ".tmp" in p.name]
    assert not leftovers


def test_a_single_process_takes_no_distributed_branch(monkeypatch):
    """Alone, the kit never imports accelerate nor starts a process group: its code is the
    single-process code as it was (results.jsonl byte-identical; the golden files depend on it)."""
    import repro.distributed as d

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(d, "_INITIALISED", False)
    monkeypatch.setattr(d, "_CURRENT", None)
    assert d.current() is None and d.is_main() and d.rank0_decides("x") == "x"
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())


OPTIMISE_SCRIPT = r"""
import json, sys
import torch
from repro.train.loop import optimise
from repro import distributed

def run(grad_accum, batch_size):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    xs = torch.randn(29, 3)
    ys = xs @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    data = list(range(29))
    batches = [data[i:i + batch_size] for i in range(0, 29, batch_size)] * 2
    steps = len(batches) // grad_accum
    loss = lambda b: ((model(xs[b]).squeeze(-1) - ys[b]) ** 2).mean()  # a per-example mean
    opt_losses = optimise(list(model.parameters()), iter(batches), steps, loss, 0.05, grad_accum=grad_accum)
    return [p.detach().flatten().tolist() for p in model.parameters()], opt_losses

out = {f"{a}x{b}": run(a, b) for a, b in ((1, 5), (2, 4), (3, 3))}
if distributed.is_main():
    json.dump(out, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_optimise_two_processes_equals_one(tmp_path):
    """The gradient reduction itself, on a loss that is a mean over examples and has no dropout: two
    processes give one process's weights and losses up to float summation order, both when the
    process count divides grad_accum (whole micro-batches per rank) and when it does not (each batch
    split, uneven slices weighted by their share, a last batch of 4 examples)."""
    script = tmp_path / "opt.py"
    script.write_text(OPTIMISE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(Path(__file__).parent.parent))
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.json")], env=env, check=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(tmp_path / "two.json")], env=env, check=True, capture_output=True)
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    for case in one:
        (w1, l1), (w2, l2) = one[case], two[case]
        assert [x for p in w2 for x in p] == pytest.approx([x for p in w1 for x in p], abs=1e-5), case
        assert l2 == pytest.approx(l1, rel=1e-5), case


def test_split_gives_every_example_to_one_rank_and_weights_by_share():
    from repro.distributed import Dist

    ranks = [Dist(r, 3, r, torch.device("cpu"), "gloo") for r in range(3)]
    batch = list(range(7))
    parts = [d.split(batch) for d in ranks]
    assert [x for p, _ in parts for x in p] == batch
    assert sum(s for _, s in parts) == pytest.approx(1.0)
    assert [d.split([0])[0] for d in ranks] == [None, None, [0]]
    # a (forget, retain) pair: the retain list is sliced too, or given whole where the slice is empty
    assert ranks[0].split(([1, 2, 3], [9])) == (([1], [9]), pytest.approx(1 / 3))
