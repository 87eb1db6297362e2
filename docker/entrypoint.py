#!/usr/bin/env python3
"""The image's entrypoint: fill in the image's defaults, check what a run needs, then exec `pulse-repro`.

- no `--profile`: the image's default profile, $PULSE_PROFILE (llava-1.5-13b, the paper);
- `run` / `all` without `--out`: `--out $PULSE_RUNS/<profile name>` (the mounted /runs);
- a profile that loads a real model (model.source is not "tiny") on a host whose NVIDIA driver is older than
  the image's torch needs (read from `nvidia-smi`): one line naming the driver needed and how to build the
  image for an older CUDA, exit 2;
- such a profile and no visible CUDA GPU: one line, exit 2;
- a profile that needs the Hugging Face hub (hub model id, `hf:` data) while the hub is unreachable or
  HF_HUB_OFFLINE is set, and the weights / data are not in the mounted HF cache: one line, exit 2
  (when everything is cached and the hub is unreachable, HF_HUB_OFFLINE=1 is set so nothing waits on it);
- the run directory, the HF cache (when something is to be downloaded) or the kit's cache not writable (a
  bind mount owned by another user, or nothing bound under Apptainer's read-only image): one line, exit 2.

Under Apptainer (APPTAINER_CONTAINER / SINGULARITY_CONTAINER set) the hints name `--nv` and `--bind`
instead of Docker's `--gpus all` and `-v`.

Anything else (--help, report, verify, bench, a command this script does not know) passes through as is.
PULSE_SKIP_PREFLIGHT=1 skips the checks. Stdlib only but for the kit itself (its profiles, its driver table),
imported where a check needs it, so it also runs (and is tested) outside the image.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

PROFILE_COMMANDS = {"world", "splits", "run", "all"}  # and `data check`
OUT_COMMANDS = {"run", "all"}
GPU_COMMANDS = {"run", "all"}
HUB_COMMANDS = {"run", "all", "splits"}
# 13B: measured peak 62 GB at batch 4, 768 tokens (docs/performance.md; the 40 GB some guides state is below
# it). 7B: that measurement scaled by layers x hidden size.
GPU_MEMORY = {"llava-1.5-13b": "80 GB class, measured peak 62 GB", "llava-1.5-7b": ">= 40 GB"}
TRUE = {"1", "true", "yes", "on"}
# What to tell the user, by container runtime: Apptainer runs the image read-only as the calling user and
# takes host directories with --bind, GPUs with --nv.
HINTS = {
    "docker": {
        "gpu": "run with `docker run --gpus all ...` (NVIDIA driver + NVIDIA Container Toolkit on the host)",
        "hf": "mount a populated HF cache with `-v hf:/data/hf`",
        "writable": 'run the container with `--user "$(id -u):$(id -g)"` or make the mounted directory '
                    "writable",
    },
    "apptainer": {
        "gpu": "run with `apptainer run --nv ...` (NVIDIA driver on the host)",
        "hf": "bind a populated HF cache with `--bind /path/to/hf-cache:/data/hf`",
        "writable": "the image is read-only under Apptainer: bind a directory of yours there, "
                    '`--bind "$PWD/runs:/runs" --bind /path/to/hf-cache:/data/hf`',
    },
}


class Preflight(Exception):
    """A run that cannot work in this container; the message is the one line shown."""


def _command(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def _option(argv: list[str], name: str) -> str | None:
    """The value of `name` (`--name V` or `--name=V`; the last one wins), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _options(argv: list[str], name: str) -> list[str]:
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
    return values


def _load_profile(argv: list[str]):
    """The profile this command line asks for, or None where the kit cannot load it (it will say why)."""
    try:
        from repro import config
        from repro.errors import ReproError
    except ImportError:
        return None
    # The checks here read the profile's name, model and data sources only: the kit's reader (types
    # checked) is enough, pulse-repro checks the rest.
    try:
        return config.read_profile(_option(argv, "--profile") or "tiny", _options(argv, "--set"))
    except (ReproError, OSError, ValueError, TypeError, KeyError):  # pulse-repro reports it itself
        return None


def with_defaults(argv: list[str], env: dict[str, str], profile_name=None) -> list[str]:
    """argv with the image's default profile and run directory filled in (never overriding the user's).

    `profile_name(argv)` gives the loaded profile's name (a profile may be a path to a TOML file);
    without it, the --profile value is used as the name.
    """
    argv = list(argv)
    if not argv or "-h" in argv or "--help" in argv:
        return argv
    command = _command(argv)
    takes_profile = command in PROFILE_COMMANDS or (command == "data" and "check" in argv)
    default = env.get("PULSE_PROFILE", "")
    if takes_profile and default and _option(argv, "--profile") is None:
        argv += ["--profile", default]
    if command in OUT_COMMANDS and _option(argv, "--out") is None:
        name = (profile_name(argv) if profile_name else None) or _option(argv, "--profile") or "tiny"
        argv += ["--out", str(Path(env.get("PULSE_RUNS", "/runs")) / name)]
    return argv


def runtime(env: dict[str, str]) -> str:
    """The container runtime: Apptainer (and Singularity) set *_CONTAINER to the image they run."""
    return "apptainer" if env.get("APPTAINER_CONTAINER") or env.get("SINGULARITY_CONTAINER") else "docker"


def _torch_cuda(env: dict[str, str]) -> str | None:
    """The CUDA version the installed torch was built for ("13.0"), or None (a CPU build, no torch).

    torch.version.cuda is a constant of the build: reading it touches neither the GPU nor the driver, so it
    is known before the driver is. PULSE_TORCH_CUDA stands in for it where torch is a CPU build (the tests).
    """
    if env.get("PULSE_TORCH_CUDA"):
        return env["PULSE_TORCH_CUDA"]
    try:
        import torch
    except ImportError:
        return None
    return torch.version.cuda


def _driver_version() -> str | None:
    """The host's NVIDIA driver from `nvidia-smi` (Docker's `utility` capability and Apptainer's --nv both
    put it in the container), or None where there is none: the kit's pre-flight query, one definition."""
    from repro.experiments.preflight import driver_version as query
    return query()


def _driver_for_cuda() -> dict[str, int]:
    from repro.experiments.preflight import DRIVER_FOR_CUDA
    return DRIVER_FOR_CUDA


def driver_problem(driver: str, torch_cuda: str | None, driver_for_cuda: dict[str, int]) -> str | None:
    """One line when `driver` is older than the one torch's CUDA needs; None when new enough or unknown."""
    cuda = ".".join((torch_cuda or "").split(".")[:2])
    need = driver_for_cuda.get(cuda)
    found = re.match(r"\s*(\d+)\.", driver)
    if need is None or found is None or int(found.group(1)) >= need:
        return None
    runnable = sorted((c for c, d in driver_for_cuda.items() if d <= int(found.group(1))),
                      key=lambda c: tuple(int(part) for part in c.split(".")))
    if runnable:
        index = "cu" + runnable[-1].replace(".", "")
        older = (f"or build the image for CUDA {runnable[-1]} or older, which it runs: "
                 f"`CUDA={index} docker/lock.sh`, then `docker build "
                 f"--build-arg LOCK=docker/requirements-{index}.lock -f Dockerfile.cuda -t pulse-repro .` "
                 f'(docker/README.md, "Older NVIDIA drivers")')
    else:
        older = "no CUDA build of torch in the kit's table runs on it"
    return (f"the host's NVIDIA driver {driver.strip()} is older than {need}, which this image's torch "
            f"(CUDA {cuda}) needs: update the driver to R{need} or newer, {older}")


def writable_dir(path: Path) -> bool:
    """Whether `path` is (or can be made) a directory this user can write: a read-only image, a bind mount
    owned by someone else, or a file in the way all say no."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _hub_reachable(env: dict[str, str]) -> bool:
    """The kit's one short probe of HF_ENDPOINT (repro/hub.py): any HTTP answer means reachable."""
    from repro.hub import endpoint, probe

    return probe(endpoint(env)) is None


def hub_needs(profile, model: bool = True) -> list[tuple[str, str]]:
    """(kind, repo_id) for every hub repository the profile reads: its model and its `hf:` data."""
    needs = []
    source = profile.model.source
    if model and source != "tiny" and not Path(source).exists():
        needs.append(("model", source))
    for spec in (profile.data.mllmu, profile.data.mmbench, profile.data.mmbench_train):
        if spec.startswith("hf:"):
            needs.append(("dataset", spec[3:]))
    return needs


def hub_cache(env: dict[str, str]) -> Path:
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    return Path(env.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))) / "hub"


def is_cached(cache: Path, kind: str, repo_id: str) -> bool:
    snapshots = cache / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in snapshots.iterdir())


def preflight(argv: list[str], env: dict[str, str], profile, cuda_available=_cuda_available,
              hub_reachable=_hub_reachable, driver_version=_driver_version,
              torch_cuda=_torch_cuda) -> dict[str, str]:
    """Raise Preflight with a one-line reason when this run cannot work here; return env changes."""
    command = _command(argv)
    changes: dict[str, str] = {}
    if profile is None or env.get("PULSE_SKIP_PREFLIGHT", "").lower() in TRUE:
        return changes
    name = profile.name
    hints = HINTS[runtime(env)]
    if command in GPU_COMMANDS and profile.model.source != "tiny":
        # before the GPU check: with too old a driver torch sees no GPU, and "no GPU" would mislead
        cuda = torch_cuda(env)  # None: torch's CPU build, nothing to check (the kit's query is not loaded)
        driver = driver_version() if cuda else None
        problem = driver and driver_problem(driver, cuda, _driver_for_cuda())
        if problem:
            raise Preflight(problem)
        if not cuda_available():
            memory = GPU_MEMORY.get(name, "a large")
            raise Preflight(
                f"profile {name} needs a CUDA GPU ({memory} memory) and none is visible in the container: "
                f"{hints['gpu']}, or use `--profile tiny` for the CPU miniature")
    if command in HUB_COMMANDS:
        needs = hub_needs(profile, model=command != "splits")  # splits reads data, not the model
        cache = hub_cache(env)
        missing = [f"{kind} {repo}" for kind, repo in needs if not is_cached(cache, kind, repo)]
        offline = env.get("HF_HUB_OFFLINE", "").lower() in TRUE
        if needs and not offline and not hub_reachable(env):
            if missing:
                raise Preflight(
                    f"profile {name} needs {', '.join(missing)} from the Hugging Face hub, which is "
                    f"unreachable, and they are not in {cache}: {hints['hf']} "
                    f"(or point --set model.source= / data.*= at mounted local copies)")
            changes["HF_HUB_OFFLINE"] = "1"  # all cached: do not wait on an unreachable hub
        elif offline and missing:
            raise Preflight(
                f"HF_HUB_OFFLINE is set and {cache} does not hold {', '.join(missing)} for profile {name}: "
                f"{hints['hf']}, or unset HF_HUB_OFFLINE to download it")
        elif missing and not writable_dir(cache):  # the download would fail after the hub was reached
            raise Preflight(
                f"profile {name} downloads {', '.join(missing)} into {cache}, which uid {os.getuid()} cannot "
                f"write: {hints['writable']}")
    out = _option(argv, "--out")
    if command in OUT_COMMANDS and out is not None and not writable_dir(Path(out)):
        raise Preflight(f"cannot write the run directory {out} as uid {os.getuid()}: {hints['writable']}")
    kit_cache = env.get("PULSE_CACHE")  # the miniature world and the tiny base model are built there
    if command in OUT_COMMANDS and kit_cache and not writable_dir(Path(kit_cache)):
        raise Preflight(f"cannot write the kit's cache PULSE_CACHE={kit_cache} as uid {os.getuid()}: "
                        f"{hints['writable']}")
    return changes


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    profile_holder: dict[str, object] = {}

    def profile_name(args: list[str]) -> str | None:
        profile_holder["profile"] = _load_profile(args)
        return getattr(profile_holder["profile"], "name", None)

    args = with_defaults(argv, env, profile_name)
    command = _command(args)
    if command in GPU_COMMANDS | HUB_COMMANDS and "-h" not in args and "--help" not in args:
        profile = profile_holder["profile"] if "profile" in profile_holder else _load_profile(args)
        try:
            changes = preflight(args, env, profile)
        except Preflight as exc:
            print(f"pulse-repro: {exc}", file=sys.stderr)
            return 2
        os.environ.update(changes)
    home = os.environ.get("HOME", "")
    if not home or not os.access(home, os.W_OK):  # an arbitrary --user: give caches a writable home
        os.environ["HOME"] = tempfile.mkdtemp(prefix="pulse-home-")
    os.execvp("pulse-repro", ["pulse-repro", *args])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
