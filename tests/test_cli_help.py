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
