"""The four PULSE experiments (docs/design.md, "The protocol") over one shared session, and `all`."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

from repro import distributed
from repro.atomic import atomic_write_text
from repro.choices import check_choices
from repro.config import Profile
from repro.data.records import Person
from repro.data.splits import build_manifest, select_celebrities, write_manifest
from repro.environment import environment
from repro.errors import ReproError
from repro.eval.benchmarks import BENCHMARKS
from repro.eval.intervals import measured
from repro.eval.metrics import person_accuracy
from repro.experiments.results import ResultsFile
from repro.experiments.session import Session
from repro.experiments.unlearn import unlearn_request
from repro.run_profile import read_run_profile
from repro.train.loop import Diverged

PAPER_TARGET = "proj+llm"  # paper section 4: projector and language model are updated
MODALITY_TARGETS = ("proj+llm", "llm")  # paper Table B


class Runner:
    def __init__(self, profile: Profile, run_dir: Path, units: Path | None = None):
        self.profile, self.run_dir = profile, run_dir
        self._claim_run_dir()
        self.session = Session(profile, run_dir, units=units)
        self.results = ResultsFile(run_dir / "results.jsonl") if distributed.is_main() else None
        self.celebrity_selection: dict | None = None

    def _claim_run_dir(self) -> None:
        """A run directory belongs to one resolved profile and one numeric environment: never mix two
        profiles' numbers, or units computed under two instruction sets."""
        path = self.run_dir / "profile.json"
        resolved = json.dumps(self.profile.to_dict(), sort_keys=True, indent=2)
        # Under a launcher rank 0's view decides, so that every rank stops (or goes on) together.
        if distributed.rank0_decides(path.exists() and path.read_text() != resolved):
            raise ReproError(f"{self.run_dir} holds a run of another profile (see {path}); use another --out")
        env, env_path = environment(), self.run_dir / "environment.json"
        before = json.loads(env_path.read_text()) if env_path.exists() else env
        moved = [f"{k}: {before.get(k)} then, {env.get(k)} now" for k in ("device", "cpu_capability")
                 if before.get(k) != env.get(k)]
        # Units made under another instruction set compute other floats: a resumed run would mix the two.
        if distributed.rank0_decides(bool(moved)):
            raise ReproError(f"{self.run_dir} holds a run made in another numeric environment ({'; '.join(moved)}; "
                             f"see {env_path}); use another --out")
        if not distributed.is_main():
            return  # only rank 0 writes artefacts
        atomic_write_text(path, resolved)
        atomic_write_text(env_path, json.dumps(env, sort_keys=True, indent=2))

    # ---- measuring --------------------------------------------------------------------------
    def measure(self, model_key: str, splits: dict[str, list[Person]]) -> list[dict]:
        """Accuracy records of one model on D_unlearn/D_retain/shards (per modality) and the benchmarks: split,
        modality, accuracy, n, and the 95% interval from a bootstrap over people (over questions or circular
        groups for MMBench) with the clusters' counts (repro/eval/intervals.py)."""
        out = []
        e = self.profile.eval
        union = sorted({p.key: p for people in splits.values() for p in people}.values(), key=lambda p: p.key)
        items = self.session.data.person_items(union)  # shards are parts of D_unlearn: each question scored once
        preds = self.session.evaluate(model_key, items, "eval people")
        for split, people in splits.items():
            keys = {p.key for p in people}
            mine = [it for it in items if it.person in keys]
            for modality in ("all", *sorted({it.modality for it in mine})):
                asked = [it for it in mine if modality in ("all", it.modality)]
                out.append({"split": split, "modality": modality,
                            **measured(asked, preds, lambda it: it.person, e.bootstrap_resamples, self.profile.seed)})
        evaluate = functools.partial(self.session.evaluate, model_key)
        for name in e.benchmarks:
            out += BENCHMARKS.get(name).measure(evaluate, self.session.data, splits, e, self.profile.seed)
        return out

    def record(self, experiment: str, method: str, target: str, step: int, model_key: str,
               measured: list[dict]) -> None:
        base = {"experiment": experiment, "method": method, "target": target, "step": step,
                "profile": self.profile.name, "seed": self.profile.seed, "model": model_key}
        if self.results is not None:  # None on the ranks other than 0 under a launcher
            self.results.append([{**base, **m} for m in measured])

    def diverged(self, experiment: str, method: str, target: str, step: int, exc: Diverged) -> None:
        event = {"experiment": experiment, "method": method, "target": target, "request": step,
                 "optimizer_step": exc.step, "loss": str(exc.loss)}
        if not distributed.is_main():
            return
        line = json.dumps(event, sort_keys=True) + "\n"
        path = self.run_dir / "diverged.jsonl"
        print(f"pulse-repro: {experiment} {method} {target} request {step} diverged: {exc}")
        if path.exists() and line in path.read_text().splitlines(keepends=True):
            return  # a resumed run meets the same divergence again: it is recorded once
        with path.open("a") as fh:
            fh.write(line)

    def write_manifest(self) -> None:
        if not distributed.is_main():
            return
        d = self.session.data
        manifest = build_manifest(self.profile, d.fictional, None, d.source_hash)
        manifest["celebrities"] = self.celebrity_selection
        write_manifest(manifest, self.run_dir / "manifest.json")

    # ---- experiments ------------------------------------------------------------------------
    def _one_step(self, experiment: str, start: str, unlearn: list[Person], retain: list[Person],
                  methods, targets) -> None:
        splits = {"unlearn": unlearn, "retain": retain}
        before = self.measure(start, splits)
        for method in methods:
            for target in targets:
                self.record(experiment, method, target, 0, start, before)
                try:
                    key, _ = unlearn_request(self.session, start, unlearn, retain, method, target)
                except Diverged as exc:
                    self.diverged(experiment, method, target, 1, exc)
                    continue
                self.record(experiment, method, target, 1, key, self.measure(key, splits))

    def finetuned(self, methods, targets) -> None:
        s = self.session
        self._one_step("finetuned", s.finetuned(), s.data.split("unlearn"), s.data.split("retain"), methods,
                       targets or (PAPER_TARGET,))

    def select_celebrities(self) -> dict:
        """Behaviour-based selection: score the base model on every celebrity, keep those it knows."""
        if self.celebrity_selection is None:
            s = self.session
            items = s.data.person_items(s.data.celebrities)
            scores = person_accuracy(items, s.evaluate(s.base_key, items, "eval celebrities"))
            self.celebrity_selection = select_celebrities(scores, self.profile.splits, self.profile.split_seed)
            self.write_manifest()
        return self.celebrity_selection

    def pretrained(self, methods, targets) -> None:
        s = self.session
        selection = self.select_celebrities()
        self._one_step("pretrained", s.base_key, s.data.people(selection["unlearn"]),
                       s.data.people(selection["retain"]),
                       methods, targets or (PAPER_TARGET,))

    def sustainability(self, methods, targets) -> None:
        s = self.session
        start = s.finetuned()
        shards = [s.data.people(keys) for keys in s.data.fictional_splits["shards"]]
        splits = {"unlearn": s.data.split("unlearn"), "retain": s.data.split("retain")}
        splits.update({f"shard_{i}": shard for i, shard in enumerate(shards, 1)})
        for method in methods:
            for target in targets or (PAPER_TARGET,):
                key = start
                self.record("sustainability", method, target, 0, key, self.measure(key, splits))
                for k, shard in enumerate(shards, 1):
                    try:
                        key, _ = unlearn_request(s, key, shard, splits["retain"], method, target)
                    except Diverged as exc:
                        self.diverged("sustainability", method, target, k, exc)
                        break
                    self.record("sustainability", method, target, k, key, self.measure(key, splits))

    def modality(self, methods, targets) -> None:
        s = self.session
        self._one_step("modality", s.finetuned(), s.data.split("unlearn"), s.data.split("retain"),
                       methods or ("ga",), targets or MODALITY_TARGETS)


def _timed(runner: Runner, name: str, methods, targets, stages: dict) -> None:
    t0 = time.perf_counter()
    getattr(runner, name)(methods, targets)
    stages[name] = round(time.perf_counter() - t0, 1)
    if distributed.is_main():
        print(f"pulse-repro: {name} done in {stages[name]:.0f} s")


def run_experiment(profile: Profile, run_dir: Path, experiment: str, methods=None, targets=None,
                   units: Path | None = None) -> int:
    check_choices(profile, methods or (), targets or ())
    runner = Runner(profile, run_dir, units)
    runner.write_manifest()
    default_methods = ("ga",) if experiment == "modality" else profile.unlearn.methods
    _timed(runner, experiment, tuple(methods or default_methods), tuple(targets or ()), {})
    return 0


def run_all(profile: Profile, run_dir: Path, verify: bool = True, units: Path | None = None) -> int:
    """Every experiment, the report, then (with `verify`) the verdict against the profile's golden file."""
    stages = run_protocol(profile, run_dir, units)
    if not distributed.is_main():
        return 0  # rank 0 gives the verdict
    return conclude(run_dir, stages, verify=verify)


def run_protocol(profile: Profile, run_dir: Path, units: Path | None = None) -> dict[str, float]:
    """Every experiment, then the report; returns the wall time of each stage."""
    runner = Runner(profile, run_dir, units)
    runner.write_manifest()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    for name in ("finetuned", "pretrained", "sustainability", "modality"):
        methods = ("ga",) if name == "modality" else profile.unlearn.methods
        _timed(runner, name, methods, (), stages)
    stages["total"] = round(time.perf_counter() - t0, 1)
    if distributed.is_main():
        write_outputs(run_dir, stages)
    return stages


def write_outputs(run_dir: Path, stages: dict[str, float]) -> None:
    """What a finished protocol leaves besides its records: the stage times and the report."""
    from repro.report.write import write_report

    atomic_write_text(run_dir / "stages.json", json.dumps(stages, indent=2))
    write_report(run_dir)


def conclude(run_dir: Path, stages: dict[str, float], how: str = "", verify: bool = True) -> int:
    """The verdict against the profile's golden file (with `verify`), then where everything is; the
    verdict's status."""
    status = _verify(run_dir) if verify else 0
    print(f"\nresults: {run_dir / 'results.jsonl'}\nmanifest: {run_dir / 'manifest.json'}\n"
          f"tables and figures: {run_dir / 'report'}\nwall time: {stages['total']:.0f} s{how}")
    return status


def _verify(run_dir: Path) -> int:
    """`all` ends with the verdict against the profile's golden file (the one recorded with the run's
    evaluation settings, where there are several), when there is one."""
    from repro.report.verify import golden_for_run, verify_run

    try:
        golden = golden_for_run(run_dir, run_dir_profile(run_dir))
    except ReproError as exc:
        print(f"pulse-repro: no verdict: {exc}")
        return 0
    return verify_run(run_dir, golden)


def run_dir_profile(run_dir: Path) -> str:
    return read_run_profile(run_dir).name


