"""`pulse-repro verify RUN_DIR [--golden FILE]`: the verdict of a run against a golden file."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from tabulate import tabulate

from repro.config import EvalConfig
from repro.environment import differences
from repro.errors import ReproError
from repro.eval.benchmarks import benchmark_of
from repro.experiments.results import judged_results
from repro.report.golden import (
    Golden,
    Verdict,
    check_claims,
    check_numbers,
    find_golden,
    goldens_for,
    load_golden,
)
from repro.report.settings import run_eval, settings_differences
from repro.run_profile import run_bootstrap

HEADERS = ("name", "expected", "measured", "verdict")


def run_profile(records: list[dict], where: Path) -> str:
    """The one profile a results file was made with."""
    profiles = sorted({str(r.get("profile")) for r in records})
    if len(profiles) != 1:
        raise ReproError(f"{where}: records from several profiles ({', '.join(profiles)}): verify one run at a time")
    return profiles[0]


def run_environment(run_dir: Path) -> dict:
    """The run's environment.json, or {} when it has none (an environment nobody recorded)."""
    path = run_dir / "environment.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ReproError(f"{path}: not valid JSON: {exc}") from None


def environment_differences(run_dir: Path, golden: Golden) -> list[str]:
    """How the run's numeric environment differs from every one the golden file's ranges were recorded
    in; empty when one matches, or when the file records none (its numbers hold anywhere)."""
    if not golden.environments:
        return []
    return differences(run_environment(run_dir), golden.environments)


def environment_line(diffs: list[str], golden: Golden, strict: bool) -> str:
    if not golden.environments:
        return f"Environment: {golden.path.name} records none; its numbers are checked as they stand"
    covered = "; ".join(f"{e.get('device')} {e.get('cpu_capability', '')}".strip()
                        + f", {e.get('threads', '?')} threads, torch {e.get('torch')}" for e in golden.environments)
    if not diffs:
        return f"Environment: one {golden.path.name} was recorded in ({covered})"
    consequence = ("ranges fail as usual (--strict)" if strict else
                   "ranges outside are reported as ENV DIFFERS, not failed (--strict fails them); claims are judged")
    return (f"Environment differs from what {golden.path.name} was recorded in ({covered}): "
            f"{'; '.join(diffs)}; {consequence}")


def _rows(verdicts: list[Verdict], with_source: bool, with_sampling: bool) -> list[list[str]]:
    return [[v.name, v.expected, v.measured, v.label] + ([v.sampling or "-"] if with_sampling else [])
            + ([v.source] if with_source else []) for v in verdicts]


def render_verdict(numbers: list[Verdict], claims: list[Verdict], golden: Golden, run_dir: Path, profile: str,
                   markdown: bool = False, environment: str = "") -> str:
    """The verdict as text: the environment line, numbers, then claims, then 'N passed, M failed' (and how
    many ranges another environment excused) as the last line."""
    headers = list(HEADERS) + (["source"] if markdown else [])
    widths = None if markdown else [None, 60, 60, None]
    parts = [environment] if environment else []
    parts.append(f"{'# ' if markdown else ''}Verdict: {run_dir} against {golden.path} (run profile {profile})")
    for title, verdicts in (("Numbers", numbers), ("Claims", claims)):
        if verdicts:
            sampling = any(v.sampling for v in verdicts)
            heads = headers[:4] + (["vs the paper's sampling error"] if sampling else []) + headers[4:]
            table = tabulate(_rows(verdicts, markdown, sampling), heads, tablefmt="github",
                             maxcolwidths=None if widths is None else widths + [None] * sampling,
                             disable_numparse=True)
            parts.append(f"{'## ' if markdown else ''}{title}\n\n{table}")
    everything = numbers + claims
    # each verdict counted once, under its label (an inconclusive claim stays inconclusive, excused or not)
    excusable = [v for v in everything if v.excused and not v.passed and not v.inconclusive]
    failed, excused = sum(v.failed for v in everything), len(excusable)
    last = f"{sum(v.passed for v in everything)} passed, {failed} failed"
    inconclusive = sum(v.inconclusive for v in everything)
    if inconclusive:
        last += f", {inconclusive} inconclusive (the 95% interval straddles the threshold)"
    by_settings = sum(v.excuse == "SETTINGS DIFFER" for v in excusable)
    if excused - by_settings:
        last += f", {excused - by_settings} outside ranges recorded in another environment (not failed)"
    if by_settings:
        last += f", {by_settings} not as recorded under other evaluation settings (not failed)"
    parts.append(last)
    return "\n\n".join(parts) + "\n"


def verify_run(run_dir: Path, golden: Path | None = None, strict: bool = False) -> int:
    """Check RUN_DIR/results.jsonl against a golden file (default: the one for the run's profile), print the
    verdict table, write RUN_DIR/report/verdict.md; return 1 on any FAIL (with `strict`, also on an
    INCONCLUSIVE claim), else 0. A range missed in an environment the file was not recorded in is excused
    unless `strict`; claims always count."""
    run_dir = Path(run_dir)
    results = run_dir / "results.jsonl"
    records = judged_results(results)
    if not records:
        raise ReproError(f"{results}: no results to verify")
    profile = run_profile(records, results)
    spec = load_golden(golden if golden is not None else golden_for_run(run_dir, profile))
    if spec.profile is not None and spec.profile != profile:
        raise ReproError(f"{spec.path} holds the golden ranges of profile {spec.profile!r}, and {run_dir} is a run "
                         f"of {profile!r}: give its own file (or none: golden/<profile>.toml)")
    if not spec.numbers and not spec.claims:
        raise ReproError(f"{spec.path}: no [[number]] or [[claim]] entries: nothing to verify")
    diffs = environment_differences(run_dir, spec)
    settings = settings_differences(run_dir, spec.meta, spec.profile)
    resamples, seed = run_bootstrap(run_dir)
    numbers, claims = check_numbers(records, spec), check_claims(records, spec, resamples, seed)
    if diffs and not strict:  # a missing record or a wrong count is not the machine's doing
        numbers = [replace(v, excused=True) if v.excusable else v for v in numbers]
    if settings and not strict:  # the stronger reason: the run measured something else, so neither its
        # ranges nor the claims that held in the file's runs are expected to hold
        numbers = [replace(v, excused=True, excuse="SETTINGS DIFFER") for v in numbers]
        claims = [replace(v, excused=True, excuse="SETTINGS DIFFER") for v in claims]
    env_line = environment_line(diffs, spec, strict)
    if settings:
        env_line += (f"\nSettings differ from those {spec.path.name} was recorded with: {'; '.join(settings)}; "
                     + ("ranges fail as usual (--strict)" if strict else
                        "ranges missed and claims not holding are reported as SETTINGS DIFFER, not failed "
                        "(--strict fails them)"))
    print(render_verdict(numbers, claims, spec, run_dir, profile, environment=env_line), end="")
    out = run_dir / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "verdict.md").write_text(render_verdict(numbers, claims, spec, run_dir, profile, markdown=True,
                                                       environment=env_line))
    except OSError as exc:  # a read-only run (an archive, a colleague's share) is still verified
        print(f"pulse-repro: verdict not written to {out / 'verdict.md'}: {exc.strerror}", file=sys.stderr)
    return 1 if any(v.failed or (strict and v.inconclusive) for v in numbers + claims) else 0


def golden_for_run(run_dir: Path, profile: str) -> Path:
    """Among the profile's golden files, the first recorded with the run's measuring settings whose pinned
    benchmarks the run measured too (a run with eval.shots = 1 and MLLMU-Bench's tasks: the file recorded so;
    one-shot without the tasks: none of them, as that file's task ranges would fail unmeasured); else the
    profile's golden file (find_golden), whose differing settings verify reports."""
    measured = run_benchmarks(run_dir)
    for path in goldens_for(profile):
        spec = load_golden(path)
        if not settings_differences(run_dir, spec.meta, spec.profile) and pinned_benchmarks(spec) <= measured:
            return path
    return find_golden(profile)


def pinned_benchmarks(spec: Golden) -> set[str]:
    """The benchmarks (eval.benchmarks) whose records a golden file pins."""
    return {b for n in spec.numbers if (b := benchmark_of(str(n.select.get("split", "")))) is not None}


def run_benchmarks(run_dir: Path) -> set[str]:
    """The benchmarks a run measured, from its profile.json (the kit's default without one)."""
    return set((run_eval(run_dir) or {}).get("benchmarks", EvalConfig().benchmarks))
