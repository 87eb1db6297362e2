"""A session: one process's view of a run. It loads the data and the base model once, trains the
fine-tuned model once, and caches every evaluation by the model's key and the question set, so the
experiments share all the work they have in common."""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from repro import distributed
from repro.assets import require_asset
from repro.config import Profile
from repro.data.mllmu import load_people
from repro.data.mmbench import load_mmbench
from repro.data.records import Person
from repro.data.source import resolve_source
from repro.data.splits import build_fictional_splits, build_manifest, data_hash, load_scores, write_manifest
from repro.data.world import MMBENCH_DEV, MMBENCH_TRAIN, write_world
from repro.environment import numeric_tag
from repro.errors import ReproError
from repro.eval.items import Item, mmbench_items, person_items
from repro.eval.scoring import predict, prompt_limit
from repro.experiments.disk import require_free, weight_bytes
from repro.hashing import identity, key_of, seed_from_key
from repro.model.factory import (
    build_model,
    check_image_tokens,
    context_length,
    load_model,
    load_processor,
    save_model,
    tiny_processor,
)
from repro.model.lora import attach_lora, merge
from repro.model.prompts import encode_training_batch
from repro.model.tokenizer import build_word_tokenizer
from repro.train.examples import (
    answer_examples,
    knowledge_examples,
    letter_examples,
    mmbench_examples,
    person_examples,
)
from repro.train.loop import batches_per_epoch, optimise, shuffled_batches


def cache_dir() -> Path:
    """Where work shared across runs lives (the miniature world, the pre-trained tiny base model)."""
    return Path(os.environ.get("PULSE_CACHE", ".pulse-cache"))


def base_model_path(base_key: str) -> Path:
    """The cached tiny base model of `base_key` pre-trained in this numeric environment: one pre-trained
    under another instruction set computes other floats, and is not reused here."""
    return cache_dir() / "models" / f"base-{base_key}-{numeric_tag()}"


@dataclass(frozen=True)
class Adapter:
    """An unlearned model: a LoRA adapter (units/adapter-KEY.safetensors) over its parent model."""

    parent: str  # the key of the model the adapter is applied to
    target: str  # the update target it was trained with ("llm" or "proj+llm")
    root: str  # the first model of its chain of requests (the reference under reference="original")


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """A safetensors unit written whole or not at all; the temporary name is per process, since the
    cells of a grid share units."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Session:
    def __init__(self, profile: Profile, run_dir: Path, data_dir: Path | None = None):
        self.profile = profile
        self.run_dir = run_dir
        self.units = run_dir / "units"
        world_key = key_of(identity(profile.world, ("long_hints",)), profile.seed)
        self.data_dir = data_dir or cache_dir() / f"world-{world_key}"
        dist = distributed.current()  # None when alone; under a launcher, this rank's device
        self.device = (dist.device if dist is not None
                       else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        self._states: dict[str, dict[str, torch.Tensor]] = {}  # base and fine-tuned: key -> CPU weights
        # Unlearned models are kept as their adapters (MBs, not a copy of the model each), on disk.
        self._adapters: dict[str, Adapter] = {}
        self._live_key: str | None = None
        torch.manual_seed(profile.seed)

    # ---- data -------------------------------------------------------------------------------
    def _world(self) -> Path:
        with distributed.main_first():  # under a launcher rank 0 writes it, the others read it
            if not (self.data_dir / "MMBench" / "MMBench_DEV_EN.tsv").exists():
                write_world(self.data_dir, self.profile.world, self.profile.seed)
        return self.data_dir

    def _path(self, spec: str, world_rel: str, kind: str) -> Path:
        return self._world() / world_rel if spec == "world" else resolve_source(spec, kind)

    @cached_property
    def mllmu_root(self) -> Path:
        return self._path(self.profile.data.mllmu, "MLLMU-Bench", "mllmu")

    @cached_property
    def fictional(self) -> list[Person]:
        return load_people(self.mllmu_root, "Full_Set")

    @cached_property
    def celebrities(self) -> list[Person]:
        return load_people(self.mllmu_root, "Retain_Set")

    @cached_property
    def mmbench_dev(self):
        return load_mmbench(self._path(self.profile.data.mmbench, MMBENCH_DEV, "mmbench"))

    @cached_property
    def mmbench_train(self):
        spec = self.profile.data.mmbench_train
        return load_mmbench(self._path(spec, MMBENCH_TRAIN, "mmbench")) if spec else []

    @cached_property
    def source_hash(self) -> str:
        return data_hash([self.mllmu_root])

    @cached_property
    def fictional_splits(self) -> dict:
        return build_fictional_splits(self.fictional, self.profile.splits, self.profile.seed)

    def people(self, keys: list[str]) -> list[Person]:
        by_key = {p.key: p for p in self.fictional + self.celebrities}
        return [by_key[k] for k in keys]

    # ---- models -----------------------------------------------------------------------------
    def all_texts(self) -> list[str]:
        """Everything the tiny model will ever read, for its word-level vocabulary."""
        items = person_items(self.fictional + self.celebrities) + mmbench_items(self.mmbench_dev + self.mmbench_train)
        texts = [it.prompt for it in items] + [it.context for it in items]
        texts += [o for it in items for o in it.options.values()]
        texts += [e.prompt + e.answer for e in person_examples(self.fictional + self.celebrities)]
        return texts

    def processor_to_build(self):
        """The processor a model built from config reads with: the profile's LLaVA processor directory, or
        the kit's word-level tokenizer over everything the model will read, with CLIP at model.image_size."""
        m = self.profile.model
        return (load_processor(require_asset(m.processor)) if m.processor
                else tiny_processor(m, build_word_tokenizer(self.all_texts())))

    @cached_property
    def base_key(self) -> str:
        p = self.profile
        return key_of("base", identity(p.model, ("processor", "vocab_size", "context", "gradient_checkpointing")), asdict(p.pretrain), p.seed,
                      self.source_hash if p.model.source == "tiny" else "")

    @cached_property
    def _model_and_processor(self):
        p = self.profile
        if p.model.source != "tiny":
            model, processor = load_model(p.model.source, p.model.dtype, self.device)
        else:
            cached = base_model_path(self.base_key)
            if distributed.rank0_decides(cached.exists()):  # under a launcher: a cache shared by the ranks
                model, processor = load_model(str(cached), p.model.dtype, self.device)
            else:
                torch.manual_seed(seed_from_key(self.base_key))
                model, processor = build_model(p.model, self.processor_to_build(), p.seed)
                model.to(self.device)
                check_image_tokens(model, processor)
                if distributed.is_main():
                    require_free(cached.parent, weight_bytes(model), "the pre-trained tiny base model")
                if p.pretrain.steps:
                    self._pretrain(model, processor)
                if distributed.is_main():
                    save_model(model, processor, cached)
        check_image_tokens(model, processor)
        self._states[self.base_key] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self._live_key = self.base_key
        return model, processor

    @property
    def processor(self):
        return self._model_and_processor[1]

    def model(self, key: str):
        """The live model holding the weights of `key` (one copy of the model per process): full weights
        loaded, or the parent's rebuilt and the adapter merged into them."""
        model = self._model_and_processor[0]
        if self._live_key == key:
            return model
        if key in self._states:
            model.load_state_dict(self._states[key])
        elif self.has_model(key):
            # Attaching an adapter draws its initial weights from the RNG before the unit's replace them:
            # rebuilding a model leaves the RNG as it was, so a request seeded before its start model is
            # rebuilt (after a resume) trains as in an uninterrupted run.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                merge(self.attach_adapter(key)).eval()
        else:
            raise ReproError(f"model {key} is not known to this run (no kept weights, no units/adapter-{key})")
        self._live_key = key
        return model

    # ---- unlearned models: adapters over a parent -------------------------------------------
    def adapter_unit(self, key: str) -> Path:
        return self.units / f"adapter-{key}.safetensors"

    def adapter(self, key: str) -> Adapter | None:
        """What unlearned model `key` is made of, or None for the base and fine-tuned models."""
        return self._adapters.get(key) if self.has_model(key) else None

    def has_model(self, key: str) -> bool:
        """Whether `key` can be built without training: weights kept, or its adapter unit written
        (found on disk after an interruption: only the request that was in flight is trained again)."""
        if key in self._states or key in self._adapters:
            return True
        path = self.adapter_unit(key)
        meta = distributed.rank0_decides(_unit_metadata(path) if path.exists() else None)
        if meta is None:
            return False
        self._adapters[key] = Adapter(meta["parent"], meta["target"], meta["root"])
        return True

    def attach_adapter(self, key: str) -> PeftModel:
        """The parent of `key` live, with `key`'s adapter attached."""
        spec = self._adapters[key]
        peft_model = attach_lora(self.model(spec.parent), self.profile.finetune, spec.target)
        path = self.adapter_unit(key)
        weights = distributed.rank0_reads(lambda: load_file(str(path)))
        result = set_peft_model_state_dict(peft_model, weights)
        if result.unexpected_keys:
            raise ReproError(f"{path}: weights that fit no adapter module: {result.unexpected_keys[:3]}")
        return peft_model

    def keep_adapter(self, key: str, spec: Adapter, peft_model: PeftModel) -> None:
        """Write `key`'s adapter as a unit (rank 0, atomically) and remember what it is made of."""
        if distributed.is_main():
            atomic_save_tensors(self.adapter_unit(key), get_peft_model_state_dict(peft_model),
                                {"parent": spec.parent, "target": spec.target, "root": spec.root})
        self._adapters[key] = spec

    def remember(self, key: str, model) -> None:
        self._states[key] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self._live_key = key

    def _pretrain(self, model, processor) -> None:
        """Tiny only: full-parameter training on the celebrities and mini-MMBench train, so that
        celebrity knowledge is pre-trained knowledge (DESIGN.md section 6)."""
        cfg = self.profile.pretrain
        rng = random.Random(self.profile.seed)
        # Celebrities are known as the web knows them: in many phrasings (the QA pairs and the benchmark's
        # own questions, answered in words), and general visual skills from mini-MMBench train.
        fixed = (person_examples(self.celebrities, text_only_as_asked=True) + answer_examples(self.celebrities)
                 + mmbench_examples(self.mmbench_train))

        def batches():
            epoch = 0
            while True:  # fresh option orders each pass: the letter skill, not memorised letters
                pool = fixed
                if cfg.letters:
                    pool = pool + letter_examples(self.celebrities, rng) + mmbench_examples(self.mmbench_train, True)
                yield from shuffled_batches(pool, cfg.batch_size, 1, self.profile.seed + epoch)
                epoch += 1

        self._train(model, processor, [p for p in model.parameters()], batches(), cfg.steps, cfg.lr,
                    cfg.warmup, "cosine", 1, "pre-train")

    def encode(self, batch, processor=None) -> dict:
        enc = encode_training_batch(processor or self.processor, [(e.prompt, e.answer, e.image) for e in batch],
                                    self.profile.model.max_length)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _train(self, model, processor, params, batches, steps, lr, warmup, schedule, accum, desc):
        model.train()
        losses = optimise(params, batches, steps, lambda enc: model(**enc).loss, lr, warmup, schedule, accum,
                          desc, prepare=lambda b: self.encode(b, processor))
        model.eval()
        return losses

    @cached_property
    def finetuned_key(self) -> str:
        p = self.profile
        return key_of("finetuned", self.base_key, asdict(p.finetune), self.fictional_splits["pool"])

    def finetuned(self) -> str:
        """LoRA fine-tune of the base model on the 100 fictional people, merged (the "vanilla" model)."""
        key = self.finetuned_key
        if key in self._states:
            return key
        path = self.units / f"model-{key}.safetensors"
        model = self.model(self.base_key)
        dist = distributed.current()
        if distributed.rank0_decides(path.exists()):
            if dist is None or dist.is_main:
                model.load_state_dict(load_file(str(path)))
            if dist is not None:  # rank 0 read the unit; the others receive its weights
                dist.broadcast_state(model)
            self.remember(key, model)
            return key
        if distributed.is_main():
            require_free(self.units, weight_bytes(model), f"the fine-tuned model ({path.name})")
        cfg = self.profile.finetune
        torch.manual_seed(seed_from_key(key))
        examples = knowledge_examples(self.people(self.fictional_splits["pool"]), cfg)
        peft_model = attach_lora(model, cfg, cfg.target, self.profile.model.gradient_checkpointing)
        steps = cfg.epochs * batches_per_epoch(examples, cfg.batch_size) // cfg.grad_accum
        params = [p for p in peft_model.parameters() if p.requires_grad]
        self._train(peft_model, self.processor, params,
                    shuffled_batches(examples, cfg.batch_size, cfg.epochs, self.profile.seed),
                    steps, cfg.lr, 0, "constant", cfg.grad_accum, "fine-tune")
        model = merge(peft_model)
        if distributed.is_main():
            atomic_save_tensors(path, model.state_dict())
        self.remember(key, model)
        return key

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, model_key: str, items: list[Item], desc: str = "eval",
                 rule: str = "first-letter") -> dict[str, str]:
        """Predictions of model `model_key` on `items` (answers read by `rule`), computed once and kept on
        disk under a key of everything they depend on: the prompts themselves, not only their ids."""
        e = self.profile.eval
        how = [e.scoring] if e.scoring != "letter" else [e.scoring, rule, e.generate_tokens]
        path = self.units / f"eval-{key_of(model_key, *how, [(it.uid, it.prompt) for it in items])}.json"
        # rank 0 reads the unit, when there is one, and every rank gets its predictions
        kept = distributed.rank0_reads(lambda: json.loads(path.read_text()) if path.exists() else None)
        if kept is not None:
            return kept
        model = self.model(model_key)
        preds = predict(model, self.processor, items, e.scoring, e.batch_size, prompt_limit(context_length(model), e),
                        desc, rule, e.generate_tokens)
        if distributed.is_main():
            atomic_write_text(path, json.dumps(preds, sort_keys=True))
        return preds

    def mmbench_items(self) -> list[Item]:
        items = mmbench_items(self.mmbench_dev, self.profile.eval.mmbench_template)
        if not self.profile.eval.mmbench_circular:
            items = [it for it in items if it.group == int(it.uid)]
        return items


def _unit_metadata(path: Path) -> dict | None:
    """The (parent, target, root) an adapter unit was written with; None for a file that is not one."""
    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError):  # a torn or foreign file: the request is trained again and the unit rewritten
        return None
    return meta if {"parent", "target", "root"} <= set(meta) else None


def write_split_manifest(profile: Profile, out: Path, scores_file: Path | None, data_dir: Path | None) -> None:
    session = Session(profile, out.parent, data_dir)
    scores = load_scores(scores_file) if scores_file else None
    if distributed.is_main():
        write_manifest(build_manifest(profile, session.fictional, scores, session.source_hash), out)
