"""docker/image_check.py's one edit to Dockerfile.cuda: the pinned base is replaced by the stand-in in
every FROM line that names it, and nothing else in the file changes (the build is of the file as shipped)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("image_check", ROOT / "docker" / "image_check.py")
image_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_check)

STANDIN = "localhost/standin:3.11"


def test_the_shipped_dockerfile_changes_only_in_its_base_references():
    shipped = (ROOT / "Dockerfile.cuda").read_text()
    built, base = image_check.substitute_base(shipped, STANDIN)
    assert base.startswith("python:3.11-slim-bookworm@sha256:")
    old, new = shipped.splitlines(), built.splitlines()
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(changed) == 2  # both stages
    for a, b in changed:
        assert a.split()[0] == "FROM" and a.replace(base, STANDIN) == b
    assert base not in built and built.endswith("\n") == shipped.endswith("\n")


def test_stage_references_and_flags_are_kept():
    text = ("FROM --platform=linux/amd64 base:1@sha256:" + "a" * 64 + " AS build\nRUN true\n"
            "FROM build AS test\nFROM base:1@sha256:" + "a" * 64 + "\nCOPY --from=build /a /a\n")
    built, base = image_check.substitute_base(text, STANDIN)
    assert base == "base:1@sha256:" + "a" * 64
    assert built.splitlines() == [f"FROM --platform=linux/amd64 {STANDIN} AS build", "RUN true",
                                  "FROM build AS test", f"FROM {STANDIN}", "COPY --from=build /a /a"]


@pytest.mark.parametrize("text", ["RUN true\n", "FROM a:1 AS x\nFROM b:2\n"])
def test_no_base_or_two_bases_are_refused(text):
    with pytest.raises(image_check.CheckFailed, match="expected one base image"):
        image_check.substitute_base(text, STANDIN)
