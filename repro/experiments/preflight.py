"""`pulse-repro preflight`: what would stop a run, found in seconds before anything trains.

It reads the data and the processor (never the weights), encodes every prompt of every split the profile
will use (the evaluation questions, the fine-tuning and unlearning examples), and checks the token lengths
against their limits, the data against the paper's Table A, the GPU, its driver and memory, the free disk
and the weight cache. Each problem is one line that says what to change; `all` and `run` start with it and
do not start while there is one.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from repro.config import Profile
from repro.errors import ReproError
from repro.eval.items import Item, fill_blank_items, generation_items
from repro.eval.scoring import prompt_limit
from repro.experiments.store import default_units_dir
from repro.model.prompts import token_counts
from repro.train.examples import knowledge_examples

TABLE_A = {"fictional": 100, "celebrities scored": 153, "celebrities kept": 45}  # the paper's Table A
# The NVIDIA driver each CUDA build of torch needs at least (CUDA's release notes, Linux x86-64).
DRIVER_FOR_CUDA = {"13.0": 580, "12.9": 575, "12.8": 570, "12.6": 560, "12.4": 550, "12.1": 530, "11.8": 520}


@dataclass
class Preflight:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        out = self.lines + ([f"{len(self.problems)} problem(s); the run would not start:"] +
                            [f"- {p}" for p in self.problems] if self.problems else ["no problems found"])
        return "\n".join(out)


@dataclass(frozen=True)
class Encoded:
    """One thing the model will read: its name for a problem line, its text, whether it shows an image."""

    name: str
    text: str
    image: bool


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _eval_texts(items: Iterable[Item], dialect, scoring: str) -> list[Encoded]:
    """What the scorer feeds the model per item: the letter prompt, or every option after the context."""
    out = []
    for it in items:
        name = f"MMBench question {it.uid}" if not it.person else f"{it.person} question {it.uid.split('#')[-1]}"
        if scoring == "letter":
            out.append(Encoded(name, it.prompt, it.image is not None))
        else:
            out.extend(Encoded(f"{name} option {k}", it.context + dialect.answer(v), it.image is not None)
                       for k, v in it.options.items())
    return out


def _example_texts(people, cfg, dialect) -> list[Encoded]:
    """Every training (and forget) example, named by its person and question."""
    return [Encoded(f"{p.key} training example {ex.prompt.splitlines()[-2][:60]!r}", ex.prompt + ex.answer,
                    ex.image is not None)
            for p in people for ex in knowledge_examples([p], cfg, dialect)]


def _model_shape(profile: Profile, data) -> tuple[object, int, int, int | None]:
    """(processor, image tokens per image, context, parameter count) without loading any weights: a model
    built from config is built on the meta device (no memory), a checkpoint's config read alone."""
    from repro.model.factory import build_model, check_model_source, config_context, context_length
    from repro.model.families import family_named

    m = profile.model
    family = family_named(m.family)
    if m.source == "tiny":
        from repro.experiments.base_model import processor_to_build

        processor = processor_to_build(profile, data)
        with torch.device("meta"):
            model, _ = build_model(m, processor)
        return processor, family.image_tokens(model.config, processor), context_length(model), None
    from transformers import AutoConfig

    check_model_source(m.source)
    try:
        processor = family.load_processor(m.source)
        config = AutoConfig.from_pretrained(m.source)
    except (OSError, ValueError) as exc:
        raise ReproError(f"model.source {m.source!r}: cannot read its processor and config ({exc})") from exc
    model_class = family.model_class()
    if not isinstance(config, model_class.config_class):
        raise ReproError(f"model.source {m.source!r}: not a {family.name} checkpoint ({type(config).__name__}; "
                         f"model.family {m.family!r} reads {model_class.config_class.__name__})")
    with torch.device("meta"):
        params = sum(p.numel() for p in model_class(config).parameters())
    return processor, family.image_tokens(config, processor), config_context(config), params


def _lengths(pf: Preflight, processor, groups: dict[str, tuple[list[Encoded], int, str]], image_tokens: int,
             shots: int = 0) -> None:
    pf.lines.append(f"{'lengths':<10}{'what':<28}{'items':>7}{'max':>7}{'p99':>7}{'limit':>7}")
    for what, (texts, limit, why) in groups.items():
        if not texts:
            continue
        lengths = token_counts(processor, [t.text for t in texts], image_tokens)
        pf.lines.append(f"{'':<10}{what:<28}{len(texts):>7}{max(lengths):>7}{_percentile(lengths, 0.99):>7}"
                        f"{limit:>7}")
        over = [(n, t) for n, t in zip(lengths, texts) if n > limit]
        for n, t in over[:5]:
            pf.problems.append(f"{t.name}: {n} tokens, over {why} ({limit}); {_fix(what, n, shots)}")
        if len(over) > 5:
            pf.problems.append(f"... and {len(over) - 5} more {what} over {limit} tokens")


def _fix(what: str, n: int, shots: int = 0) -> str:
    if "example" in what:
        return f"raise model.max_length to at least {n} (training examples are never truncated)"
    if shots and what.startswith("people"):
        return (f"eval.shots = {shots} puts {shots} answered question(s), each with its face, before it: lower "
                "eval.shots, or use a longer-context model")
    return "the model's context cannot hold it: leave the question out of the data, or use a longer-context model"


# GPU memory a LoRA training step needs, as a multiple of the bf16 weights: 65.7 GB peak over 26.0 GB of
# weights measured for llava-1.5-13b at batch 4 x 768 tokens on an H100 (docs/performance.md); with
# activation checkpointing an estimate (one layer's activations at a time, the inputs of the others), not
# measured.
MEMORY_PER_WEIGHT = {False: 65.7 / 26.0, True: 1.2}


# A checkpoint above this many parameters is not trained on a CPU in any useful time (LLaVA-1.5-7B has 7.1e9;
# a micro checkpoint for testing the code path, a few million): kit choice.
CPU_PARAMS_LIMIT = 1e9


def _gpu(pf: Preflight, profile: Profile, params: int | None = None) -> None:
    if not torch.cuda.is_available():
        pf.lines.append(f"{'gpu':<10}none (CPU run)")
        if profile.model.source != "tiny" and (params is None or params > CPU_PARAMS_LIMIT):
            pf.problems.append(f"no CUDA GPU: {profile.name} loads {profile.model.source} and needs one "
                               "(docker run --gpus all ..., or a machine with an NVIDIA GPU)")
        return
    free, total = torch.cuda.mem_get_info()
    line = f"{'gpu':<10}{torch.cuda.get_device_name(0)}: {free / 2**30:.1f} of {total / 2**30:.1f} GiB free"
    driver = driver_version()
    need = DRIVER_FOR_CUDA.get(".".join((torch.version.cuda or "").split(".")[:2]))
    if driver is not None:
        line += f"; driver {driver}" + (f" (torch's CUDA {torch.version.cuda} needs >= {need})" if need else "")
        if need and int(driver.split(".")[0]) < need:
            pf.problems.append(f"NVIDIA driver {driver} is older than {need}, which torch's CUDA {torch.version.cuda} "
                               "needs: update the driver, or build the image for an older CUDA (docker/README.md)")
    if params is not None:
        ckpt = profile.model.gradient_checkpointing
        need = params * 2 * MEMORY_PER_WEIGHT[ckpt]
        line += f"; training needs about {need / 2**30:.0f} GiB" + (" (checkpointing)" if ckpt else "")
        if need > free:
            fix = ("--set model.gradient_checkpointing=true (about "
                   f"{params * 2 * MEMORY_PER_WEIGHT[True] / 2**30:.0f} GiB)" if not ckpt
                   else "a GPU with more memory: the bf16 weights alone take "
                   f"{params * 2 / 2**30:.0f} GiB")
            pf.problems.append(f"the GPU has {free / 2**30:.1f} GiB free, training {profile.model.source} needs "
                               f"about {need / 2**30:.0f} GiB: {fix}")
    pf.lines.append(line)


def driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def _disk_and_cache(pf: Preflight, profile: Profile, units: Path, params: int | None) -> None:
    # the store may not exist yet: the pre-flight writes nothing, so ask the nearest directory that does
    free = shutil.disk_usage(next(p for p in (units, *units.absolute().parents) if p.exists())).free
    line = f"{'disk':<10}{free / 1e9:.1f} GB free in the unit store {units}"
    if params is not None:
        need = params * 2 * 1.1  # the fine-tuned model in bf16, and its temporary file's headroom
        line += f"; the fine-tuned model needs about {need / 1e9:.1f} GB"
        if free < need:
            pf.problems.append(f"{units}: {free / 1e9:.1f} GB free, the fine-tuned model needs about "
                               f"{need / 1e9:.1f} GB: free some space or use another --units")
    pf.lines.append(line)
    if profile.model.source != "tiny" and not Path(profile.model.source).is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = any(isinstance(try_to_load_from_cache(profile.model.source, name), str)
                     for name in ("model.safetensors.index.json", "model.safetensors"))
        pf.lines.append(f"{'weights':<10}{profile.model.source}: "
                        + ("in the Hugging Face cache" if cached else "not cached: the first stage downloads them"))


def preflight(profile: Profile, units: Path | None = None) -> Preflight:
    """Every check, on the data and processor alone; the disk where the units go (`units`, default the
    shared store)."""
    from repro.experiments.data import RunData

    pf = Preflight([f"pulse-repro preflight: profile {profile.name}"])
    data = RunData(profile)
    s, e = profile.splits, profile.eval
    fictional, celebrities, mmbench = data.fictional, data.celebrities, data.mmbench_items()
    pf.lines.append(f"{'data':<10}{len(fictional)} fictional people (pool {s.fictional_pool}; Table A "
                    f"{TABLE_A['fictional']}), {len(celebrities)} celebrities (Table A: "
                    f"{TABLE_A['celebrities scored']} scored, {TABLE_A['celebrities kept']} kept; here "
                    f"{s.celebrity_keep}), {len({it.group for it in mmbench})} MMBench questions "
                    f"({len(mmbench)} rows with their circular copies)")
    if len(fictional) < s.fictional_pool:
        pf.problems.append(f"only {len(fictional)} fictional people, splits.fictional_pool is {s.fictional_pool}: "
                           "check data.mllmu, or lower splits.fictional_pool")
    if len(celebrities) < s.celebrity_keep:
        pf.problems.append(f"only {len(celebrities)} celebrities, splits.celebrity_keep is {s.celebrity_keep}: "
                           "check data.mllmu, or lower splits.celebrity_keep")
    processor, image_tokens, context, params = _model_shape(profile, data)
    pool = data.split("pool")
    eval_limit = prompt_limit(context, e)
    why_eval = f"the evaluation limit (context {context}" + (
        f" less eval.generate_tokens {e.generate_tokens})" if e.scoring == "letter" else ")")
    # eval.shots' demonstrations are drawn here, so a draw that cannot be made stops the run before any work
    people_items = data.person_items(pool + celebrities)
    if e.shots:
        pf.lines.append(f"{'shots':<10}{e.shots} demonstration(s) before each fictional person's question, from "
                        + ", ".join(d.person for d in data.demonstrations["text"]))
    why_open = f"the evaluation limit (context {context} less eval.generate_tokens {e.generate_tokens})"
    open_limit = (context - e.generate_tokens, why_open)
    # generated in words, so read as the letter scorer reads its prompts
    open_tasks = {f"{name} questions (eval)": (_eval_texts(make(pool + celebrities, data.dialect), data.dialect, "letter"), *open_limit)
                  for name, make in (("generation", generation_items), ("fill_blank", fill_blank_items))
                  if name in e.benchmarks}
    _lengths(pf, processor, {
        "people questions (eval)": (_eval_texts(people_items, data.dialect, e.scoring), eval_limit, why_eval),
        **open_tasks,
        "MMBench questions (eval)": (_eval_texts(mmbench, data.dialect, e.scoring), eval_limit, why_eval),
        "fictional examples (train)": (_example_texts(pool, profile.finetune, data.dialect),
                                       profile.model.max_length, "model.max_length"),
        "celebrity examples (train)": (_example_texts(celebrities, profile.finetune, data.dialect),
                                       profile.model.max_length, "model.max_length"),
    }, image_tokens, e.shots)
    _gpu(pf, profile, params)
    _disk_and_cache(pf, profile, units or default_units_dir(), params)
    return pf


def require_preflight(profile: Profile, units: Path | None = None) -> None:
    """The first thing `all` and `run` do: the report's problems, if any, as one error before any work."""
    pf = preflight(profile, units)
    if pf.problems:
        raise ReproError("preflight found what would stop the run:\n" + "\n".join(f"- {p}" for p in pf.problems)
                         + "\n(`pulse-repro preflight` prints the whole report)")
