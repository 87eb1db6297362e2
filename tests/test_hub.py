"""Offline in seconds: where the Hugging Face hub does not answer, `preflight`, `run`, `all`, `splits` and
`data check` work from the local HF cache without one retry, or stop with one line that names what is
missing and how to get it there; `pulse-repro fetch` downloads exactly what a profile reads.

The cache is built here: LLaVA-1.5-micro (random weights, LLaVA-1.5's processor from `pulse-repro assets
fetch`) saved and laid out as a hub snapshot in HF_HOME. The hub is made unreachable by pointing HF_ENDPOINT
at a closed port on this machine, or at a socket that never answers.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from repro import hub
from repro.choices import load_profile
from repro.errors import ReproError

ROOT = Path(__file__).resolve().parents[1]
REPO = "pulse-test/llava-micro"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MICRO_FROM_HUB = ["--profile", "llava-1.5-micro", "--set", f"model.source={REPO}", "--set", "model.processor="]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: a connection is refused at once


@pytest.fixture(scope="module")
def micro_snapshot(tmp_path_factory, processor_dir) -> Path:
    """HF_HOME holding LLaVA-1.5-micro as the hub cache lays out a model: blobs named by a commit, refs/main."""
    from repro.model.factory import build_model, load_processor, save_model

    home = tmp_path_factory.mktemp("hf-home")
    repo_dir = home / "hub" / f"models--{REPO.replace('/', '--')}"
    model, processor = build_model(load_profile("llava-1.5-micro").model, load_processor(processor_dir))
    save_model(model, processor, repo_dir / "snapshots" / COMMIT)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return home


def _cli(args: list[str], home: Path, tmp: Path, endpoint: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": endpoint, "PULSE_CACHE": str(tmp / "cache")}
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "repro", *args], cwd=tmp, env=env, text=True,
                          capture_output=True, timeout=600, check=False)


def test_a_cached_snapshot_runs_the_preflight_offline_without_one_retry(micro_snapshot, tmp_path):
    done = _cli(["preflight", *MICRO_FROM_HUB], micro_snapshot, tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert done.returncode == 0, done.stderr
    assert "no problems found" in done.stdout
    assert "working offline from the HF cache" in done.stderr and "unreachable" in done.stderr
    assert "Retrying" not in done.stdout + done.stderr
    assert "in the Hugging Face cache" in done.stdout  # the weights line: the snapshot was found


@pytest.mark.slow  # a process of its own: seconds of imports
def test_weights_missing_from_the_cache_are_one_line_naming_them_and_the_fetch(micro_snapshot, tmp_path):
    home = tmp_path / "hf-home"
    shutil.copytree(micro_snapshot, home)
    for weights in home.rglob("*.safetensors"):
        weights.unlink()
    done = _cli(["preflight", *MICRO_FROM_HUB], home, tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"does not hold model {REPO}'s *.safetensors" in lines[0]
    assert f"`pulse-repro fetch --profile llava-1.5-micro --set model.source={REPO} --set model.processor=`" in lines[0]
    assert "--set model.source=DIR" in lines[0]


@pytest.mark.slow  # a process of its own: seconds of imports
def test_an_empty_cache_stops_a_run_before_it_starts_in_one_line(tmp_path):
    done = _cli(["run", "finetuned", "--profile", "llava-1.5-13b", "--out", str(tmp_path / "run")],
                tmp_path / "empty-home", tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Retrying" not in done.stderr
    for repo in ("model llava-hf/llava-1.5-13b-hf", "dataset MLLMMU/MLLMU-Bench", "dataset lmms-lab/MMBench"):
        assert repo in lines[0]
    assert not (tmp_path / "run").exists()


def test_hf_hub_offline_is_honoured_without_a_probe(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "probe", lambda *a, **k: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    monkeypatch.setattr(hub, "missing_from_cache", lambda repos: [])
    notes = []
    hub.prepare(load_profile("llava-1.5-13b"), "pulse-repro fetch", say=notes.append)
    assert notes == [f"pulse-repro: HF_HUB_OFFLINE is set; working offline from the HF cache {hub.hub_cache()}"]


def test_a_reachable_hub_is_used_as_it_is(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "probe", lambda *a, **k: None)
    monkeypatch.setattr(hub, "missing_from_cache", lambda repos: pytest.fail("the cache was read"))
    hub.prepare(load_profile("llava-1.5-13b"), "pulse-repro fetch", say=pytest.fail)
    assert constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ


def test_going_offline_reaches_huggingface_hub_already_imported(monkeypatch):
    from huggingface_hub import constants, is_offline_mode

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub.go_offline()
    assert is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_probe_is_bounded_by_its_timeout_on_a_socket_that_never_answers():
    with socket.socket() as silent:  # listening, never accepting: the connection opens, no answer comes
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        reason = hub.probe(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
    assert reason == "no answer in 0.3 s"


def test_the_probe_says_why_the_hub_is_unreachable():
    assert hub.probe("http://host.invalid", timeout=2) == "its host name does not resolve"
    assert hub.probe(f"http://127.0.0.1:{_closed_port()}", timeout=2) == "Connection refused"


def test_any_http_answer_means_reachable():
    class Unauthorized(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Unauthorized)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        assert hub.probe(f"http://127.0.0.1:{server.server_address[1]}", timeout=5) is None
    finally:
        thread.join(5)
        server.server_close()


def test_what_each_command_reads_from_the_hub():
    paper = load_profile("llava-1.5-13b")
    repos = {(r.kind, r.repo_id, r.key) for r in hub.hub_repos(paper)}
    assert repos == {("model", "llava-hf/llava-1.5-13b-hf", "model.source"),
                     ("dataset", "MLLMMU/MLLMU-Bench", "data.mllmu"), ("dataset", "lmms-lab/MMBench", "data.mmbench")}
    assert [r.repo_id for r in hub.hub_repos(paper, model=False)] == ["MLLMMU/MLLMU-Bench", "lmms-lab/MMBench"]
    model = hub.hub_repos(paper)[0]
    assert ("*.safetensors",) in model.needs and ("*.safetensors",) not in hub.hub_repos(paper, weights=False)[0].needs
    assert hub.hub_repos(load_profile("tiny")) == []
    world = load_profile("llava-1.5-13b", ["data.mllmu=world", "data.mmbench=world"])
    assert [r.repo_id for r in hub.hub_repos(world)] == ["llava-hf/llava-1.5-13b-hf"]


def test_the_snapshot_check_names_each_missing_part(tmp_path, monkeypatch):
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    monkeypatch.setattr(hub, "cached_snapshot", lambda repo: snapshot)
    model = hub.hub_repos(load_profile("llava-1.5-13b"))[0]
    assert hub.missing(model) == "model llava-hf/llava-1.5-13b-hf"  # an empty snapshot holds nothing
    for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json", "tokenizer.model"):
        (snapshot / name).write_text("{}")
    assert hub.missing(model) == "model llava-hf/llava-1.5-13b-hf's *.safetensors"
    (snapshot / "model-00001-of-00006.safetensors").write_text("")
    assert hub.missing(model) is None
    (snapshot / "tokenizer.model").unlink()
    assert hub.missing(model) == "model llava-hf/llava-1.5-13b-hf's tokenizer.json or tokenizer.model"


def test_fetch_downloads_exactly_what_the_profile_reads(monkeypatch, tmp_path, capsys):
    from huggingface_hub import _snapshot_download

    asked = []

    def download(repo_id, repo_type, local_dir=None, allow_patterns=None):
        path = Path(local_dir) if local_dir else tmp_path / "cache" / repo_id
        path.mkdir(parents=True, exist_ok=True)
        (path / "file").write_bytes(b"x" * 1000)
        asked.append((repo_id, repo_type, allow_patterns, local_dir))
        return str(path)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "probe", lambda *a, **k: None)
    monkeypatch.setattr(_snapshot_download, "snapshot_download", download)
    monkeypatch.setattr("huggingface_hub.snapshot_download", download)
    from repro.cli import main

    assert main(["fetch", "--profile", "llava-1.5-13b", "--local-dir", str(tmp_path / "mirror")]) == 0
    assert asked == [
        ("llava-hf/llava-1.5-13b-hf", "model", list(hub.MODEL_FILES), tmp_path / "mirror" / "llava-hf/llava-1.5-13b-hf"),
        ("MLLMMU/MLLMU-Bench", "dataset", None, tmp_path / "mirror" / "MLLMMU/MLLMU-Bench"),
        ("lmms-lab/MMBench", "dataset", ["en/dev-*.parquet", "MMBench_DEV_EN.tsv"],
         tmp_path / "mirror" / "lmms-lab/MMBench")]
    out = capsys.readouterr().out
    assert f"model llava-hf/llava-1.5-13b-hf: {tmp_path / 'mirror' / 'llava-hf/llava-1.5-13b-hf'} (0.00 GB)" in out


@pytest.mark.slow  # a process of its own: seconds of imports
def test_fetch_where_the_hub_is_unreachable_is_one_line(tmp_path):
    done = _cli(["fetch", "--profile", "llava-1.5-13b"], tmp_path / "home", tmp_path,
                f"http://127.0.0.1:{_closed_port()}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pulse-repro: error: cannot fetch model llava-hf/llava-1.5-13b-hf")
    assert "unreachable (Connection refused)" in lines[0]


def test_fetch_refuses_under_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ReproError, match="HF_HUB_OFFLINE is set: nothing can be fetched"):
        hub.fetch(load_profile("llava-1.5-13b"))


def test_the_tiny_profile_never_probes(monkeypatch, capsys):
    monkeypatch.setattr(hub, "probe", lambda *a, **k: pytest.fail("the tiny profile probed the hub"))
    hub.prepare(load_profile("tiny"), "pulse-repro fetch", say=pytest.fail)
    assert hub.fetch(load_profile("tiny"), say=print) == []
    assert "reads nothing from the Hugging Face hub" in capsys.readouterr().out
