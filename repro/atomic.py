"""Files written whole or not at all: a reader sees the old content or the new, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from repro.errors import ReproError


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def temporary_dir(path: Path) -> Path:
    """A new directory beside `path`, to be filled and then renamed over it, with the permissions `mkdir`
    would give `path`. mkdtemp's own (0700) would follow it through the rename: another user (the host's
    reviewer of a container's run, a container user reading a bound directory) could not read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) through a temporary file in the same directory, flushed to disk, then renamed
    over `path`; on any failure the temporary file is removed. The temporary name is unique, since
    concurrent runs share the unit store."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it, not mkstemp's 0600 (see temporary_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """`path` as a directory to write `what` into, made with its parents; a file in the way, or a place that
    cannot be written, is one line naming it (ReproError), not an OSError from deep in a writer."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ReproError(f"{path}: a file is in the way of the directory for {what}: move it or give another path") from None
    except NotADirectoryError:
        raise ReproError(f"{path}: a file is in the way of the directory for {what} (a parent is a file)") from None
    except OSError as exc:
        raise ReproError(f"{path}: cannot make the directory for {what} ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ReproError(f"{path}: cannot write {what} there (no permission)")
    return path
