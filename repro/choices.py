"""A profile's choices of code, checked before any work starts (a typo must not surface after an hour of
fine-tuning): every name a profile picks (methods and their parameters, update targets, the reference,
scoring, the model family, MMBench's template (one the family writes) and answer rule) against the registry
that holds it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from repro.config import Profile, read_profile
from repro.errors import ConfigError
from repro.eval.answers import ANSWER_RULES
from repro.eval.batch_size import check_batch_size
from repro.eval.benchmarks import BENCHMARKS
from repro.eval.scoring import SCORINGS
from repro.model.families import FAMILIES, family_named
from repro.model.lora import TARGETS
from repro.train.methods import get_method, method_params
from repro.train.reference import REFERENCE_MODES
from repro.value_ranges import check_value_ranges


def load_profile(name_or_path: str = "tiny", overrides: Sequence[str] = ()) -> Profile:
    """A profile by name (`tiny`) or path (`my.toml`) with `key=value` overrides, its choices checked."""
    profile = read_profile(name_or_path, overrides)
    check_choices(profile)
    return profile


def check_choices(profile: Profile, methods: Iterable[str] = (), targets: Iterable[str] = ()) -> None:
    """The profile's choices, plus `methods` and `targets` asked for on the command line."""
    u = profile.unlearn
    for name in (*u.methods, *methods):
        get_method(name)  # raises, naming the known methods
    for name in u.params:
        method_params(u, get_method(name))  # an unknown method, parameter, type or value raises
    if u.reference not in REFERENCE_MODES:
        raise ConfigError(f"unlearn.reference {u.reference!r}: expected one of {', '.join(REFERENCE_MODES)}")
    for name in (*u.methods, *methods):
        if u.reference == "original" and get_method(name).reference_everywhere:
            raise ConfigError(f"unlearning method {name!r} reads the reference at every position, which "
                              "unlearn.reference = \"original\" does not keep (it keeps answer positions); use "
                              "unlearn.reference = \"request\"")
    for target in (profile.finetune.target, *targets):
        TARGETS.get(target)
    e = profile.eval
    for key, value, registry in (("model.family", profile.model.family, FAMILIES),
                                 ("eval.scoring", e.scoring, SCORINGS),
                                 ("eval.mmbench_answer", e.mmbench_answer, ANSWER_RULES),
                                 *(("eval.benchmarks", name, BENCHMARKS) for name in e.benchmarks)):
        if value not in registry:
            raise ConfigError(f"{key} {value!r}: expected one of {', '.join(registry.names())}")
    family_named(profile.model.family).dialect.check_template(e.mmbench_template)
    if profile.model.answer_logits:
        for name in (*u.methods, *methods):
            if get_method(name).reference_everywhere:
                raise ConfigError(f"unlearning method {name!r} reads the logits at every position, which "
                                  "model.answer_logits = true does not compute; set it false for this method")
    check_value_ranges(profile)
    check_batch_size(profile.eval.batch_size)
    if profile.model.processor and profile.model.source != "tiny":
        raise ConfigError(f"model.processor {profile.model.processor!r}: only a model built from config "
                          f"(model.source = \"tiny\") takes a separate processor; {profile.model.source!r} "
                          "brings its own")

