"""docker/entrypoint.py on the hosts reviewers have: the NVIDIA driver check and Apptainer's read-only image.

- a driver older than the image's torch needs (a fake `nvidia-smi` on PATH): one line that names the driver
  needed and the build for an older CUDA, exit 2, before any other check; a new enough driver and no
  `nvidia-smi` at all go on to the GPU check;
- under Apptainer (APPTAINER_CONTAINER set) an unbound, read-only /runs, HF cache or kit cache: one line that
  names the `--bind` to add; a missing GPU names `--nv`.
The image's torch is a CUDA build; here it is a CPU build, so PULSE_TORCH_CUDA stands in for its CUDA.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "entrypoint.py"
OLD_DRIVER, NEW_DRIVER = "535.104.05", "580.82.07"
NO_GPU = {"cuda_available": lambda: False, "hub_reachable": lambda env: True}
GPU = {"cuda_available": lambda: True, "hub_reachable": lambda env: True}




def fake_nvidia_smi(bin_dir: Path, driver: str) -> Path:
    """A `nvidia-smi` that answers the driver query as the real one does: one line per GPU."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho {driver}\necho {driver}\n")
    script.chmod(0o755)
    return bin_dir


def gpu_profile(name="llava-1.5-13b", source="llava-hf/llava-1.5-13b-hf"):
    return SimpleNamespace(name=name, model=SimpleNamespace(source=source),
                           data=SimpleNamespace(mllmu="hf:MLLMMU/MLLMU-Bench", mmbench="hf:lmms-lab/MMBench",
                                                mmbench_train=""))


def tiny_profile():
    return SimpleNamespace(name="tiny", model=SimpleNamespace(source="tiny"),
                           data=SimpleNamespace(mllmu="world", mmbench="world", mmbench_train=""))


# ---- the driver check ---------------------------------------------------------------------------------

def test_driver_problem_names_the_driver_needed_and_the_older_cuda_build(entrypoint):
    table = {"13.0": 580, "12.8": 570, "12.6": 560, "12.1": 530}
    line = entrypoint.driver_problem(OLD_DRIVER, "13.0", table)
    assert "\n" not in line
    assert line.startswith(f"the host's NVIDIA driver {OLD_DRIVER} is older than 580, which this image's "
                           "torch (CUDA 13.0) needs: update the driver to R580 or newer")
    assert ("`CUDA=cu121 docker/lock.sh`, then `docker build --build-arg LOCK=docker/requirements-cu121.lock "
            "-f Dockerfile.cuda -t pulse-repro .`") in line
    assert "CUDA=cu126" in entrypoint.driver_problem("560.35.03", "13.0", table)  # exactly 12.6's driver
    assert "no CUDA build of torch" in entrypoint.driver_problem("470.256.02", "13.0", table)
    for driver, cuda in ((NEW_DRIVER, "13.0"), ("590.1", "13.0"), ("565.57.01", "12.6"),
                         (OLD_DRIVER, "13.1"), (OLD_DRIVER, None), ("N/A", "13.0"), ("", "13.0")):
        assert entrypoint.driver_problem(driver, cuda, table) is None, (driver, cuda)


def test_old_driver_stops_before_the_gpu_check(entrypoint, tmp_path, monkeypatch):
    """The kit's own nvidia-smi query, through a fake nvidia-smi on PATH: with too old a driver torch sees no
    GPU, and the driver line, not "no GPU", is what the user must read."""
    fake = fake_nvidia_smi(tmp_path / "bin", OLD_DRIVER)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    argv = ["all", "--profile", "llava-1.5-13b", "--out", str(tmp_path / "o")]
    env = {"PULSE_TORCH_CUDA": "13.0"}
    with pytest.raises(entrypoint.Preflight, match=rf"NVIDIA driver {OLD_DRIVER} is older than 580.*"
                                                   r"CUDA=cu\d+ docker/lock.sh"):
        entrypoint.preflight(argv, env, gpu_profile(), **NO_GPU)
    # the miniature does not use the GPU: an old driver does not stop it
    assert entrypoint.preflight(["all", "--out", str(tmp_path / "t")], env, tiny_profile(),
                                cuda_available=lambda: False, hub_reachable=lambda e: False) == {}
    # PULSE_SKIP_PREFLIGHT skips it like every check
    assert entrypoint.preflight(argv, {**env, "PULSE_SKIP_PREFLIGHT": "1"}, gpu_profile()) == {}


@pytest.mark.parametrize("driver", [NEW_DRIVER, None])
def test_new_driver_or_no_nvidia_smi_goes_on_to_the_gpu_check(entrypoint, tmp_path, monkeypatch, driver):
    bin_dir = fake_nvidia_smi(tmp_path / "bin", driver) if driver else tmp_path / "empty"
    bin_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(bin_dir))  # no nvidia-smi but the fake one
    argv = ["all", "--out", str(tmp_path / "o")]
    env = {"PULSE_TORCH_CUDA": "13.0"}
    with pytest.raises(entrypoint.Preflight, match="needs a CUDA GPU .* none is visible"):
        entrypoint.preflight(argv, env, gpu_profile(), **NO_GPU)
    assert entrypoint.preflight(argv, {**env, "HF_HOME": str(tmp_path / "hf")}, gpu_profile(), **GPU) == {}


def test_a_cpu_build_of_torch_is_not_checked(entrypoint, tmp_path):
    asked = []
    entrypoint.preflight(["all", "--out", str(tmp_path / "o")], {"HF_HOME": str(tmp_path / "hf")},
                         gpu_profile(), driver_version=lambda: asked.append(1) or OLD_DRIVER,
                         torch_cuda=lambda env: None, **GPU)
    assert asked == []


def run_entrypoint(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    """docker/entrypoint.py as the image runs it, with the image's environment under tmp_path."""
    env = {"PATH": path, "HOME": str(tmp_path), "PULSE_TORCH_CUDA": "13.0",
           "PULSE_PROFILE": "llava-1.5-13b", "PULSE_RUNS": str(tmp_path / "runs"),
           "HF_HOME": str(tmp_path / "hf"), "PULSE_CACHE": str(tmp_path / "pulse-cache"),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ENTRYPOINT), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_the_image_entrypoint_with_an_old_driver_prints_one_line(tmp_path):
    """`docker run pulse-repro all` on a host with driver 535: exit 2, one line, nothing run."""
    bin_dir = fake_nvidia_smi(tmp_path / "bin", OLD_DRIVER)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    done = run_entrypoint(tmp_path, path, "all")
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"pulse-repro: the host's NVIDIA driver {OLD_DRIVER} is older than 580, "
                                  "which this image's torch (CUDA 13.0) needs: update the driver to R580 or "
                                  "newer, or build the image for CUDA ")
    assert "docker/lock.sh" in done.stderr and "--build-arg LOCK=docker/requirements-cu" in done.stderr


# ---- Apptainer: read-only image, the user's own uid ---------------------------------------------------

APPTAINER = {"APPTAINER_CONTAINER": "/scratch/u/pulse-repro.sif"}


def blocked(tmp_path: Path, name: str) -> Path:
    """A directory that cannot be created, whoever asks (root too): a file stands where its parent would be.
    What an unbound path in Apptainer's read-only image gives: mkdir fails, nothing to write to."""
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / name


@pytest.mark.parametrize("variable", ["SINGULARITY_CONTAINER", "APPTAINER_CONTAINER"])
def test_runtime_is_recognised(entrypoint, variable):
    assert entrypoint.runtime({variable: "/x.sif"}) == "apptainer"
    assert entrypoint.runtime({}) == "docker"


def test_apptainer_run_directory_not_bound(entrypoint, tmp_path):
    argv = ["all", "--profile", "tiny", "--out", str(blocked(tmp_path, "runs/tiny"))]
    with pytest.raises(entrypoint.Preflight) as caught:
        entrypoint.preflight(argv, dict(APPTAINER), tiny_profile(), cuda_available=lambda: False)
    line = str(caught.value)
    assert "\n" not in line and f"cannot write the run directory {argv[-1]} as uid {os.getuid()}" in line
    assert 'read-only under Apptainer' in line and '--bind "$PWD/runs:/runs"' in line
    with pytest.raises(entrypoint.Preflight, match=r'--user "\$\(id -u\):\$\(id -g\)"'):  # Docker's hint
        entrypoint.preflight(argv, {}, tiny_profile(), cuda_available=lambda: False)


def test_apptainer_kit_cache_not_bound(entrypoint, tmp_path):
    env = {**APPTAINER, "PULSE_CACHE": str(blocked(tmp_path, "pulse-cache"))}
    argv = ["all", "--profile", "tiny", "--out", str(tmp_path / "runs" / "tiny")]
    with pytest.raises(entrypoint.Preflight, match=r"cannot write the kit's cache PULSE_CACHE=.*--bind"):
        entrypoint.preflight(argv, env, tiny_profile(), cuda_available=lambda: False)
    env["PULSE_CACHE"] = str(tmp_path / "hf" / "pulse-cache")
    assert entrypoint.preflight(argv, env, tiny_profile(), cuda_available=lambda: False) == {}


def test_apptainer_hf_cache_not_bound_when_something_is_to_download(entrypoint, tmp_path):
    env = {**APPTAINER, "HF_HOME": str(blocked(tmp_path, "hf"))}
    argv = ["all", "--out", str(tmp_path / "runs" / "o")]
    cannot_write = (r"downloads model llava-hf/llava-1.5-13b-hf, .* into .*which uid \d+ cannot write: "
                    r".*--bind /path/to/hf-cache:/data/hf")
    with pytest.raises(entrypoint.Preflight, match=cannot_write):
        entrypoint.preflight(argv, env, gpu_profile(), driver_version=lambda: NEW_DRIVER, **GPU)
    env["HF_HOME"] = str(tmp_path / "hf")  # bound
    assert entrypoint.preflight(argv, env, gpu_profile(), driver_version=lambda: NEW_DRIVER, **GPU) == {}


def test_apptainer_without_nv_names_nv(entrypoint, tmp_path):
    nv = "none is visible in the container: run with `apptainer run --nv"
    with pytest.raises(entrypoint.Preflight, match=nv):
        entrypoint.preflight(["all", "--out", str(tmp_path / "o")], dict(APPTAINER), gpu_profile(),
                             driver_version=lambda: None, **NO_GPU)


def test_writable_dir_says_no_for_a_directory_the_user_does_not_own(tmp_path):
    """Apptainer runs the image as the calling user: a directory another user owns (mode 0755) is not theirs
    to write. As root, the check runs as `nobody` (root writes through permissions), with a system Python
    that user can execute (the entrypoint needs only the standard library to load)."""
    if os.getuid() == 0:
        python, user = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin"), 65534
        if python is None:
            pytest.skip("no system python3 for another user")
    else:
        python, user = sys.executable, None
    base = Path(tempfile.mkdtemp(prefix="pulse-rw-"))  # not in pytest's 0700 tmp: the other user reaches it
    try:
        base.chmod(0o755)
        theirs = base / "theirs"
        theirs.mkdir()
        theirs.chmod(0o755 if user is not None else 0o555)
        code = ("import importlib.util, sys; from pathlib import Path; "
                "spec = importlib.util.spec_from_file_location('e', sys.argv[1]); "
                "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
                "print(m.writable_dir(Path(sys.argv[2])), m.writable_dir(Path(sys.argv[2]) / 'sub'))")
        done = subprocess.run([python, "-c", code, str(ENTRYPOINT), str(theirs)], capture_output=True,
                              text=True, user=user, env={"PATH": "/usr/bin:/bin"}, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["False", "False"]
    finally:
        (base / "theirs").chmod(0o755)
        shutil.rmtree(base)


def test_writable_dir(entrypoint, tmp_path):
    assert entrypoint.writable_dir(tmp_path / "a" / "b") and (tmp_path / "a" / "b").is_dir()
    assert not entrypoint.writable_dir(blocked(tmp_path, "x"))
