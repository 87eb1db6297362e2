"""Golden files: what "reproduced" means, in data (docs/design.md, "Golden files and verification").

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
    kind = "ratio_at_least"                            # repro/report/claims.py: the kinds
    over = "method"                                    # optional, default "method"
    values = ["ga", "ga_klr", "npo"]                   # optional, default: every value found in the records
    before = {experiment = "finetuned", target = "proj+llm", step = 0, split = "mmbench", modality = "all"}
    after = {experiment = "finetuned", target = "proj+llm", step = 1, split = "mmbench", modality = "all"}
    threshold = 0.85

A selector names every record identity field (experiment, method, target, step, split, modality) except
the `over` field, which each value fills in (a `non_increasing` series also leaves out `step`).
A record a check needs and the results lack is a FAIL with measured "missing", never a crash.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import repro
from repro.errors import ReproError
from repro.experiments.results import IDENTITY
from repro.report.claims import CLAIM_KINDS, FAIL, INCONCLUSIVE, PASS, ClaimKind, combine
from repro.report.evidence import Evidence, find, value_of
from repro.report.toml_fields import check_keys as _check_keys
from repro.report.toml_fields import entry_error as _err
from repro.report.toml_fields import get as _get
from repro.report.wording import label as _label
from repro.report.wording import num as _num

# The source tree's golden/ (an installed image sets PULSE_GOLDEN to where it copied them).
GOLDEN_DIR = Path(os.environ.get("PULSE_GOLDEN", Path(repro.__file__).resolve().parents[1] / "golden"))

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
    # A range missed in an environment the golden file was not recorded in (or under other evaluation
    # settings) is reported, not failed; `excuse` says which.
    excused: bool = False
    excuse: str = "ENV DIFFERS"
    # Whether another environment can explain a miss: only a measured value that floats decide. A missing
    # record, or a count (the protocol's size), fails on every machine.
    excusable: bool = True
    # A claim whose 95% interval straddles its threshold: neither shown nor refuted by this run.
    inconclusive: bool = False
    # A number with a sampling interval, against the paper's value: "consistent" or "differs" (within or
    # beyond their combined sampling error), "" where there is no interval to judge by.
    sampling: str = ""

    @property
    def label(self) -> str:
        if self.passed:
            return "PASS"
        return "INCONCLUSIVE" if self.inconclusive else self.excuse if self.excused else "FAIL"

    @property
    def failed(self) -> bool:
        return not self.passed and not self.excused and not self.inconclusive


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
    def claim_kind(self) -> ClaimKind:
        return CLAIM_KINDS.get(self.kind)

    @property
    def expected(self) -> str:
        each = f"each {self.over} in {', '.join(map(str, self.values))}" if self.values else f"every {self.over}"
        return f"{self.claim_kind.describe(self.selectors, self.params)}; {each}"

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


# ---- loading ---------------------------------------------------------------------------------


def _profiles(entry: dict, path: Path, where: str) -> tuple[str, ...] | None:
    if "profiles" not in entry:
        return None
    value = entry["profiles"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(path, where, f"key 'profiles' must be a list of strings, got {value!r}")
    return tuple(value)


def _selector_value(field: str, value: Any, path: Path, where: str, what: str) -> Any:
    """A record identity value: `step` an integer, every other field a string. `what` names where it was
    given (a key, a selector's field, an item of 'values')."""
    if field == "step":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(path, where, f"{what} must be an integer, got {value!r}")
    elif not isinstance(value, str):
        raise _err(path, where, f"{what} must be a string, got {value!r}")
    return value


def _number(entry: Any, path: Path, index: int) -> NumberSpec:
    where = f"[[number]] #{index + 1}"
    if not isinstance(entry, dict):
        raise _err(path, where, "must be a table")
    name = _get(entry, "name", str, path, where)
    where = f"[[number]] {name!r}"
    _check_keys(entry, NUMBER_KEYS, path, where)
    source = _get(entry, "source", str, path, where)
    select = {k: _selector_value(k, _get(entry, k, object, path, where), path, where, f"key {k!r}") for k in IDENTITY}
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
    if kind not in CLAIM_KINDS:
        raise _err(path, where, f"key 'kind' must be one of {', '.join(CLAIM_KINDS.names())}, got {kind!r}")
    claim_kind = CLAIM_KINDS.get(kind)
    _check_keys(entry, COMMON_CLAIM_KEYS + claim_kind.selectors + tuple(p.name for p in claim_kind.params),
                path, where)
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
        values = tuple(_selector_value(over, v, path, where, f"key 'values': each {over}") for v in raw)
    selectors = {}
    for key in claim_kind.selectors:
        sel = _get(entry, key, dict, path, where)
        needed = [k for k in IDENTITY if k != over and not (claim_kind.step_from_params and k == "step")]
        for k in sel:
            if k not in needed:
                why = f"is filled by 'over' ({over})" if k == over else (
                    "is given by 'steps'" if k == "step" else f"is not a record field ({', '.join(IDENTITY)})")
                raise _err(path, where, f"key {key!r}: field {k!r} {why}")
        for k in needed:
            if k not in sel:
                raise _err(path, where, f"key {key!r}: missing field {k!r}")
            _selector_value(k, sel[k], path, where, f"key {key!r}: field {k!r}")
        selectors[key] = dict(sel)
    params = {p.name: p.parse(entry, path, where) for p in claim_kind.params}
    return ClaimSpec(name, kind, source, selectors, params, statement, over, values,
                     _profiles(entry, path, where))


def load_golden(path: Path) -> Golden:
    """Parse and validate a golden file; a malformed one is a ReproError naming the entry and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ReproError(f"{path}: golden file not found") from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, unreadable, not text
        raise ReproError(f"{path}: cannot be read as a golden file ({getattr(exc, 'strerror', None) or exc})") from None
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


def _declaring(profile: str, directory: Path) -> list[Path]:
    """The files in `directory` whose [golden] profile is `profile`, in name order."""
    found = []
    for path in sorted(directory.glob("*.toml")):
        try:
            declared = tomllib.loads(path.read_text()).get("golden", {}).get("profile")
        except (tomllib.TOMLDecodeError, AttributeError):
            continue
        if declared == profile:
            found.append(path)
    return found


def goldens_for(profile: str, directory: Path | None = None) -> list[Path]:
    """Every golden file for `profile`: golden/<profile>.toml first, then the files declaring it."""
    directory = GOLDEN_DIR if directory is None else directory
    if not directory.is_dir():
        return []
    direct = directory / f"{profile}.toml"
    return ([direct] if direct.is_file() else []) + [p for p in _declaring(profile, directory) if p != direct]


def find_golden(profile: str, directory: Path | None = None) -> Path:
    """golden/<profile>.toml, else the one golden file whose [golden] profile is this profile."""
    directory = GOLDEN_DIR if directory is None else directory
    if not directory.is_dir():
        raise ReproError(f"no golden directory at {directory}: pass --golden FILE")
    direct = directory / f"{profile}.toml"
    if direct.is_file():
        return direct
    matches = _declaring(profile, directory)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ReproError(f"several golden files in {directory} are for profile {profile!r}: "
                         f"{', '.join(p.name for p in matches)}; pass --golden FILE")
    raise ReproError(f"no golden file for profile {profile!r} in {directory} (neither {profile}.toml nor a file "
                     f"with [golden] profile = {profile!r}); pass --golden FILE")


# ---- checking --------------------------------------------------------------------------------


def check_number(records: list[dict], spec: NumberSpec) -> Verdict:
    """The fixed window (the golden range), and beside it, for a number with a value (the paper's) and a
    record with an interval, whether the two differ by less than their combined sampling error."""
    value = value_of(records, spec.select, spec.field)
    passed = value is not None and not math.isnan(value) and spec.low - 1e-9 <= value <= spec.high + 1e-9
    record = find(records, spec.select) or {}
    measured = _num(value)
    if spec.field == "accuracy" and record.get("ci_low") is not None and value is not None:
        measured += f" [{_num(record['ci_low'])}, {_num(record['ci_high'])}]"
    sampling = ""
    if spec.field == "accuracy" and spec.value is not None and value is not None:
        sampling = sampling_agreement(record, spec.value)
    excusable = value is not None and spec.field not in COUNT_FIELDS
    return Verdict(spec.name, spec.expected, measured, passed, spec.source, sampling=sampling, excusable=excusable)


COUNT_FIELDS = ("n", "clusters")  # what the protocol's size fixes, whatever the machine


Z95 = 1.959964


def sampling_agreement(record: dict, paper: float) -> str:
    """"consistent" when the run's accuracy and the paper's differ by less than 1.96 times their combined
    standard error, else "differs"; "" for a record without an interval.

    The run's standard error is its bootstrap interval's half-width / 1.96. The paper's cell is the same
    design (the same number of people, five questions each, or MMBench's questions), so its standard error
    is the run's design effect at the paper's accuracy: the run's clustered variance scaled by the binomial
    variance p(1 - p) at the paper's accuracy over that at the run's (the binomial at the paper's accuracy
    over the run's n questions when the run's accuracy is 0 or 100)."""
    low, high, accuracy, n = record.get("ci_low"), record.get("ci_high"), record.get("accuracy"), record.get("n")
    if low is None or high is None or accuracy is None or not n:
        return ""
    se_run = (high - low) / (2 * Z95)
    p_run, p_paper = accuracy / 100, paper / 100
    if 0 < p_run < 1:
        se_paper = se_run * math.sqrt(p_paper * (1 - p_paper) / (p_run * (1 - p_run)))
    else:
        se_paper = 100 * math.sqrt(p_paper * (1 - p_paper) / n)
    combined = math.hypot(se_run, se_paper)
    apart = abs(accuracy - paper)
    return "consistent" if (apart < Z95 * combined if combined > 0 else apart == 0) else "differs"


def check_numbers(records: list[dict], golden: Golden) -> list[Verdict]:
    return [check_number(records, spec) for spec in golden.numbers]


def _values_found(records: list[dict], spec: ClaimSpec) -> list[Any]:
    found: list[Any] = []
    for r in records:
        for sel in spec.requests():
            if all(r.get(k) == v for k, v in sel.items() if k != "step") and r.get(spec.over) not in found:
                found.append(r.get(spec.over))
    return sorted(found, key=str)


def check_claim(records: list[dict], spec: ClaimSpec, resamples: int, seed: int) -> Verdict:
    """The claim for every value of `over`, each against its 95% interval (repro/report/claims.py): PASS
    when every value passes, FAIL when one fails, INCONCLUSIVE otherwise. `resamples` and `seed` are the
    run's own (its profile's eval.bootstrap_resamples and seed), so every judge of a run draws alike."""
    values = list(spec.values) if spec.values is not None else _values_found(records, spec)
    if not values:
        return Verdict(spec.name, spec.expected, f"missing (no {spec.over} found)", False, spec.source)
    ev = Evidence(records, resamples, seed)
    parts, verdicts = [], []
    for value in values:
        got = spec.claim_kind.check(ev, {k: {**v, spec.over: value} for k, v in spec.selectors.items()}, spec.params)
        verdicts.append(got.verdict)
        parts.append(f"{value} {got.text}" + {PASS: "", FAIL: " (fails)", INCONCLUSIVE: " (inconclusive)"}[got.verdict])
    verdict = combine(verdicts)
    return Verdict(spec.name, spec.expected, "; ".join(parts), verdict == PASS, spec.source,
                   inconclusive=verdict == INCONCLUSIVE)


def check_claims(records: list[dict], golden: Golden, resamples: int, seed: int) -> list[Verdict]:
    return [check_claim(records, spec, resamples, seed) for spec in golden.claims]


def failure_message(verdict: Verdict, spec: NumberSpec | ClaimSpec) -> str:
    """One line for a failed check: '<name> out of range: 52.0 not in [66.1, 76.1]' for a number."""
    if isinstance(spec, NumberSpec):
        if verdict.measured == "missing":
            return f"{verdict.name}: record missing ({_label(spec.select)})"
        return f"{verdict.name} out of range: {verdict.measured} not in [{_num(spec.low)}, {_num(spec.high)}]"
    return f"{verdict.name} does not hold: expected {verdict.expected}; measured {verdict.measured}"
