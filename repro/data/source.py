"""Resolve a data source spec (a local path or `hf:<repo_id>`) to a local directory or file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro.errors import ReproError

HF_PREFIX = "hf:"


def resolve_source(spec: str, kind: str, allow_patterns: Sequence[str] | None = None) -> Path:
    """Return a local path for `spec`. `kind` names the data in error messages (e.g. "MLLMU-Bench").

    `hf:<repo_id>` downloads the dataset repo into the local hub cache (reused on later calls);
    `allow_patterns` restricts the download to the files a loader needs.
    """
    if spec.startswith(HF_PREFIX):
        repo_id = spec[len(HF_PREFIX) :].strip()
        if not repo_id:
            raise ReproError(f"{kind} source {spec!r}: empty hub repo id")
        from huggingface_hub import snapshot_download  # imported lazily: only the hub path needs it

        try:
            path = snapshot_download(repo_id, repo_type="dataset", allow_patterns=allow_patterns)
        except Exception as exc:  # noqa: BLE001 -- offline, unknown repo, gated, ...: one line, not a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReproError(
                f"{kind} source {spec!r}: cannot download from the Hugging Face hub ({first}); "
                "use a local mirror path instead"
            ) from None
        return Path(path)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ReproError(f"{kind} source not found: {path}")
    return path
