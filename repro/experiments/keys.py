"""Content keys of the units, each of exactly what the unit depends on: two runs that need the same unit
find it under the same key in the shared store (repro/experiments/store.py), and a unit's random draws
(LoRA initialisation, dropout) are seeded from its key (repro/hashing.py, seed_from_key), so the unit is the
same whichever run makes it."""

from __future__ import annotations

from dataclasses import asdict, fields

from repro.config import Profile, UnlearnConfig
from repro.data import world
from repro.hashing import identity, key_of
from repro.train.methods import Method, method_params

# Options added to these configs after their units were first keyed enter a key only when set away from
# their defaults (repro/hashing.py, identity): existing units keep their keys.
_MODEL_ADDED = ("processor", "vocab_size", "context", "gradient_checkpointing", "family", "answer_logits")
_WORLD_ADDED = ("long_hints",)


def _settings(config) -> dict:
    """A config section without its `seed` field: a key holds the seed in effect (the profile's, or the
    section's own), whichever way it was set."""
    return {k: v for k, v in config.items() if k != "seed"}


def world_key(profile: Profile) -> str:
    """The cached miniature world: its settings, seed and the generator's edition."""
    return key_of(_settings(identity(profile.world, _WORLD_ADDED)), profile.world_seed, world.EDITION)


def _run_seed(profile: Profile) -> list[int]:
    """The run's seed as a key part where the base key does not already hold it (a base held at another
    seed, as `all --seeds` holds it): LoRA initialisation and data order follow the run's seed."""
    return [profile.seed] if profile.base_seed != profile.seed else []


def base_key(profile: Profile, source_hash: str) -> str:
    """The base model: the hub model as named, or the tiny model built from config and pre-trained on the
    data (whose content hash it then holds)."""
    p = profile
    built = p.model.source == "tiny"
    return key_of("base", identity(p.model, _MODEL_ADDED), _settings(asdict(p.pretrain)), p.base_seed,
                  source_hash if built else "")


def finetuned_key(profile: Profile, base: str, pool: list[str], source_hash: str) -> str:
    """The fine-tuned ("vanilla") model: the base, the fine-tune settings, the people and (through the base
    key, or here for a downloaded base) the data they are read from; the seed is in the base key."""
    p = profile
    data = [] if p.model.source == "tiny" else [source_hash]  # a tiny base key holds it already
    return key_of("finetuned", base, asdict(p.finetune), pool, *data, *_run_seed(p))


# The request key's settings as they were first laid out, one flat table of every method's parameters and
# the methods a profile lists: a built-in method's key keeps that layout, with the other methods'
# parameters at their constant defaults and the list as first shipped, so it depends only on the method's
# own parameters while the units (and numbers) made under that layout keep their keys.
_FIRST_LAYOUT = {"methods": ["ga", "ga_klr", "npo"], "beta": 0.1, "kl_lambda": 1.0}
_FIRST_LAYOUT_PARAMS = {"npo": ("beta",), "ga_klr": ("kl_lambda",), "ga": (), "gd": ()}


def request_settings(cfg: UnlearnConfig, method: Method) -> dict:
    """What an unlearning request of `method` depends on in the unlearn section: the settings every method
    shares and the method's own parameters, not the other methods'."""
    shared = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("methods", "params")}
    own = method_params(cfg, method)
    if method.name in _FIRST_LAYOUT_PARAMS:
        return {**shared, **_FIRST_LAYOUT, **own}
    return {**shared, "method_params": own}


def request_key(profile: Profile, start: str, method: Method, target: str, forget: list[str],
                retain: list[str]) -> str:
    """One unlearning request: its start model, method (with its parameters), target and people. The LoRA
    shape and the examples a person is trained from come from the fine-tune settings."""
    return key_of("unlearn", start, method.name, target, request_settings(profile.unlearn, method),
                  asdict(profile.finetune), forget, retain, *_run_seed(profile))


def predictions_key(model: str, how: list, items: list[tuple[str, str, str]]) -> str:
    """Predictions of `model` on items (uid, prompt, image digest) read by `how` (scoring, answer rule, ...)."""
    return key_of(model, *how, items)
