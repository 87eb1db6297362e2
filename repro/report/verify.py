"""`pulse-repro verify RUN_DIR [--golden FILE]`: the verdict of a run against a golden file."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from repro.errors import ReproError
from repro.experiments.results import read_results
from repro.report.golden import Golden, Verdict, check_claims, check_numbers, find_golden, load_golden

HEADERS = ("name", "expected", "measured", "verdict")


def run_profile(records: list[dict], where: Path) -> str:
    """The one profile a results file was made with."""
    profiles = sorted({str(r.get("profile")) for r in records})
    if len(profiles) != 1:
        raise ReproError(f"{where}: records from several profiles ({', '.join(profiles)}): verify one run at a time")
    return profiles[0]


def _rows(verdicts: list[Verdict], with_source: bool) -> list[list[str]]:
    return [[v.name, v.expected, v.measured, "PASS" if v.passed else "FAIL"] + ([v.source] if with_source else [])
            for v in verdicts]


def render_verdict(numbers: list[Verdict], claims: list[Verdict], golden: Golden, run_dir: Path, profile: str,
                   markdown: bool = False) -> str:
    """The verdict as text: numbers, then claims, then 'N passed, M failed' as the last line."""
    headers = list(HEADERS) + (["source"] if markdown else [])
    widths = None if markdown else [None, 60, 60, None]
    parts = [f"{'# ' if markdown else ''}Verdict: {run_dir} against {golden.path} (run profile {profile})"]
    if golden.profile is not None and golden.profile != profile:
        parts.append(f"note: {golden.path.name} is for profile {golden.profile!r}, this run is {profile!r}; "
                     "its numbers are not expected to hold here")
    for title, verdicts in (("Numbers", numbers), ("Claims", claims)):
        if verdicts:
            table = tabulate(_rows(verdicts, markdown), headers, tablefmt="github", maxcolwidths=widths,
                             disable_numparse=True)
            parts.append(f"{'## ' if markdown else ''}{title}\n\n{table}")
    everything = numbers + claims
    failed = sum(not v.passed for v in everything)
    parts.append(f"{len(everything) - failed} passed, {failed} failed")
    return "\n\n".join(parts) + "\n"


def verify_run(run_dir: Path, golden: Path | None = None) -> int:
    """Check RUN_DIR/results.jsonl against a golden file (default: the one for the run's profile), print the
    verdict table, write RUN_DIR/report/verdict.md; return 0 if every check passed, else 1."""
    run_dir = Path(run_dir)
    results = run_dir / "results.jsonl"
    records = read_results(results)
    if not records:
        raise ReproError(f"{results}: no results to verify")
    profile = run_profile(records, results)
    spec = load_golden(golden if golden is not None else find_golden(profile))
    if not spec.numbers and not spec.claims:
        raise ReproError(f"{spec.path}: no [[number]] or [[claim]] entries: nothing to verify")
    numbers, claims = check_numbers(records, spec), check_claims(records, spec)
    print(render_verdict(numbers, claims, spec, run_dir, profile), end="")
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdict.md").write_text(render_verdict(numbers, claims, spec, run_dir, profile, markdown=True))
    return 0 if all(v.passed for v in numbers + claims) else 1
