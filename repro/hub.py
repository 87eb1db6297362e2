"""What a profile reads from the Hugging Face hub, whether the hub answers, and what the local cache holds.

Decided once, before anything reads from the hub: one short probe (or HF_HUB_OFFLINE). Where the hub does
not answer, huggingface_hub is put in offline mode, so that a cached model or data set loads at once
instead of after minutes of retries; where something the run needs is not cached, one line says what and
how to get it there (`pulse-repro fetch` on a machine with network).
"""

from __future__ import annotations

import fnmatch
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from repro.config import Profile
from repro.data.mmbench import PARQUET_GLOB, TSV_NAME
from repro.errors import ReproError
from repro.flags import flag_set

DEFAULT_ENDPOINT = "https://huggingface.co"  # huggingface_hub's own default for HF_ENDPOINT
# A reachable hub answers a HEAD in well under a second; 3 s bounds the wait on a node whose firewall drops
# packets silently (kit choice).
PROBE_TIMEOUT_S = 3.0

# The files of a checkpoint the kit reads, of every model family (safetensors only: pickled weights are never loaded).
MODEL_FILES = ("*.json", "*.safetensors", "tokenizer.model", "*.jinja")
# What must be in a model snapshot, by what reads it: each group is met when one of its patterns matches (the
# image processor's settings are in preprocessor_config.json on the hub, in processor_config.json as
# transformers 5 saves a processor).
PROCESSOR_NEEDS = (("config.json",), ("preprocessor_config.json", "processor_config.json"), ("tokenizer_config.json",),
                   ("tokenizer.json", "tokenizer.model"))
WEIGHT_NEEDS = (("*.safetensors",),)
# The files each data loader reads: MMBench dev-en (parquet as lmms-lab/MMBench lays it out, or a VLMEvalKit
# TSV); MLLMU-Bench whole (its configs are read by name).
DATA_FILES = {"mllmu": None, "mmbench": (PARQUET_GLOB, TSV_NAME), "mmbench_train": None}


@dataclass(frozen=True)
class HubRepo:
    """One hub repository a run reads: a model or a data set, the files it needs, and which profile key
    names it (for the line that says how to replace it with a local copy)."""

    kind: str  # "model" or "dataset": huggingface_hub's repo_type
    repo_id: str
    key: str  # the profile key: model.source, data.mllmu, ...
    allow_patterns: tuple[str, ...] | None
    needs: tuple[tuple[str, ...], ...] = ()

    def __str__(self) -> str:
        return f"{self.kind} {self.repo_id}"

    @property
    def patterns(self) -> list[str] | None:
        """`allow_patterns` as huggingface_hub takes it."""
        return list(self.allow_patterns) if self.allow_patterns else None


def hub_repos(profile: Profile, weights: bool = True, model: bool = True) -> list[HubRepo]:
    """The hub repositories `profile` reads: its model (the processor and config, and with `weights` the
    weights) unless `model` is false, and every `hf:` data source."""
    repos = []
    source = profile.model.source
    if model and source != "tiny" and not Path(source).expanduser().exists():
        needs = PROCESSOR_NEEDS + (WEIGHT_NEEDS if weights else ())
        repos.append(HubRepo("model", source, "model.source", MODEL_FILES, needs))
    for key in ("mllmu", "mmbench", "mmbench_train"):
        spec = getattr(profile.data, key)
        if spec.startswith("hf:"):
            repos.append(dataset_repo(spec[3:].strip(), key))
    return repos


def dataset_repo(repo_id: str, key: str) -> HubRepo:
    """A data set on the hub read by the loader of `key` (mllmu, mmbench, mmbench_train)."""
    patterns = DATA_FILES[key]
    return HubRepo("dataset", repo_id, f"data.{key}", patterns, (patterns,) if patterns else ())


def endpoint(env: Mapping[str, str] = os.environ) -> str:
    return env.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def fetch_command(profile: str, overrides: Sequence[str]) -> str:
    """The `pulse-repro fetch` line that gets what a command line's profile (name or path, and --set) reads."""
    return " ".join(["pulse-repro fetch --profile", profile, *(f"--set {o}" for o in overrides)])


def hub_cache() -> Path:
    """The hub cache huggingface_hub reads (HF_HUB_CACHE, else HF_HOME/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline_by_setting() -> bool:
    return flag_set("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def probe(url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the hub answers (any HTTP status is an answer); otherwise why not, in a few words."""
    url = url or endpoint()
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/api/whoami-v2", method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return None  # it answered (401 without a token)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            return "its host name does not resolve"
        if isinstance(reason, TimeoutError):
            return f"no answer in {timeout:g} s"
        return str(getattr(reason, "strerror", None) or reason)
    except TimeoutError:
        return f"no answer in {timeout:g} s"
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def go_offline() -> None:
    """huggingface_hub (and transformers, which asks it) in offline mode from here on, in this process and
    in every process it starts."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True  # read once at import: the variable alone would come too late


def _matches(names: list[str], patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for name in names for pattern in patterns)


def cached_snapshot(repo: HubRepo) -> Path | None:
    """The repository's snapshot in the local cache (huggingface_hub's own look-up), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo.repo_id, repo_type=repo.kind, local_files_only=True,
                                      allow_patterns=repo.patterns))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def missing(repo: HubRepo) -> str | None:
    """What of `repo` the local cache lacks, in words ("model X", "model X's *.safetensors"), or None."""
    path = cached_snapshot(repo)
    names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()] if path else []
    if not names:
        return str(repo)
    unmet = [" or ".join(group) for group in repo.needs if not _matches(names, group)]
    return f"{repo}'s {', '.join(unmet)}" if unmet else None


def missing_from_cache(repos: list[HubRepo]) -> list[tuple[HubRepo, str]]:
    """(repo, what the cache lacks of it) for each repository not wholly cached."""
    return [(repo, what) for repo in repos if (what := missing(repo)) is not None]


def fetch_hint(fetch_command: str, repos: list[HubRepo], local: str | None = None) -> str:
    local = local or "give local copies with " + " ".join(f"--set {r.key}=DIR" for r in repos)
    return (f"run `{fetch_command}` on a machine with network and copy its HF cache "
            f"here (HF_HOME; this one reads {hub_cache()}), or {local}")


def prepare(profile: Profile, fetch_command: str, weights: bool = True, model: bool = True, say=print) -> None:
    """Before anything reads from the hub: work offline from the cache when the hub does not answer (or
    HF_HUB_OFFLINE is set), and stop with one line when the cache lacks something the run needs.
    `fetch_command` is the `pulse-repro fetch` line that would get it (the profile and its --set)."""
    prepare_repos(hub_repos(profile, weights=weights, model=model), f"profile {profile.name}", fetch_command, say)


def prepare_repos(repos: list[HubRepo], name: str, fetch_command: str, say=print, local: str | None = None) -> None:
    """`prepare` for these repositories; `name`, `fetch_command` and `local` (how to use a local copy instead,
    default: the profile keys) for the line that says what is missing."""
    if not repos:
        return
    if offline_by_setting():
        why = "HF_HUB_OFFLINE is set"
    else:
        reason = probe()
        if reason is None:
            return
        why = f"the Hugging Face hub ({endpoint()}) is unreachable: {reason}"
    go_offline()
    lacking = missing_from_cache(repos)
    if lacking:
        raise ReproError(f"{why}, and the HF cache {hub_cache()} does not hold {'; '.join(w for _, w in lacking)} "
                         f"for {name}: {fetch_hint(fetch_command, [r for r, _ in lacking], local)}")
    say(f"pulse-repro: {why}; working offline from the HF cache {hub_cache()}")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())  # stat follows the blob links


def fetch(profile: Profile, local_dir: Path | None = None, say=print) -> list[tuple[HubRepo, Path, int]]:
    """Download everything `profile` reads from the hub (model snapshot, data sets) into the HF cache, or
    under `local_dir`/<repo id>; (repo, path, bytes) for each."""
    repos = hub_repos(profile)
    if not repos:
        say(f"profile {profile.name} reads nothing from the Hugging Face hub (model.source = "
            f"{profile.model.source!r}, data = {profile.data.mllmu!r} / {profile.data.mmbench!r}): nothing to fetch")
        return []
    if offline_by_setting():
        raise ReproError("HF_HUB_OFFLINE is set: nothing can be fetched; unset it on a machine with network")
    reason = probe()
    if reason is not None:
        raise ReproError(f"cannot fetch {', '.join(str(r) for r in repos)}: the Hugging Face hub ({endpoint()}) "
                         f"is unreachable ({reason}); run this command on a machine with network, then copy its "
                         "HF cache (HF_HOME) to this one")
    from huggingface_hub import snapshot_download

    done = []
    for repo in repos:
        say(f"fetching {repo} ({', '.join(repo.allow_patterns) if repo.allow_patterns else 'every file'})")
        target = None if local_dir is None else local_dir / repo.repo_id
        try:
            path = Path(snapshot_download(repo.repo_id, repo_type=repo.kind, local_dir=target,
                                          allow_patterns=repo.patterns))
        except Exception as exc:  # noqa: BLE001 -- gated, unknown, a broken connection: one line each
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReproError(f"cannot fetch {repo}: {first}") from None
        done.append((repo, path, _size(path)))
    return done
