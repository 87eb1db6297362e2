"""The kit's promise for bad input: one line on stderr, `pulse-repro: error: ...`, naming what is wrong."""

from __future__ import annotations


def one_line_error(capsys, *names: str) -> str:
    """The one error line the command wrote to stderr, checked to hold every one of `names`."""
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("pulse-repro: error:"), err
    for name in names:
        assert name in err, err
    return err
