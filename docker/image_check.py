#!/usr/bin/env python3
"""Build Dockerfile.cuda without a Docker engine or registry, then run the image as a reviewer would.

    python docker/image_check.py [--standin IMAGE] [--tag TAG] [--skip-build] [--keep]

The base image (python:3.11-slim-bookworm, pinned by digest) cannot be pulled where no container registry
is reachable: a copy of the Dockerfile with only the FROM reference replaced by a local stand-in
(docker/standin-base.sh) is built with buildah; every other line is the shipped file's. The image is then
run with buildah's chroot isolation (`podman run` needs cgroups and rlimits some kernels' sandboxes refuse)
as its non-root user, with /runs and /data/hf bound from host directories:

  --help; `pip check`; /runs and /data/hf writable by uid 1000; `all --profile tiny` to its verdict (the
  tiny golden ranges may say ENV DIFFERS, the image's torch being a CUDA build; no FAIL); `preflight
  --profile llava-1.5-micro` with LLaVA-1.5's tokenizer bound in (`pulse-repro assets fetch`); the
  entrypoint's old-driver line with a fake `nvidia-smi` bound in; an unwritable /runs giving its one line.

It prints every check's outcome and wall time, the image size and the build time, and exits 1 on the first
check that fails. Stdlib only: it drives buildah and podman, which must be installed (`nox -s image`
installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STANDIN = "localhost/pulse-standin-base:3.11-slim-bookworm"
TAG = "localhost/pulse-repro:standin"
ENTRYPOINT = "/usr/local/bin/pulse-entrypoint"
IMAGE_UID = "1000:1000"  # the Dockerfile's USER
BUILDAH_EXIT = re.compile(r"^(subprocess exited with status \d+|Error: exit status \d+)\s*$")
FROM_RE = re.compile(r"^(FROM\s+(?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE)


class CheckFailed(Exception):
    """A check of the image that did not hold; the message says which and what was seen."""


def substitute_base(dockerfile: str, standin: str) -> tuple[str, str]:
    """The Dockerfile with every FROM that names the pinned base pointed at `standin` instead, and the
    reference it replaced. Stage references (`FROM build`) and every other line stay as they are."""
    stages: set[str] = set()
    bases: set[str] = set()
    out = []
    for line in dockerfile.splitlines(keepends=True):
        match = FROM_RE.match(line.rstrip("\n"))
        if match:
            head, ref, tail = match.groups()
            if ref.lower() not in stages:
                bases.add(ref)
                line = f"{head}{standin}{tail}" + ("\n" if line.endswith("\n") else "")
            stage = re.search(r"\bAS\s+(\S+)", tail, re.IGNORECASE)
            if stage:
                stages.add(stage.group(1).lower())
        out.append(line)
    if len(bases) != 1:
        raise CheckFailed(f"expected one base image in the FROM lines, found {sorted(bases) or 'none'}")
    return "".join(out), bases.pop()


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, check=False, **kwargs)


def image_size(tag: str) -> int:
    done = _run(["podman", "image", "inspect", tag, "--format", "{{.Size}}"])
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip().isdigit() else -1


def build(dockerfile: Path, tag: str) -> float:
    """buildah bud of `dockerfile` with the repository as context, layers cached; its output streamed."""
    cmd = ["buildah", "bud", "--isolation", "chroot", "--layers", "-f", str(dockerfile), "-t", tag, str(ROOT)]
    print("$ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    if subprocess.run(cmd, check=False).returncode != 0:
        raise CheckFailed("the image did not build (buildah's output above)")
    return time.monotonic() - start


class Container:
    """One working container of the image; each check runs a command in it with its own binds."""

    def __init__(self, tag: str):
        done = _run(["buildah", "from", "--pull-never", tag])
        if done.returncode != 0:
            raise CheckFailed(f"buildah from {tag}: {done.stderr.strip()}")
        self.name = done.stdout.strip().splitlines()[-1]
        # buildah 1.28 (Debian bookworm's) mounts an anonymous volume over each of the image's VOLUMEs on every
        # `buildah run`, and whether a `-v` bind to the same path wins depends on Go's map order: seen here,
        # `-v HOST:/runs` silently wrote into a throwaway volume. The working container (not the image) is
        # told to forget its VOLUMEs, so each bind is the mount; `binds reach the host` checks it.
        declared = _run(["podman", "image", "inspect", tag])
        if declared.returncode != 0:
            raise CheckFailed(f"podman image inspect {tag}: {declared.stderr.strip()}")
        self.volumes = sorted((json.loads(declared.stdout)[0].get("Config") or {}).get("Volumes") or {})
        for volume in self.volumes:
            done = _run(["buildah", "config", "--volume", f"{volume}-", self.name])
            if done.returncode != 0:
                raise CheckFailed(f"buildah config --volume {volume}-: {done.stderr.strip()}")

    def run(self, args: list[str], volumes: tuple[str, ...] = (), env: tuple[str, ...] = (),
            user: str = IMAGE_UID, timeout: float = 3600) -> tuple[int, str, float]:
        """(exit code, stdout+stderr, seconds) of `args` run as `user` with the image's environment."""
        cmd = ["buildah", "run", "--isolation", "chroot", "--user", user]
        for volume in volumes:
            cmd += ["-v", volume]
        for var in env:
            cmd += ["-e", var]
        cmd += [self.name, "--", *args]
        start = time.monotonic()
        lines = []
        with subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # streamed: a long run shows its progress as it goes
                print("    | " + line.rstrip(), flush=True)
                lines.append(line)
            rc = proc.wait(timeout=timeout)
        while lines and BUILDAH_EXIT.match(lines[-1]):  # buildah's own report of a non-zero exit, not the command's
            lines.pop()
        return rc, "".join(lines), time.monotonic() - start

    def remove(self) -> None:
        _run(["buildah", "rm", self.name])


def _expect(ok: bool, what: str, output: str) -> None:
    if not ok:
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise CheckFailed(f"{what}; last lines:\n{tail}")


def host_dir(parent: Path, name: str, owner_uid: int | None = 1000, mode: int = 0o755) -> Path:
    path = parent / name
    path.mkdir(parents=True, exist_ok=True)
    if owner_uid is not None:
        os.chown(path, owner_uid, owner_uid)
    path.chmod(mode)
    return path


def checks(ctr: Container, work: Path, assets: Path | None) -> list[tuple[str, str, float]]:
    """Every run check; (name, what was seen, seconds) for each, raising CheckFailed on the first miss."""
    results = []
    runs, hf = host_dir(work, "runs"), host_dir(work, "hf")
    binds = (f"{runs}:/runs", f"{hf}:/data/hf")

    # each bind is the host directory (see Container): a file written in the container is on the host
    rc, out, s = ctr.run(["sh", "-c", "touch /runs/.bind /data/hf/.bind"], binds)
    _expect(rc == 0 and (runs / ".bind").is_file() and (hf / ".bind").is_file(),
            f"binds reach the host: exit {rc}, /runs -> {(runs / '.bind').is_file()}, "
            f"/data/hf -> {(hf / '.bind').is_file()}", out)
    (runs / ".bind").unlink()
    (hf / ".bind").unlink()
    results.append(("binds reach the host (/runs, /data/hf)", f"written as uid 1000; image VOLUMEs {ctr.volumes}", s))

    rc, out, s = ctr.run([ENTRYPOINT, "--help"], binds)
    _expect(rc == 0 and "usage" in out.lower(), f"--help exited {rc}", out)
    results.append(("--help", "usage printed, exit 0", s))

    # unbound: the image's own /runs and /data/hf must be writable by its user
    script = "id -u && pip check && touch /runs/.w /data/hf/.w && rm /runs/.w /data/hf/.w"
    rc, out, s = ctr.run(["sh", "-c", script])
    _expect(rc == 0 and out.splitlines()[0].strip() == "1000", f"user / pip check / writable dirs: exit {rc}", out)
    results.append(("uid, pip check, /runs and /data/hf writable (unbound)", out.splitlines()[1].strip(), s))

    # MLLMU-Bench's generation task: rouge-score, which the image builds from its sdist, scores as on the host
    # ("worked" stems to "work": the peer's use_stemmer=True)
    code = ("from repro.eval.open_tasks import rouge_l; "
            "print(rouge_l('The person works as a chef', 'the person worked as a chef'))")
    rc, out, s = ctr.run(["python", "-c", code])
    _expect(rc == 0 and out.strip().splitlines()[-1:] == ["1.0"], f"rouge-score in the image: exit {rc}", out)
    results.append(("rouge-score (built from its sdist) scores ROUGE-L", "1.0 for a match up to stemming", s))

    rc, out, s = ctr.run([ENTRYPOINT, "all", "--profile", "tiny"], binds)
    # the verdict's closing line: "N passed, 0 failed, ..." (ENV DIFFERS ranges are counted apart, not failed)
    summary = next((line.strip() for line in reversed(out.splitlines()) if re.match(r"\s*\d+ passed, \d+ failed", line)),
                   "")
    _expect(rc == 0 and (runs / "tiny" / "results.jsonl").is_file(),
            f"all --profile tiny exited {rc}, results on the host: {(runs / 'tiny' / 'results.jsonl').is_file()}", out)
    _expect(re.match(r"\d+ passed, 0 failed", summary) is not None, f"the verdict is not clean: {summary!r}", out)
    results.append(("all --profile tiny", f"{summary}; results in {runs / 'tiny'}", s))

    # the paper profile where the hub cannot be reached and nothing is cached: one line, in seconds
    rc, out, s = ctr.run([ENTRYPOINT, "preflight", "--profile", "llava-1.5-13b", "--set", "data.mllmu=world",
                          "--set", "data.mmbench=world"], binds, ("HF_ENDPOINT=http://127.0.0.1:9",))
    lines = [line for line in out.splitlines() if line.strip()]
    _expect(rc == 2 and len(lines) == 1 and "llava-hf/llava-1.5-13b-hf" in lines[0] and "Retrying" not in out,
            f"paper profile offline: exit {rc}, {len(lines)} lines", out)
    results.append(("preflight llava-1.5-13b, hub unreachable, cache empty", lines[0][:150], s))

    if assets is None:
        results.append(("preflight --profile llava-1.5-micro", "SKIPPED: no LLaVA-1.5 assets on the host", 0.0))
    else:
        rc, out, s = ctr.run([ENTRYPOINT, "preflight", "--profile", "llava-1.5-micro"],
                             (*binds, f"{assets}:/opt/pulse-assets:ro"), ("PULSE_ASSETS=/opt/pulse-assets",))
        _expect(rc == 0 and "no problems found" in out, f"preflight llava-1.5-micro exited {rc}", out)
        results.append(("preflight --profile llava-1.5-micro", "no problems found", s))

    fake = work / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 535.104.05\n")  # an R535 driver: too old for CUDA 13.0
    fake.chmod(0o755)
    rc, out, s = ctr.run([ENTRYPOINT, "all"], (*binds, f"{fake}:/usr/local/bin/nvidia-smi:ro"))
    lines = [line for line in out.splitlines() if line.strip()]
    _expect(rc == 2 and len(lines) == 1 and "580" in lines[0], f"old driver: exit {rc}, {len(lines)} lines", out)
    results.append(("old NVIDIA driver (fake nvidia-smi 535)", lines[0][:150], s))

    locked = host_dir(work, "runs-locked", owner_uid=0, mode=0o755)
    rc, out, s = ctr.run([ENTRYPOINT, "all", "--profile", "tiny"], (f"{locked}:/runs", f"{hf}:/data/hf"))
    lines = [line for line in out.splitlines() if line.strip()]
    _expect(rc == 2 and len(lines) == 1 and "cannot write" in lines[0], f"unwritable /runs: exit {rc}", out)
    results.append(("unwritable /runs", lines[0][:150], s))
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--standin", default=STANDIN, help=f"the stand-in base image (default {STANDIN})")
    parser.add_argument("--tag", default=TAG, help=f"the image to build (default {TAG})")
    parser.add_argument("--skip-build", action="store_true", help="run the checks on the image as built")
    parser.add_argument("--assets", type=Path, default=ROOT / ".pulse-assets",
                        help="LLaVA-1.5's tokenizer and processor (pulse-repro assets fetch), for the micro "
                             "pre-flight (default .pulse-assets)")
    parser.add_argument("--keep", action="store_true", help="keep the host directories the runs wrote")
    args = parser.parse_args(argv)
    for tool in ("buildah", "podman"):
        if shutil.which(tool) is None:
            print(f"image_check.py: {tool} is not installed (apt-get install buildah podman)", file=sys.stderr)
            return 2
    if _run(["podman", "image", "exists", args.standin]).returncode != 0:
        print(f"image_check.py: no stand-in base {args.standin}: run docker/standin-base.sh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="pulse-image-"))
    work.chmod(0o755)
    try:
        built = None
        if not args.skip_build:
            text, base = substitute_base((ROOT / "Dockerfile.cuda").read_text(), args.standin)
            print(f"image_check.py: building Dockerfile.cuda with its base {base} replaced by the stand-in "
                  f"{args.standin} (no registry here); every other line as shipped", flush=True)
            dockerfile = work / "Dockerfile.standin"
            dockerfile.write_text(text)
            built = build(dockerfile, args.tag)
        ctr = Container(args.tag)
        try:
            assets = args.assets if (args.assets / "llava-1.5-processor").is_dir() else None
            results = checks(ctr, work, assets)
        finally:
            ctr.remove()
    except CheckFailed as exc:
        print(f"image_check.py: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nimage {args.tag}: {image_size(args.tag) / 1e9:.2f} GB"
          + (f", built in {built:.0f} s" if built is not None else ""))
    for name, seen, seconds in results:
        print(f"  {'ok' if 'SKIPPED' not in seen else '--'}  {name:<55} {seconds:7.1f} s  {seen}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
