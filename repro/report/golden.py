"""Golden files: what "reproduced" means, in data (DESIGN.md section 7).

A golden file is TOML with three parts:

    [golden]              # about the file: profile = "..." (the profile its entries are for), and any
                          # free-form keys saying how it was made (seeds, margin, environment, command)
    [[number]]            # one measured value and its allowed range
    name = "table_b_ga_proj_llm_mmbench"
    source = "Table B"
    experiment = "modality"; method = "ga"; target = "proj+llm"; step = 1; split = "mmbench"; modality = "all"
    value = 71.1; tolerance = 5.0      # or: min = 66.1; max = 76.1
    field = "accuracy"                 # optional: the record field, "accuracy" (default) or "n"
    profiles = ["..."]                 # optional: the profiles it applies to (default: [golden] profile)

    [[claim]]             # a comparison over the results file, made for each value of `over`
    name = "..."; source = "..."; statement = "..."   # statement: the claim in words (optional)
    kind = "ratio_at_least"                            # see KINDS
    over = "method"                                    # optional, default "method"
    values = ["ga", "ga_klr", "npo"]                   # optional, default: every value found in the records
    before = {experiment = "finetuned", target = "proj+llm", step = 0, split = "mmbench", modality = "all"}
    after = {experiment = "finetuned", target = "proj+llm", step = 1, split = "mmbench", modality = "all"}
    threshold = 0.85

A selector names every record identity field (experiment, method, target, step, split, modality) except
the `over` field, which each value fills in (a `non_increasing` series also leaves out `step`).
Ratios are after/before (retained fraction); forgotten = 1 - ratio. Accuracies are in percent.
A record a check needs and the results lack is a FAIL with measured "missing", never a crash.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import repro
from repro.errors import ReproError
from repro.experiments.results import IDENTITY
from repro.report.views import lookup

# The source tree's golden/ (an installed image sets PULSE_GOLDEN to where it copied them).
GOLDEN_DIR = Path(os.environ.get("PULSE_GOLDEN", Path(repro.__file__).resolve().parents[1] / "golden"))

# kind -> (selector keys, {parameter: default or REQUIRED})
REQUIRED = object()
KINDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    # after/before >= threshold
    "ratio_at_least": (("before", "after"), {"threshold": REQUIRED}),
    # after/before <= threshold
    "ratio_at_most": (("before", "after"), {"threshold": REQUIRED}),
    # before - after >= points (accuracy points)
    "drop_at_least": (("before", "after"), {"points": REQUIRED}),
    # measure(a_after/a_before) < measure(b_after/b_before) - margin; measure "retained" (the ratio)
    # or "forgotten" (1 - the ratio)
    "ratio_less": (("a_before", "a_after", "b_before", "b_after"), {"margin": 0.0, "measure": "retained"}),
    # a < b - margin (accuracy points)
    "less_than": (("a", "b"), {"margin": 0.0}),
    # series at step k <= series at step k-1 + slack, for consecutive steps
    "non_increasing": (("series",), {"steps": REQUIRED, "slack": 0.0}),
}
NUMBER_FIELDS = ("accuracy", "n")
COMMON_CLAIM_KEYS = ("name", "kind", "source", "statement", "over", "values", "profiles")
NUMBER_KEYS = ("name", "source", "value", "tolerance", "min", "max", "field", "profiles") + IDENTITY


@dataclass(frozen=True)
class Verdict:
    name: str
    expected: str
    measured: str
    passed: bool
    source: str
    # A range missed in an environment the golden file was not recorded in is reported, not failed.
    excused: bool = False

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "ENV DIFFERS" if self.excused else "FAIL"

    @property
    def failed(self) -> bool:
        return not self.passed and not self.excused


@dataclass(frozen=True)
class NumberSpec:
    name: str
    select: dict[str, Any]
    low: float
    high: float
    source: str
    field: str = "accuracy"
    value: float | None = None
    tolerance: float | None = None
    profiles: tuple[str, ...] | None = None

    @property
    def expected(self) -> str:
        fmt = _num if self.field == "accuracy" else (lambda x: str(int(x)) if float(x).is_integer() else _num(x))
        if self.value is not None and self.tolerance == 0:
            return f"{fmt(self.value)} exactly"
        rng = f"[{fmt(self.low)}, {fmt(self.high)}]"
        return rng if self.value is None else f"{fmt(self.value)} +/- {fmt(self.tolerance)} = {rng}"


@dataclass(frozen=True)
class ClaimSpec:
    name: str
    kind: str
    source: str
    selectors: dict[str, dict[str, Any]]
    params: dict[str, Any]
    statement: str = ""
    over: str = "method"
    values: tuple[Any, ...] | None = None
    profiles: tuple[str, ...] | None = None

    @property
    def expected(self) -> str:
        s, p = self.selectors, self.params
        each = f"each {self.over} in {', '.join(map(str, self.values))}" if self.values else f"every {self.over}"
        if self.kind in ("ratio_at_least", "ratio_at_most"):
            op = ">=" if self.kind == "ratio_at_least" else "<="
            text = f"{_common(s['after'], s['before'])}: {_ratio_label(s['after'], s['before'])} {op} {_num(p['threshold'])}"
        elif self.kind == "drop_at_least":
            text = (f"{_common(s['before'], s['after'])}: {_diff(s['before'], s['after'])} - "
                    f"{_diff(s['after'], s['before'])} >= {_num(p['points'])} points")
        elif self.kind == "ratio_less":
            a, b = s["a_after"], s["b_after"]
            ratio = _ratio_label(a, s["a_before"])
            measure = f"1 - {ratio}" if p["measure"] == "forgotten" else ratio
            text = f"{_common(a, b)}: {p['measure']} ({measure}) at {_diff(a, b)} < at {_diff(b, a)}"
            text += f" - {_num(p['margin'])}" if p["margin"] else ""
        elif self.kind == "less_than":
            text = f"{_common(s['a'], s['b'])}: {_diff(s['a'], s['b'])} < {_diff(s['b'], s['a'])}"
            text += f" - {_num(p['margin'])} points" if p["margin"] else ""
        else:
            text = (f"{_label(s['series'])}: non-increasing over steps {', '.join(map(str, p['steps']))}"
                    f" (slack {_num(p['slack'])} points)")
        return f"{text}; {each}"

    def requests(self) -> list[dict[str, Any]]:
        """Every selector with the over field left open: what the claim reads from the results."""
        return list(self.selectors.values())


@dataclass(frozen=True)
class Golden:
    path: Path
    profile: str | None
    meta: dict[str, Any]
    numbers: list[NumberSpec]
    claims: list[ClaimSpec]

    def entries(self) -> list[NumberSpec | ClaimSpec]:
        return [*self.numbers, *self.claims]

    @property
    def environments(self) -> list[dict[str, Any]]:
        """The numeric environments its ranges were recorded in (`pulse-repro golden record` writes them);
        empty for a file whose numbers do not depend on one (the paper's)."""
        return list(self.meta.get("environments", []))

    def applies(self, entry: NumberSpec | ClaimSpec, profile: str) -> bool:
        """Whether an entry is meant for runs of this profile (entry's profiles, else the file's)."""
        profiles = entry.profiles if entry.profiles is not None else (self.profile,) if self.profile else None
        return profiles is None or profile in profiles


# ---- formatting ------------------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "missing"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, int):
        return str(x)
    return f"{x:.1f}" if abs(x - round(x, 1)) < 1e-9 else f"{x:.2f}"


def _ratio(x: float) -> str:
    return f"{x:.3f}"


def _label(sel: dict[str, Any]) -> str:
    return " ".join(f"{k}={sel[k]}" for k in IDENTITY if k in sel)


def _common(first: dict[str, Any], second: dict[str, Any]) -> str:
    return _label({k: v for k, v in first.items() if second.get(k) == v})


def _diff(first: dict[str, Any], second: dict[str, Any]) -> str:
    """The fields of `first` that differ from `second`, e.g. 'step=1'."""
    return _label({k: v for k, v in first.items() if second.get(k) != v}) or "(same)"


def _ratio_label(after: dict[str, Any], before: dict[str, Any]) -> str:
    return f"{_diff(after, before)}/{_diff(before, after)}"


# ---- loading ---------------------------------------------------------------------------------


def _err(path: Path, where: str, message: str) -> ReproError:
    return ReproError(f"{path}: {where}: {message}")


def _get(entry: dict, key: str, types: type | tuple[type, ...], path: Path, where: str, default: Any = REQUIRED):
    if key not in entry:
        if default is REQUIRED:
            raise _err(path, where, f"missing key {key!r}")
        return default
    value = entry[key]
    numeric = types is float
    if (numeric and isinstance(value, bool)) or not isinstance(value, (int, float) if numeric else types):
        name = "number" if numeric else getattr(types, "__name__", str(types))
        raise _err(path, where, f"key {key!r} must be a {name}, got {value!r}")
    if numeric:
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise _err(path, where, f"key {key!r} must be finite, got {value!r}")
    if isinstance(value, str) and key in ("name", "source", "kind") and not value.strip():
        raise _err(path, where, f"key {key!r} must not be empty")
    return value


def _check_keys(entry: dict, allowed: Iterable[str], path: Path, where: str) -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise _err(path, where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _profiles(entry: dict, path: Path, where: str) -> tuple[str, ...] | None:
    if "profiles" not in entry:
        return None
    value = entry["profiles"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(path, where, f"key 'profiles' must be a list of strings, got {value!r}")
    return tuple(value)


def _selector_value(key: str, value: Any, path: Path, where: str) -> Any:
    if key == "step":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(path, where, f"key 'step' must be an integer, got {value!r}")
    elif not isinstance(value, str):
        raise _err(path, where, f"key {key!r} must be a string, got {value!r}")
    return value


def _number(entry: Any, path: Path, index: int) -> NumberSpec:
    where = f"[[number]] #{index + 1}"
    if not isinstance(entry, dict):
        raise _err(path, where, "must be a table")
    name = _get(entry, "name", str, path, where)
    where = f"[[number]] {name!r}"
    _check_keys(entry, NUMBER_KEYS, path, where)
    source = _get(entry, "source", str, path, where)
    select = {k: _selector_value(k, _get(entry, k, object, path, where), path, where) for k in IDENTITY}
    fld = _get(entry, "field", str, path, where, "accuracy")
    if fld not in NUMBER_FIELDS:
        raise _err(path, where, f"key 'field' must be one of {', '.join(NUMBER_FIELDS)}, got {fld!r}")
    has_value, has_range = "value" in entry or "tolerance" in entry, "min" in entry or "max" in entry
    if has_value and has_range:
        raise _err(path, where, "give either 'value' and 'tolerance' or 'min' and 'max', not both")
    if not has_value and not has_range:
        raise _err(path, where, "missing key 'value' (with 'tolerance') or 'min' and 'max'")
    value = tolerance = None
    if has_value:
        value = _get(entry, "value", float, path, where)
        tolerance = _get(entry, "tolerance", float, path, where)
        if tolerance < 0:
            raise _err(path, where, f"key 'tolerance' must be >= 0, got {tolerance}")
        low, high = round(value - tolerance, 6), round(value + tolerance, 6)
    else:
        low, high = _get(entry, "min", float, path, where), _get(entry, "max", float, path, where)
        if low > high:
            raise _err(path, where, f"key 'min' ({low}) is greater than 'max' ({high})")
    return NumberSpec(name, select, low, high, source, fld, value, tolerance, _profiles(entry, path, where))


def _claim(entry: Any, path: Path, index: int) -> ClaimSpec:
    where = f"[[claim]] #{index + 1}"
    if not isinstance(entry, dict):
        raise _err(path, where, "must be a table")
    name = _get(entry, "name", str, path, where)
    where = f"[[claim]] {name!r}"
    kind = _get(entry, "kind", str, path, where)
    if kind not in KINDS:
        raise _err(path, where, f"key 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    sel_keys, param_defaults = KINDS[kind]
    _check_keys(entry, COMMON_CLAIM_KEYS + sel_keys + tuple(param_defaults), path, where)
    source = _get(entry, "source", str, path, where)
    statement = _get(entry, "statement", str, path, where, "")
    over = _get(entry, "over", str, path, where, "method")
    if over not in IDENTITY or over == "step":
        raise _err(path, where, f"key 'over' must be one of {', '.join(k for k in IDENTITY if k != 'step')}, "
                                f"got {over!r}")
    values = None
    if "values" in entry:
        raw = entry["values"]
        if not isinstance(raw, list) or not raw:
            raise _err(path, where, f"key 'values' must be a non-empty list, got {raw!r}")
        values = tuple(_selector_value(over, v, path, where + " key 'values'") for v in raw)
    selectors = {}
    for key in sel_keys:
        sel = _get(entry, key, dict, path, where)
        needed = [k for k in IDENTITY if k != over and not (kind == "non_increasing" and k == "step")]
        for k in sel:
            if k not in needed:
                why = f"is filled by 'over' ({over})" if k == over else (
                    "is given by 'steps'" if k == "step" else f"is not a record field ({', '.join(IDENTITY)})")
                raise _err(path, where, f"key {key!r}: field {k!r} {why}")
        for k in needed:
            if k not in sel:
                raise _err(path, where, f"key {key!r}: missing field {k!r}")
            _selector_value(k, sel[k], path, f"{where} key {key!r}")
        selectors[key] = dict(sel)
    params = {}
    for key, default in param_defaults.items():
        if key == "steps":
            steps = _get(entry, "steps", list, path, where)
            if len(steps) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
                raise _err(path, where, f"key 'steps' must list at least two integers, got {steps!r}")
            params[key] = tuple(steps)
        elif key == "measure":
            params[key] = _get(entry, key, str, path, where, default)
            if params[key] not in ("retained", "forgotten"):
                raise _err(path, where, f"key 'measure' must be 'retained' or 'forgotten', got {params[key]!r}")
        else:
            params[key] = _get(entry, key, float, path, where, default)
            if key in ("margin", "slack", "points") and params[key] < 0:
                raise _err(path, where, f"key {key!r} must be >= 0, got {params[key]}")
    return ClaimSpec(name, kind, source, selectors, params, statement, over, values,
                     _profiles(entry, path, where))


def load_golden(path: Path) -> Golden:
    """Parse and validate a golden file; a malformed one is a ReproError naming the entry and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ReproError(f"{path}: golden file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReproError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"golden", "number", "claim"})
    if unknown:
        raise _err(path, "top level", f"unknown key {unknown[0]!r} (allowed: golden, number, claim)")
    meta = data.get("golden", {})
    if not isinstance(meta, dict):
        raise _err(path, "top level", "key 'golden' must be a table")
    profile = _get(meta, "profile", str, path, "[golden]", None)
    envs = meta.get("environments", [])
    if not isinstance(envs, list) or not all(isinstance(e, dict) for e in envs):
        raise _err(path, "[golden]", "key 'environments' must be a list of tables")
    for key in ("number", "claim"):
        if not isinstance(data.get(key, []), list):
            raise _err(path, "top level", f"key {key!r} must be an array of tables ([[{key}]])")
    numbers = [_number(e, path, i) for i, e in enumerate(data.get("number", []))]
    claims = [_claim(e, path, i) for i, e in enumerate(data.get("claim", []))]
    seen: set[str] = set()
    for entry in [*numbers, *claims]:
        if entry.name in seen:
            raise _err(path, f"entry {entry.name!r}", "key 'name' is used twice")
        seen.add(entry.name)
    return Golden(path, profile, meta, numbers, claims)


def find_golden(profile: str, directory: Path | None = None) -> Path:
    """golden/<profile>.toml, else the one golden file whose [golden] profile is this profile."""
    directory = GOLDEN_DIR if directory is None else directory
    if not directory.is_dir():
        raise ReproError(f"no golden directory at {directory}: pass --golden FILE")
    direct = directory / f"{profile}.toml"
    if direct.is_file():
        return direct
    matches = []
    for path in sorted(directory.glob("*.toml")):
        try:
            declared = tomllib.loads(path.read_text()).get("golden", {}).get("profile")
        except (tomllib.TOMLDecodeError, AttributeError):
            continue
        if declared == profile:
            matches.append(path)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ReproError(f"several golden files in {directory} are for profile {profile!r}: "
                         f"{', '.join(p.name for p in matches)}; pass --golden FILE")
    raise ReproError(f"no golden file for profile {profile!r} in {directory} (neither {profile}.toml nor a file "
                     f"with [golden] profile = {profile!r}); pass --golden FILE")


# ---- checking --------------------------------------------------------------------------------


def _value(records: list[dict], select: dict[str, Any], fld: str = "accuracy") -> float | None:
    if fld == "accuracy":
        value = lookup(records, **select)
    else:
        value = next((r.get(fld) for r in records if all(r.get(k) == v for k, v in select.items())), None)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def check_number(records: list[dict], spec: NumberSpec) -> Verdict:
    value = _value(records, spec.select, spec.field)
    passed = value is not None and not math.isnan(value) and spec.low - 1e-9 <= value <= spec.high + 1e-9
    return Verdict(spec.name, spec.expected, _num(value), passed, spec.source)


def check_numbers(records: list[dict], golden: Golden) -> list[Verdict]:
    return [check_number(records, spec) for spec in golden.numbers]


def _values_found(records: list[dict], spec: ClaimSpec) -> list[Any]:
    found: list[Any] = []
    for r in records:
        for sel in spec.requests():
            if all(r.get(k) == v for k, v in sel.items() if k != "step") and r.get(spec.over) not in found:
                found.append(r.get(spec.over))
    return sorted(found, key=str)


def _ratio_of(records: list[dict], before: dict, after: dict) -> tuple[float | None, str]:
    b, a = _value(records, before), _value(records, after)
    if b is None or a is None:
        return None, "missing"
    if b == 0 or math.isnan(a) or math.isnan(b):
        return None, f"undefined ({_num(a)}/{_num(b)})"
    return round(a / b, 6), _ratio(a / b)


def _one(records: list[dict], spec: ClaimSpec, fill: dict[str, Any]) -> tuple[bool, str]:
    """Evaluate the claim for one value of `over`: (passed, measured text)."""
    sel = {k: {**v, **fill} for k, v in spec.selectors.items()}
    p = spec.params
    if spec.kind in ("ratio_at_least", "ratio_at_most"):
        ratio, text = _ratio_of(records, sel["before"], sel["after"])
        if ratio is None:
            return False, text
        ok = ratio >= p["threshold"] if spec.kind == "ratio_at_least" else ratio <= p["threshold"]
        return ok, text
    if spec.kind == "drop_at_least":
        b, a = _value(records, sel["before"]), _value(records, sel["after"])
        if b is None or a is None:
            return False, "missing"
        drop = round(b - a, 6)
        return drop >= p["points"], f"{_num(b)} -> {_num(a)} (drop {_num(drop)})"
    if spec.kind == "ratio_less":
        ra, ta = _ratio_of(records, sel["a_before"], sel["a_after"])
        rb, tb = _ratio_of(records, sel["b_before"], sel["b_after"])
        if ra is None or rb is None:
            return False, f"{ta} vs {tb}"
        if p["measure"] == "forgotten":
            ra, rb = round(1 - ra, 6), round(1 - rb, 6)
        return ra < rb - p["margin"], f"{_ratio(ra)} vs {_ratio(rb)}"
    if spec.kind == "less_than":
        a, b = _value(records, sel["a"]), _value(records, sel["b"])
        if a is None or b is None:
            return False, f"{_num(a)} vs {_num(b)}"
        return a < b - p["margin"], f"{_num(a)} vs {_num(b)}"
    series = [_value(records, {**sel["series"], "step": s}) for s in p["steps"]]
    text = " > ".join(_num(v) for v in series)
    if any(v is None for v in series):
        return False, text
    return all(later <= earlier + p["slack"] for earlier, later in pairwise(series)), text


def check_claim(records: list[dict], spec: ClaimSpec) -> Verdict:
    values = list(spec.values) if spec.values is not None else _values_found(records, spec)
    if not values:
        return Verdict(spec.name, spec.expected, f"missing (no {spec.over} found)", False, spec.source)
    parts, passed = [], True
    for value in values:
        ok, text = _one(records, spec, {spec.over: value})
        passed = passed and ok
        parts.append(f"{value} {text}" + ("" if ok else " (fails)"))
    return Verdict(spec.name, spec.expected, "; ".join(parts), passed, spec.source)


def check_claims(records: list[dict], golden: Golden) -> list[Verdict]:
    return [check_claim(records, spec) for spec in golden.claims]


def failure_message(verdict: Verdict, spec: NumberSpec | ClaimSpec) -> str:
    """One line for a failed check: '<name> out of range: 52.0 not in [66.1, 76.1]' for a number."""
    if isinstance(spec, NumberSpec):
        if verdict.measured == "missing":
            return f"{verdict.name}: record missing ({_label(spec.select)})"
        return f"{verdict.name} out of range: {verdict.measured} not in [{_num(spec.low)}, {_num(spec.high)}]"
    return f"{verdict.name} does not hold: expected {verdict.expected}; measured {verdict.measured}"
