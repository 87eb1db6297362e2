"""One method's peak resident set in a fresh process (see repro.bench.memory): prints one JSON line.

    python -m repro.bench.memworker '{"profile": "tiny", "overrides": [], "shape": null, "stage": "ga", "steps": 3}'
"""

from __future__ import annotations

import gc
import json
import sys

from repro.bench.memory import peak_rss_bytes, reset_peak, rss_bytes
from repro.bench.training import run_stage
from repro.bench.workload import load, prepare
from repro.choices import load_profile


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    w = prepare(load_profile(spec["profile"], spec["overrides"]), 0, spec["shape"])
    gc.collect()
    before = rss_bytes()  # the runtime and the data, not the model
    load(w, keep_state=False)
    gc.collect()
    exact = reset_peak()  # forget the loading transient
    result = run_stage(w, spec["stage"], spec["steps"])
    peak = peak_rss_bytes()
    print(json.dumps({"stage": spec["stage"], "peak_bytes": peak - before, "rss_before_model": before,
                      "hwm_reset": exact, "diverged_at_step": result["diverged_at_step"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
