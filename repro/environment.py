"""The environment a run's numbers depend on, and how one machine runs as a smaller CPU would.

Float reductions follow the instruction set a library dispatches to (PyTorch's own kernels, MKL's GEMM,
oneDNN), and unlearning amplifies the differences: a number recorded under AVX-512 is not a fact about
an AVX2 machine. So every run writes what its numbers depend on (`numeric_environment`), a golden file
names the environments its ranges were recorded in, and `pulse-repro golden record` records under each
instruction set the machine can run by capping the libraries' dispatch (`ISA_CAPS`).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The variables each library reads at start-up to cap its dispatch (PyTorch: ATEN_CPU_CAPABILITY;
# MKL: MKL_ENABLE_INSTRUCTIONS; oneDNN: ONEDNN_MAX_CPU_ISA). They only take effect in a new process.
ISA_CAPS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}
NATIVE = "native"  # no cap: the machine's own instruction set
ISA_ORDER = ("DEFAULT", "AVX2", "AVX512")  # torch's capability names, smallest first

# The fields a golden range depends on: numeric_environment()'s (the versions as well as the device), and the
# CPU model environment.json records, since two CPUs with one instruction set compute other floats (an Intel
# Xeon with AVX-512 left 13 of the tiny ranges recorded on an AMD EPYC with AVX-512, with the same code).
# numeric_environment() has no CPU field: what is recorded from it alone (the pinned trajectories) compares
# on the other fields, as before.
NUMERIC_FIELDS = ("device", "cpu_capability", "threads", "torch", "transformers", "peft", "cpu")


def cpu_model() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model (two CPUs with one marketing name,
    such as 'AMD EPYC', can differ in instruction set)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor is enough
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.processor() or platform.machine())
    if "cpu family" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def numeric_environment() -> dict:
    """What this process's floating-point results depend on: the device, and on a CPU the instruction
    set torch dispatches to and its thread count; the versions of the libraries that compute them."""
    import peft
    import torch
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
    else:
        env.update(device="cpu", cpu_capability=torch.backends.cpu.get_cpu_capability(),
                   threads=torch.get_num_threads())
    return env


def environment() -> dict:
    """Everything environment.json records: the numeric environment, the CPU, Python and the platform,
    and the instruction-set caps in force."""
    from repro import distributed

    env = {**numeric_environment(), "python": platform.python_version(), "platform": platform.platform(),
           "cpu": cpu_model()}
    caps = {k: os.environ[k] for k in ISA_CAPS["avx2"] if os.environ.get(k)}
    if caps:
        env["isa_caps"] = caps
    dist = distributed.current()
    if dist is not None:  # a launched run says how it ran (training numbers depend on it, within tolerance)
        import accelerate

        env.update(processes=dist.world, backend=dist.backend, accelerate=accelerate.__version__)
    return env


def numeric_tag() -> str:
    """A short name of the numeric environment for cache paths: a model pre-trained under one instruction
    set is not reused under another."""
    env = numeric_environment()
    return "cpu-" + env["cpu_capability"].lower() if env["device"] == "cpu" else "cuda"


def isas_below(capability: str) -> list[str]:
    """The caps a machine of this torch capability can run, from AVX2 up, its own last as NATIVE."""
    top = ISA_ORDER.index(capability) if capability in ISA_ORDER else 0
    return [name for name in ("avx2", "avx512") if ISA_ORDER.index(name.upper()) < top] + [NATIVE]


def isa_environment(isa: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment that runs as instruction set `isa` (NATIVE: the caps removed)."""
    env = dict(os.environ if base is None else base)
    for var in ISA_CAPS["avx2"]:
        env.pop(var, None)
    if isa != NATIVE:
        env.update(ISA_CAPS[isa])
    return env


def differences(run: dict, covered: list[dict]) -> list[str]:
    """How a run's numeric environment differs from the nearest of the environments a golden file covers:
    'field: run value (recorded: values)' lines, empty when one of them matches on every numeric field."""
    if any(all(str(run.get(f)) == str(env.get(f)) for f in NUMERIC_FIELDS) for env in covered):
        return []
    out = []
    for field in NUMERIC_FIELDS:
        recorded = sorted({str(env.get(field)) for env in covered})
        if str(run.get(field)) not in recorded:
            out.append(f"{field}: {run.get(field, 'not recorded')} (recorded: {', '.join(recorded)})")
    return out or ["no recorded environment matches on every field together"]
