"""A run directory's profile.json, read once the same way by every command that judges or reports the run:
unreadable JSON or a field of the wrong kind is one line naming the file and the field, never a traceback
three calls down."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import ReproError

DEFAULT_RESAMPLES = 1000  # EvalConfig's default, for a run written before profile.json recorded it


@dataclass(frozen=True)
class RunProfile:
    """What the judges of a run read from its profile.json."""

    name: str
    seed: int
    eval: dict[str, Any] | None  # None: the file has no eval table (a run written before it was recorded)
    resamples: int  # eval.bootstrap_resamples
    data: dict[str, Any]  # the whole resolved profile, as the run wrote it

    def bootstrap(self) -> tuple[int, int]:
        """(resamples, seed): every judge of a run draws its intervals alike."""
        return self.resamples, self.seed


def _integer(value: Any, path: Path, field: str, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ReproError(f"{path}: {field} is {value!r}, not a whole number of at least {lowest}")
    return value


def read_run_profile(run_dir: Path) -> RunProfile:
    """The run's profile.json, validated; ReproError (file, field) when it is missing or malformed."""
    path = Path(run_dir) / "profile.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReproError(f"{run_dir}: not a run directory (no profile.json): give the --out of `pulse-repro all`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReproError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ReproError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ReproError(f"{path}: a JSON object was expected, not {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ReproError(f"{path}: name is {name!r}, not a profile name")
    evaluation = data.get("eval")
    if evaluation is not None and not isinstance(evaluation, dict):
        raise ReproError(f"{path}: eval is {evaluation!r}, not a table")
    seed = _integer(data.get("seed", 0), path, "seed", -(2 ** 63))
    resamples = _integer((evaluation or {}).get("bootstrap_resamples", DEFAULT_RESAMPLES), path,
                         "eval.bootstrap_resamples", 1)
    return RunProfile(name, seed, evaluation, resamples, data)


def run_bootstrap(run_dir: Path) -> tuple[int, int]:
    """(resamples, seed) of a run's profile; the defaults for a directory of results alone (no profile.json)."""
    if not (Path(run_dir) / "profile.json").exists():
        return DEFAULT_RESAMPLES, 0
    return read_run_profile(run_dir).bootstrap()
