"""A profile's numbers out of the values they can take are refused when it loads, in one line naming the
setting (repro/value_ranges.py); the values at the edge of each range load."""

from __future__ import annotations

import pytest
from one_line import one_line_error

from repro.choices import load_profile
from repro.cli import main
from repro.config import available_profiles
from repro.errors import ConfigError
from repro.value_ranges import AT_LEAST, POSITIVE_FLOATS

BAD = [
    *((f"{key}={value}", key) for key in POSITIVE_FLOATS for value in ("0", "-1e-5", "nan", "inf")),
    *((f"{key}={lowest - 1}", key) for key, lowest in AT_LEAST.items()),
    ("finetune.lora_dropout=1.0", "finetune.lora_dropout"),
    ("finetune.lora_dropout=-0.1", "finetune.lora_dropout"),
]


@pytest.mark.parametrize(("override", "key"), BAD, ids=[o for o, _ in BAD])
def test_a_value_out_of_its_range_is_refused_naming_the_setting(override, key):
    with pytest.raises(ConfigError, match=rf"^{key} "):
        load_profile("tiny", [override])


@pytest.mark.parametrize("key", [*POSITIVE_FLOATS, *AT_LEAST])
def test_the_edge_of_each_range_loads(key):
    value = AT_LEAST.get(key, 1e-9)
    assert getattr(getattr(load_profile("tiny", [f"{key}={value}"]), key.split(".")[0]), key.split(".")[1]) == value


def test_every_shipped_profile_is_inside_the_ranges():
    for name in available_profiles():
        load_profile(name)


@pytest.mark.parametrize("override", ["eval.bootstrap_resamples=-5", "unlearn.lr=nan", "finetune.lr=0"])
def test_the_preflight_refuses_it_in_one_line(override, capsys):
    assert main(["preflight", "--set", override]) == 2
    one_line_error(capsys, override.split("=")[0])


def test_shots_the_context_cannot_hold_are_refused_naming_eval_shots(capsys):
    assert main(["preflight", "--set", "eval.shots=7"]) == 1  # problems found (2: refused)
    out = capsys.readouterr()
    assert "lower eval.shots" in out.out + out.err
