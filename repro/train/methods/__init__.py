"""Unlearning methods: a registry, one small file per method in this package.

A method is its loss for one optimisation step, the parameters it owns (name, type, default, source),
what it reads (a retain batch, the reference model) and the order its batches come in (its schedule).
Adding one is one file here, found by name when the package is imported:

    # repro/train/methods/my_method.py
    from repro.train.methods.base import Param, UnlearnStep, register
    from repro.train.losses import answer_token_nll

    @register("my_method", params=[Param("weight", float, 0.5, "kit choice")])
    def my_method(step: UnlearnStep):
        return -step.params["weight"] * answer_token_nll(step.policy(step.forget), step.forget["labels"])

then run it with `--set 'unlearn.methods=["my_method"]' --set unlearn.my_method.weight=0.3`, or set
`[unlearn.my_method] weight = 0.3` in a profile. simnpo.py is the worked example.
"""

from __future__ import annotations

import importlib
import pkgutil

from repro.train.methods.base import (
    METHODS,
    Method,
    Param,
    SequentialLoss,
    UnlearnStep,
    get_method,
    method_params,
    register,
    step_inputs,
)

_INFRASTRUCTURE = {"base", "schedules"}  # modules of this package that define no method

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Method", "Param", "SequentialLoss", "UnlearnStep", "get_method", "method_params", "register",
           "step_inputs"]
