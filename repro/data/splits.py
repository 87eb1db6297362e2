"""The PULSE splits (docs/design.md, "The protocol"): fictional pool/unlearn/retain/shards, and the
behaviour-based celebrity selection, recorded in one JSON manifest.

Everything here is a pure function of (people, config, seed), so a manifest can be rebuilt
and compared; outputs are plain JSON-able dicts of person keys.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from repro.atomic import atomic_write_text
from repro.config import Profile, SplitConfig
from repro.data.records import Person
from repro.errors import DataError, ReproError


def build_fictional_splits(people: Sequence[Person], cfg: SplitConfig, seed: int) -> dict[str, Any]:
    """Draw the fictional pool, split it into unlearn/retain, and the unlearn set into shards."""
    pool_n, unlearn_n, shards_n = cfg.fictional_pool, cfg.unlearn, cfg.shards
    if shards_n < 1 or unlearn_n < 1 or unlearn_n >= pool_n:
        raise ReproError(
            f"splits: need 1 <= shards, 1 <= unlearn < fictional_pool "
            f"(got shards={shards_n}, unlearn={unlearn_n}, fictional_pool={pool_n})"
        )
    if unlearn_n % shards_n:
        raise ReproError(f"splits: unlearn={unlearn_n} is not divisible into shards={shards_n} equal shards")
    by_key = {p.key: p for p in people}
    if len(by_key) != len(people):
        raise ReproError("splits: duplicate person keys among the fictional people")
    if pool_n > len(by_key):
        raise ReproError(f"splits: fictional_pool={pool_n} but only {len(by_key)} fictional people available")

    # Sort first so the draw depends on the seed only, not on the loader's order.
    rng = random.Random(seed)
    drawn = rng.sample(sorted(by_key), pool_n)
    unlearn, retain = drawn[:unlearn_n], drawn[unlearn_n:]
    size = unlearn_n // shards_n
    shards = [sorted(unlearn[i * size : (i + 1) * size]) for i in range(shards_n)]
    check_disjoint([by_key[k] for k in unlearn], [by_key[k] for k in retain])
    return {"pool": sorted(drawn), "unlearn": sorted(unlearn), "retain": sorted(retain), "shards": shards}


def select_celebrities(scores: Mapping[str, float], cfg: SplitConfig, seed: int) -> dict[str, Any]:
    """Behaviour-based selection: the best `celebrity_keep` above `min_accuracy`, split by a seeded shuffle."""
    keep, n_unlearn, n_retain = cfg.celebrity_keep, cfg.celebrity_unlearn, cfg.celebrity_retain
    if n_unlearn < 1 or n_retain < 1 or n_unlearn + n_retain != keep:
        raise ReproError(
            f"splits: celebrity_unlearn ({n_unlearn}) + celebrity_retain ({n_retain}) must equal "
            f"celebrity_keep ({keep}), both at least 1"
        )
    # Accuracy descending, ties by key ascending, so the ranking is total and reproducible.
    ranked = sorted(scores, key=lambda k: (-float(scores[k]), k))
    cleared = [k for k in ranked if float(scores[k]) >= cfg.min_accuracy]
    if len(cleared) < keep:
        raise ReproError(
            f"splits: only {len(cleared)} of {len(scores)} celebrities reach min_accuracy="
            f"{cfg.min_accuracy}; {keep} are needed (lower splits.min_accuracy or splits.celebrity_keep)"
        )
    kept = cleared[:keep]
    shuffled = list(kept)
    random.Random(seed).shuffle(shuffled)
    return {
        "scores": {k: float(v) for k, v in sorted(scores.items())},
        "ranked": ranked,
        "kept": kept,
        "unlearn": sorted(shuffled[:n_unlearn]),
        "retain": sorted(shuffled[n_unlearn:]),
        "min_accuracy": cfg.min_accuracy,
    }


def check_disjoint(unlearn_people: Iterable[Person], retain_people: Iterable[Person]) -> None:
    """Raise if retain shares a person key or an image (by content hash) with unlearn."""
    unlearn_people, retain_people = list(unlearn_people), list(retain_people)
    shared_keys = {p.key for p in unlearn_people} & {p.key for p in retain_people}
    if shared_keys:
        raise ReproError(f"splits: person {min(shared_keys)!r} is in both unlearn and retain")
    unlearn_images = {hashlib.sha256(p.image).hexdigest(): p.key for p in unlearn_people}
    for p in retain_people:
        other = unlearn_images.get(hashlib.sha256(p.image).hexdigest())
        if other is not None:
            raise ReproError(
                f"splits: retain person {p.key!r} has the same image as unlearn person {other!r}"
            )


def build_manifest(
    profile: Profile,
    fictional_people: Sequence[Person],
    celebrity_scores: Mapping[str, float] | None,
    source_hash: str,
) -> dict[str, Any]:
    """The split manifest: every split plus what it was derived from (profile, seed, data hash)."""
    return {
        "profile": profile.name,
        "seed": profile.seed,
        "split_seed": profile.split_seed,  # the draw the splits come from (profile.splits.seed, else seed)
        "source_hash": source_hash,
        "fictional": build_fictional_splits(fictional_people, profile.splits, profile.split_seed),
        "celebrities": (
            None
            if celebrity_scores is None
            else select_celebrities(celebrity_scores, profile.splits, profile.split_seed)
        ),
    }


def write_manifest(manifest: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The manifest as sorted, indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(manifest, sort_keys=True, indent=2) + "\n")


def load_scores(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read {person_key: accuracy in percent}; name the file and the key on bad content."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(str(path), f"cannot read scores: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(
            str(path), f"expected a JSON object {{person_key: accuracy}}, got {type(data).__name__}"
        )
    scores: dict[str, float] = {}
    for key, value in data.items():
        # bool is an int in Python; a true/false score is a bug upstream, not 1.0/0.0.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(str(path), f"accuracy must be a number, got {value!r}", field=key)
        if not math.isfinite(value) or not 0.0 <= value <= 100.0:
            raise DataError(str(path), f"accuracy must be in [0, 100] (percent), got {value!r}", field=key)
        scores[key] = float(value)
    return scores


def data_hash(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> str:
    """sha256 over the files under `paths` (directories walked): sorted relative paths and their bytes.

    Relative paths (not absolute) so the same data copied elsewhere hashes the same; every name and
    content is length-framed so moving bytes between a name and a content changes the hash.
    Several roots are hashed in the order given, each framed by its file count.
    """
    roots = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    h = hashlib.sha256()
    for root in map(Path, roots):
        if root.is_dir():
            files = {f.relative_to(root).as_posix(): f for f in root.rglob("*") if f.is_file()}
        elif root.is_file():
            files = {root.name: root}
        else:
            raise ReproError(f"data hash: {root} does not exist")
        h.update(len(files).to_bytes(8, "big"))
        for rel in sorted(files):
            name = rel.encode("utf-8")
            content = files[rel].read_bytes()
            h.update(len(name).to_bytes(8, "big") + name + len(content).to_bytes(8, "big") + content)
    return h.hexdigest()
