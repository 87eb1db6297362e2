"""What a method is, what it sees at one step, and the registry that holds the methods."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from repro.config import UnlearnConfig
from repro.errors import ConfigError, ReproError
from repro.registry import Registry
from repro.train.methods.schedules import Plan, forget_steps


@dataclass(frozen=True)
class Param:
    """A parameter a method owns, set in a profile as `[unlearn.<method>] <name> = value`."""

    name: str
    type: type  # float, int, bool or str
    default: Any
    source: str  # where the default comes from (a paper, a benchmark's code, a kit choice)
    positive: bool = False  # a value must be > 0

    def check(self, value: Any, where: str) -> Any:
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not self.type:
            raise ConfigError(f"{where}: expected {self.type.__name__}, got {value!r}")
        if self.positive and not value > 0:
            raise ConfigError(f"{where}: must be > 0, got {value!r}")
        return value


@dataclass
class UnlearnStep:
    """What a method sees at one optimisation step."""

    forget: dict | None  # a batch from D_unlearn (input_ids, attention_mask, labels, maybe pixel_values)
    retain: dict | None  # a batch from D_retain, or None when the method's schedule gives none
    policy: Callable[[dict], Tensor]  # logits under the model being trained (with grad)
    reference: Callable[[dict], Tensor]  # logits under the reference model (no grad)
    cfg: UnlearnConfig  # the settings every method shares (epochs, batch size, lr, reference)
    params: Mapping[str, Any] = field(default_factory=dict)  # this method's own parameters, resolved


Schedule = Callable[..., Plan]


@dataclass(frozen=True)
class Method:
    name: str
    loss: Callable[[UnlearnStep], Tensor]
    needs_retain: bool = False
    needs_reference: bool = False
    params: tuple[Param, ...] = ()
    schedule: Schedule = forget_steps
    # The reference is read at every position, not only the answer's (MLLMU-Bench's KL_Min): a chain's
    # frozen "original" reference keeps answer positions only.
    reference_everywhere: bool = False

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise ConfigError(f"unlearn.{self.name}.{name}: {self.name} has no parameter {name!r} (its parameters: {known})")


METHODS: Registry[Method] = Registry("unlearning method")


def register(name: str, *, needs_retain: bool = False, needs_reference: bool = False,
             params: Sequence[Param] = (), schedule: Schedule = forget_steps, reference_everywhere: bool = False):
    """Decorator: make `loss(step) -> scalar` available as method `name`."""

    def wrap(loss: Callable[[UnlearnStep], Tensor]) -> Callable[[UnlearnStep], Tensor]:
        METHODS.add(name, Method(name, loss, needs_retain, needs_reference, tuple(params), schedule,
                                 reference_everywhere))
        return loss

    return wrap


def get_method(name: str) -> Method:
    return METHODS.get(name)


def method_params(cfg: UnlearnConfig, method: Method) -> dict[str, Any]:
    """The method's parameters: its declared defaults, overridden by the profile's [unlearn.<method>]
    table, each checked against its declaration."""
    given = dict(cfg.params.get(method.name, {}))
    out = {}
    for p in method.params:
        out[p.name] = p.check(given.pop(p.name), f"unlearn.{method.name}.{p.name}") if p.name in given else p.default
    for name in given:
        method.param(name)  # raises, naming the method's parameters
    return out


def step_inputs(encode: Callable[[list], dict]) -> Callable[[tuple], tuple[dict | None, dict | None]]:
    """A schedule's (forget, retain) example lists -> UnlearnStep's (forget, retain) tensors."""

    def encoded(pair: tuple) -> tuple[dict | None, dict | None]:
        return tuple(encode(part) if part is not None else None for part in pair)

    return encoded


class SequentialLoss:
    """A sum of loss terms back-propagated one at a time: each term's graph is freed before the next
    term's forward runs, so the peak memory is the largest term's, not the sum of them (GA+KLR: the
    forget graph, then the retain graph with the reference logits). The gradient is the sum's.
    It stands in for a scalar loss where the trainer uses one: `* c`, `/ c`, `backward()`, then `item()`."""

    def __init__(self, terms: Sequence[Callable[[], Tensor]], scale: float = 1.0):
        self.terms, self.scale, self._value = tuple(terms), scale, None

    def __mul__(self, c: float) -> SequentialLoss:
        return SequentialLoss(self.terms, self.scale * float(c))

    __rmul__ = __mul__

    def __truediv__(self, c: float) -> SequentialLoss:
        return SequentialLoss(self.terms, self.scale / float(c))

    def backward(self) -> None:
        total = 0.0
        for term in self.terms:
            value = term() * self.scale
            value.backward()
            total += value.item()
        self._value = total

    def item(self) -> float:
        if self._value is None:
            raise ReproError("a SequentialLoss has a value only after backward()")
        return self._value


def forget_batch(step: UnlearnStep) -> dict:
    if step.forget is None:
        raise ReproError("this method needs a forget batch, got none")
    return step.forget


def retain_batch(step: UnlearnStep) -> dict:
    if step.retain is None:
        raise ReproError("this method needs a retain batch, got none")
    return step.retain
