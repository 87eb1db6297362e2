"""`--help` answers without loading torch or transformers (seconds of imports): every command's parser is
built from names written out in repro/cli.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = [[], ["all"], ["run"], ["bench"], ["golden", "record"], ["assets", "fetch"], ["preflight"], ["verify"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "top" for c in COMMANDS])
def test_help_loads_neither_torch_nor_transformers(command):
    probe = ("import sys\nfrom repro.cli import main\ntry:\n    main(%r)\nexcept SystemExit as exit:\n"
             "    assert exit.code == 0, exit.code\nprint(sorted({'torch', 'transformers'} & set(sys.modules)))"
             % [*command, "--help"])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:]


def _takes_profile(parser, words: list[str]) -> bool:
    import argparse

    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return any("--profile" in a.option_strings for a in parser._actions)


def test_the_readme_names_exactly_the_commands_that_take_a_profile():
    import re
    from pathlib import Path

    from repro.cli import _parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    said = re.search(r"The commands that run or read a profile \(([^)]*)\)", readme)
    assert said, "README: the paragraph naming the commands that take --profile is gone"
    named = [c.split() for c in re.findall(r"`([a-z ]+)`", said.group(1))]
    parser = _parser()
    assert named and all(_takes_profile(parser, words) for words in named)
    for words in (["status"], ["report"], ["verify"], ["assets", "fetch"]):
        assert not _takes_profile(parser, words), words
    every = {name for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)
             for name in a.choices}
    assert every == {w[0] for w in named} | {"status", "report", "verify", "assets"}
