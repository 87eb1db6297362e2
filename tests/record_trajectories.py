"""Record the pinned loss trajectories (tests/trajectories.json) under each instruction set this machine can
run, from AVX2 up to its own (PyTorch, MKL and oneDNN capped in a new process per instruction set):

    python tests/record_trajectories.py [--isa avx2 --isa native]

Re-record only after a deliberate change to training, and say in the commit message what changed and why
the numbers moved (tests/trajectory_cases.py says what the cases are)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
import trajectory_cases

from repro.environment import NATIVE, isa_environment, isas_below

HERE = "--this-process"  # internal: print this process's recording as JSON


def recorded_under(isa: str) -> dict:
    argv = [sys.executable, __file__, HERE]
    out = subprocess.run(argv, env=isa_environment(isa), check=True, capture_output=True, text=True).stdout
    recording = json.loads(out.strip().splitlines()[-1])
    capability = recording["environment"].get("cpu_capability")
    if isa != NATIVE and capability != isa.upper():
        raise SystemExit(f"asked for {isa}, torch dispatched to {capability}: this machine cannot run it")
    return {"isa": isa, **recording}


def main() -> None:
    if sys.argv[1:] == [HERE]:
        print(json.dumps(trajectory_cases.record_here()))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", dest="isas", action="append", choices=("avx2", "avx512", NATIVE))
    isas = parser.parse_args().isas or isas_below(torch.backends.cpu.get_cpu_capability())
    pinned = {"recorded_with": trajectory_cases.RECORD_COMMAND, "recordings": [recorded_under(i) for i in isas]}
    trajectory_cases.PINNED.write_text(json.dumps(pinned, indent=2, sort_keys=True) + "\n")
    print(f"wrote {trajectory_cases.PINNED}")
    for recording in pinned["recordings"]:
        env = recording["environment"]
        print(f"{recording['isa']}: " + ", ".join(f"{k} {v}" for k, v in sorted(env.items())))
        for name, losses in recording["trajectories"].items():
            print(f"  {name:16s} " + " ".join(f"{x:.6f}" for x in losses))


if __name__ == "__main__":
    main()
