"""Profiles: TOML files loaded into typed, frozen config objects, with `--set key=value` overrides.

A profile is data, never a branch in the code: every stage reads its values from here.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import ConfigError

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class DataConfig:
    mllmu: str  # local path, "hf:<repo_id>", or "world" (the miniature world, generated on demand)
    mmbench: str  # VLMEvalKit TSV, a dir laid out as lmms-lab/MMBench, "hf:<repo_id>", or "world"
    mmbench_train: str = ""  # mini-MMBench training part (tiny pre-training only); "" for none


@dataclass(frozen=True)
class WorldConfig:
    fictional: int = 500
    celebrities: int = 153
    image_size: int = 32
    mmbench_dev: int = 200
    mmbench_train: int = 2000
    long_hints: float = 0.0  # share of mini-MMBench dev questions whose hint runs to MMBench's real lengths
    seed: int = -1  # the world's draw; -1: the profile's seed (`all --seeds` holds it at the profile's)


@dataclass(frozen=True)
class SplitConfig:
    fictional_pool: int = 100
    unlearn: int = 50
    shards: int = 5
    celebrity_keep: int = 45
    celebrity_unlearn: int = 20
    celebrity_retain: int = 25
    min_accuracy: float = 60.0
    seed: int = -1  # the split draw (fictional splits, celebrity split); -1: the profile's seed


@dataclass(frozen=True)
class ModelConfig:
    source: str  # hub id, local dir, or "tiny" (built from the fields below)
    # The architecture (repro/model/families/): "llava" (LLaVA-1.5, and the tiny model), "llava-next",
    # "qwen2.5-vl", "gemma-3". Its prompts, image tokens, module names and loading follow it.
    family: str = "llava"
    dtype: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    max_length: int = 512
    # A model built from config ("tiny") reads with: "" the kit's word-level tokenizer and a CLIP image
    # processor at image_size, or a LLaVA processor directory ("asset:llava-1.5": `pulse-repro assets fetch`).
    processor: str = ""
    vocab_size: int = 0  # text vocabulary of a model built from config; 0: the tokenizer's length
    context: int = 0  # positions of a model built from config (evaluation's limit); 0: max(max_length, 128)
    # Activation checkpointing in training (fine-tuning and unlearning): each layer's activations are
    # recomputed in the backward pass instead of kept, about a third more compute for much less memory (the
    # 13B protocol on 40-48 GB GPUs). The numbers are the same within float tolerance (tests/test_lora.py).
    gradient_checkpointing: bool = False
    # Training asks the language model head for the answer positions' logits only (logits_to_keep): the same
    # losses, without B x T x V logits; for a long face (LLaVA-NeXT: 2,928 tokens) or a large vocabulary
    # (Gemma-3: 262,208). A method that reads every position (kl_min) is refused with it.
    answer_logits: bool = False
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    image_size: int = 32
    patch_size: int = 8
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 4
    text_intermediate: int = 688


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 0  # 0: the model arrives pre-trained (paper profiles)
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 50
    letters: bool = False  # also teach letter-answer multiple choice (celebrities, mini-MMBench train)
    seed: int = -1  # the tiny base model's draw; -1: the profile's seed (`all --seeds` holds it at the profile's)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target: str = "proj+llm"  # what the vanilla fine-tune updates: "proj+llm" or "llm"
    # What a person is trained (and unlearned) from. MLLMU-Bench: its ft_Data QA pairs, each shown with the
    # face. The miniature's from-scratch LM cannot carry knowledge across paraphrases or across the presence
    # of image tokens as LLaVA does, so `tiny` also answers the benchmark's own questions in words (never
    # with options or letters) and teaches text-only questions without the face.
    benchmark_questions: bool = False
    text_only_as_asked: bool = False
    target_regex: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class UnlearnConfig:
    methods: tuple[str, ...] = ("ga", "ga_klr", "npo")
    epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    reference: str = "request"  # "request": model at the start of each request; "original": the model
    # before the first request of a chain; see repro/experiments/unlearn.py
    # Each method's own parameters, one table per method: `[unlearn.npo] beta = 0.1` in a profile,
    # `--set unlearn.npo.beta=0.2`. Declared (type, default, source) where the method is registered
    # (repro/train/methods/), checked when the profile loads.
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    # `[unlearn.<name>]` tables that are not fields are method parameter tables (see `_build`).
    EXTRA_TABLES: typing.ClassVar[str] = "params"


@dataclass(frozen=True)
class EvalConfig:
    scoring: str = "letter"  # "letter" (MLLMU-Bench) or "option-loglik" (lm-evaluation-harness)
    # Questions per forward pass: a number, or "auto" (the largest the GPU's free memory holds under the model
    # of repro/eval/batch_size.py; 16 on a CPU).
    batch_size: int | str = 16
    generate_tokens: int = 50  # new tokens when an answer is generated (MLLMU-Bench eval.py: max_new_tokens=50)
    # MMBench's prompt: "plain" (the body alone) or "llava-v1" (LLaVA-1.5's own MMBench evaluation: the
    # vicuna_v1 system prompt and separators); see repro/model/prompts.py
    mmbench_template: str = "plain"
    # MMBench's answer from the model's text: "first-letter" (MLLMU-Bench's rule) or "vlmevalkit"
    # (VLMEvalKit's can_infer: a letter, or the text of exactly one option); see repro/eval/answers.py
    mmbench_answer: str = "first-letter"
    # Answered classification questions shown before each people question (repro/eval/demonstrations.py):
    # 0 is zero-shot (the kit's default); MLLMU-Bench's own LLaVA evaluation shows 2 people's questions.
    shots: int = 0
    # What is measured besides the people's classification questions (repro/eval/benchmarks.py): "mmbench"
    # (the paper's general ability), and MLLMU-Bench's own "generation" (ROUGE-L) and "fill_blank" tasks on
    # every people split.
    benchmarks: tuple[str, ...] = ("mmbench",)
    # Resamples of the percentile bootstrap behind every accuracy's 95% interval (repro/eval/intervals.py).
    bootstrap_resamples: int = 1000


@dataclass(frozen=True)
class Profile:
    name: str
    seed: int
    data: DataConfig
    model: ModelConfig
    world: WorldConfig = field(default_factory=WorldConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    unlearn: UnlearnConfig = field(default_factory=UnlearnConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # What a seed moves. `seed` moves LoRA initialisation, dropout and data order of fine-tuning and
    # unlearning, and the bootstrap; the world, the tiny base model and the split draw follow it unless their
    # own seed is set (`all --seeds` holds the world and the base at the profile's, as the paper's data and
    # LLaVA's weights are one draw).
    @property
    def world_seed(self) -> int:
        return self.world.seed if self.world.seed >= 0 else self.seed

    @property
    def base_seed(self) -> int:
        return self.pretrain.seed if self.pretrain.seed >= 0 else self.seed

    @property
    def split_seed(self) -> int:
        return self.splits.seed if self.splits.seed >= 0 else self.seed


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a field's type, converting only where TOML cannot say it (tuples, floats)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"profile key {key!r}: expected a table, got {type(value).__name__}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"profile key {key!r}: expected a list, got {type(value).__name__}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool or hint is int:
        if type(value) is not hint:
            raise ConfigError(f"profile key {key!r}: expected {hint.__name__}, got {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"profile key {key!r}: expected {hint.__name__}, got {value!r}")
    if origin in (typing.Union, types.UnionType):  # of plain types: the value must be one of them
        members = typing.get_args(hint)
        if not any(type(value) is m for m in members):
            raise ConfigError(f"profile key {key!r}: expected {' or '.join(m.__name__ for m in members)}, "
                              f"got {value!r}")
    return value


def _build(cls: type, table: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    extra = getattr(cls, "EXTRA_TABLES", None)
    if extra is not None:  # sub-tables that are not fields gather under the `extra` field
        table = dict(table)
        gathered = dict(table.pop(extra, {}))
        for name in [k for k, v in table.items() if k not in names and isinstance(v, dict)]:
            gathered[name] = {**gathered.get(name, {}), **table.pop(name)}
        if gathered:
            table[extra] = gathered
    unknown = sorted(set(table) - names)
    if unknown:
        hint = (f"; a method's own parameter is set as {prefix}<method>.<name>, e.g. {prefix}npo.beta"
                if extra is not None else "")
        raise ConfigError(f"unknown profile key {prefix + unknown[0]!r} (known: {', '.join(sorted(names - {extra}))}"
                          f"{hint})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in table.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"profile section {prefix.rstrip('.') or 'top level'}: {exc}") from None


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:  # a TOML value: numbers, booleans, quoted strings, lists
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return key.strip().split("."), value


def read_profile(name_or_path: str = "tiny", overrides: typing.Sequence[str] = ()) -> Profile:
    """Read a profile by name (`tiny`) or path (`my.toml`), then apply `key=value` overrides; its types are
    checked here, the names it chooses (methods, targets, ...) by `repro.choices.load_profile`."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.exists()):
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise ConfigError(f"no profile {name_or_path!r}: not a .toml file, and not one of {available_profiles()}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for text in overrides:
        keys, value = _parse_override(text)
        node = table
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return _build(Profile, table)
