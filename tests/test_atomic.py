"""The atomic writer every manifest, unit record and run file goes through (repro/atomic.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repro.atomic import atomic_write_text


def test_a_write_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path):
    out = tmp_path / "new" / "dir" / "manifest.json"  # the directories are made
    atomic_write_text(out, "first ünïcode\n")
    atomic_write_text(out, "second\n")
    assert out.read_bytes() == b"second\n"
    atomic_write_text(out, "é")
    assert out.read_bytes() == b"\xc3\xa9"  # UTF-8 whatever the locale
    assert [p.name for p in out.parent.iterdir()] == ["manifest.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path, monkeypatch):
    out = tmp_path / "manifest.json"
    atomic_write_text(out, "old\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt  # the run is stopped between writing and renaming

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(out, "new\n")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_the_temporary_file_is_on_disk_beside_the_target_before_the_rename(tmp_path, monkeypatch):
    """A crash after the rename must not leave an empty file: the content is on disk first. The temporary
    is in the target's directory: a rename across filesystems is not atomic (or fails)."""
    synced, replaced = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_size), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((bool(synced), Path(a).parent == Path(b).parent)), real_replace(a, b))[1])
    atomic_write_text(tmp_path / "f.json", "12345")
    assert synced == [5] and replaced == [(True, True)]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_what_is_written_whole_has_the_permissions_a_plain_write_would_give(tmp_path, umask):
    """A container's run read on the host by another user, an asset bound into a container: mkstemp's 0600
    and mkdtemp's 0700 would follow the file or directory through its rename and lock them out."""
    from repro.atomic import temporary_dir

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "results.json", "{}")
        made = temporary_dir(tmp_path / "model")
    finally:
        os.umask(old)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert made.stat().st_mode & 0o777 == 0o777 & ~umask
    assert made.parent == tmp_path and made.name.startswith(".model.tmp-")
