"""Progress of long loops (pre-training, fine-tuning, each unlearning request, each evaluation), readable
where the output goes: a tqdm bar on a terminal; in a file or a pipe (a batch job's log, `docker run ... >
log`, CI), a plain line at a bounded rate, so that a slow run can be told from a hung one without a line per
step. `--quiet` (PULSE_QUIET=1, inherited by the processes a run starts) silences both.

A line: `pulse-repro: fine-tune 120/400 (30%), loss 1.234, 3.2 it/s, elapsed 0:37, ETA 1:27`. One comes
when PULSE_PROGRESS_SECONDS (default 30) have passed since the loop's last line, and one when a loop that
printed any ends; a loop shorter than that prints nothing.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

from repro import distributed
from repro.flags import flag_set

DEFAULT_SECONDS = 30.0  # kit choice: a 13B fine-tune logs about a hundred lines, a tiny run a handful


def quiet() -> bool:
    return flag_set("PULSE_QUIET")


def set_quiet() -> None:
    os.environ["PULSE_QUIET"] = "1"  # for this process and every one it starts (grid cells, golden runs)


def library_bars_off_unless_terminal() -> None:
    """The libraries' own bars (transformers' "Writing model shards", huggingface_hub's downloads) redraw
    themselves with carriage returns, which a log file keeps as one long line: off wherever the kit's own
    progress is lines or nothing."""
    if quiet() or not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging

        disable_progress_bars()
        logging.disable_progress_bar()


def interval() -> float:
    value = os.environ.get("PULSE_PROGRESS_SECONDS", "")
    try:
        return float(value) if value else DEFAULT_SECONDS
    except ValueError:
        return DEFAULT_SECONDS


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}")


class LineProgress:
    """tqdm's update / set_postfix / close, written as plain lines at a bounded rate."""

    def __init__(self, total: int, desc: str, every: float, stream=None, clock=time.monotonic):
        self.total, self.desc, self.every = total, desc, every
        self.stream, self.clock = stream if stream is not None else sys.stderr, clock
        self.n, self.postfix = 0, ""
        self.start = self.last = clock()
        self.printed = False

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        parts = [f"pulse-repro: {self.desc} {self.n}/{self.total}"
                 + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{rate:.3g} it/s, elapsed {_clock(elapsed)}")
        if rate > 0 and self.total and self.n < self.total:
            parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def _write(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self.last, self.printed = now, True

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self._write(now)

    def close(self) -> None:
        if self.printed:  # a loop that said it was going also says it ended
            self._write(self.clock())


class Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, desc: str):
    """The progress of a loop of `total` steps named `desc`: a bar, lines, or nothing (see the module)."""
    if quiet() or not distributed.is_main():  # under a launcher, rank 0 speaks for all
        return Silent()
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, leave=False)
    return LineProgress(total, desc, interval())
