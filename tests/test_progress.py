"""Progress where the output goes: plain lines at a bounded rate in a file or a pipe (a fake clock here; a
real run through a pipe in the slow test), nothing under --quiet, and a line's fields."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from small_model import MICRO

from repro import progress

LINE = re.compile(r"^pulse-repro: (?P<desc>.+?) (?P<n>\d+)/(?P<total>\d+) \(\d+%\)(?:, loss -?[\d.]+)?, "
                  r"[\d.e+-]+ it/s, elapsed \d+:\d\d(?:, ETA \d+:\d\d)?$")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_come_at_most_once_an_interval_and_once_at_the_end():
    clock, out = Clock(), io.StringIO()
    bar = progress.LineProgress(1000, "fine-tune", every=30.0, stream=out, clock=clock)
    for step in range(1000):  # 0.1 s a step: 100 s in all
        clock.now = (step + 1) / 10
        bar.set_postfix(loss=f"{1 - step / 1000:.3f}")
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 30, 60 and 90 s, then the end
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0] == "pulse-repro: fine-tune 300/1000 (30%), loss 0.701, 10 it/s, elapsed 0:30, ETA 1:10"
    assert lines[-1] == "pulse-repro: fine-tune 1000/1000 (100%), loss 0.001, 10 it/s, elapsed 1:40"


def test_a_loop_shorter_than_the_interval_says_nothing():
    clock, out = Clock(), io.StringIO()
    bar = progress.LineProgress(50, "eval people", every=30.0, stream=out, clock=clock)
    for _ in range(50):
        clock.now += 0.5
        bar.update()
    bar.close()
    assert out.getvalue() == ""


def test_quiet_silences_both_and_a_pipe_gets_lines(monkeypatch):
    monkeypatch.setenv("PULSE_QUIET", "1")
    assert isinstance(progress.progress(10, "x"), progress.Silent)
    monkeypatch.delenv("PULSE_QUIET")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    monkeypatch.setenv("PULSE_PROGRESS_SECONDS", "5")
    bar = progress.progress(10, "x")
    assert isinstance(bar, progress.LineProgress) and bar.every == 5.0


def test_hours_are_written_as_hours():
    clock, out = Clock(), io.StringIO()
    bar = progress.LineProgress(10, "unlearn npo proj+llm", every=1.0, stream=out, clock=clock)
    clock.now = 3 * 3600 + 5
    bar.update(5)
    assert out.getvalue().strip().endswith("elapsed 3:00:05, ETA 3:00:05")


@pytest.mark.slow
def test_a_run_whose_output_goes_to_a_pipe_shows_its_progress_at_the_bounded_rate(tmp_path):
    """`run finetuned` on the miniature of the miniature (twenty epochs: seconds of fine-tuning) with its stderr
    a pipe: progress lines while the fine-tune runs, each loop's lines no more than its own elapsed time (whole
    seconds, so one more) allows at one per interval, plus its closing line; with --quiet, none. (How many steps
    an interval holds depends on the machine's load, so the bound is on time, not on steps.)"""
    every = 0.2
    args = [sys.executable, "-m", "repro", "run", "finetuned", "--method", "ga",
            *(a for o in [*MICRO, "finetune.epochs=20"] for a in ("--set", o))]
    env = {**os.environ, "PULSE_CACHE": str(tmp_path / "cache"), "PULSE_PROGRESS_SECONDS": str(every)}
    env.pop("PULSE_QUIET", None)
    with subprocess.Popen([*args, "--out", str(tmp_path / "run"), "--units", str(tmp_path / "units")],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path) as proc:
        seen = [line.rstrip("\n") for line in proc.stderr]  # as the run writes them, through the pipe
        assert proc.wait() == 0
    lines = [LINE.match(line) for line in seen if LINE.match(line)]
    loops: list[list] = []  # each loop's lines, in order: a loop ends with its line at n == total
    for m in lines:
        if not loops or loops[-1][-1]["n"] == loops[-1][-1]["total"] or loops[-1][-1]["desc"] != m["desc"]:
            loops.append([])
        loops[-1].append(m)
    finetune = [loop for loop in loops if loop[0]["desc"] == "fine-tune"]
    assert finetune and len(finetune[0]) >= 3, seen  # lines while it ran, not only the closing one
    for loop in loops:
        steps, seconds = int(loop[-1]["total"]), _seconds(loop[-1].string)
        assert len(loop) <= min(steps, (seconds + 1) / every + 1), [m.string for m in loop]
    # a store of its own: the same training again, in silence
    quiet = subprocess.run([*args, "--out", str(tmp_path / "quiet"), "--units", str(tmp_path / "units-quiet"),
                            "--quiet"], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert not [line for line in quiet.stderr.splitlines() if LINE.match(line)]
    assert Path(tmp_path / "quiet" / "units.jsonl").is_file()


def _seconds(line: str) -> int:
    clock = re.search(r"elapsed (\d+(?::\d\d)+)", line).group(1)
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total


def test_the_libraries_own_bars_are_off_in_a_file(monkeypatch):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging

    monkeypatch.delenv("PULSE_QUIET", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file, not a terminal
    try:
        progress.library_bars_off_unless_terminal()
        assert not logging.is_progress_bar_enabled() and are_progress_bars_disabled()
    finally:
        enable_progress_bars()
        logging.enable_progress_bar()
