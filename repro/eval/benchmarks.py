"""What is measured besides the people's classification questions, before and after every request; a profile
lists them (`eval.benchmarks`). Two kinds, each registered with where its items come from, how answers are
read and the records it gives (a split name each, with its value, n and interval):

- a question set of its own (`QuestionSet`): MMBench, the paper's general ability, measured beside D_retain;
- a task on the people of every split (`PeopleTask`): MLLMU-Bench's generation and fill-in-the-blank tasks,
  answered in words; records `<split>_<task>` per modality, resampled by person like the people's
  classification records, with `metric` naming what `accuracy` holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repro.config import EvalConfig
from repro.data.circular import groups_correct, is_original
from repro.data.records import Person
from repro.errors import ReproError
from repro.eval.answering import Letters, Words
from repro.eval.intervals import interval_fields, measured
from repro.eval.items import Item, fill_blank_items, generation_items
from repro.eval.open_tasks import fill_blank_score, generation_score
from repro.model.families.base import Dialect
from repro.registry import Registry

# items, predictions, bootstrap resamples, seed -> {"accuracy", "n", "ci_low", "ci_high", "clusters", ...}
Score = Callable[[Sequence[Item], Mapping[str, str], int, int], dict]
# (items, progress label, how answers are got) -> predictions: Session.evaluate for one model
Evaluate = Callable[..., dict[str, str]]


@dataclass(frozen=True)
class QuestionSet:
    items: Callable[[Any], list[Item]]  # the run's data (repro/experiments/data.py) -> the items scored
    rule: Callable[[EvalConfig], str]  # the answer rule of letter scoring (repro/eval/answers.py)
    records: dict[str, Score]  # split name -> its score, all from the same predictions
    desc: str  # the progress label

    def holds(self, split: str) -> bool:
        """Whether a record of `split` is one of this set's."""
        return split in self.records

    def measure(self, evaluate: Evaluate, data: Any, splits: Mapping[str, list[Person]], cfg: EvalConfig,
                seed: int) -> list[dict]:
        items = self.items(data)
        preds = evaluate(items, self.desc, Letters(self.rule(cfg)))
        return [{"split": split, "modality": "all", **score(items, preds, cfg.bootstrap_resamples, seed)}
                for split, score in self.records.items()]


@dataclass(frozen=True)
class PeopleTask:
    name: str  # the records' split suffix
    items: Callable[[list[Person], Dialect], list[Item]]  # people, the family's dialect -> their questions
    score: Callable[[Item, str], float]  # one answer's score in [0, 1] (repro/eval/open_tasks.py)
    metric: str  # what a record's `accuracy` holds: "accuracy" (percent right) or "rougeL" (mean F x 100)

    def holds(self, split: str) -> bool:
        """Whether a record of `split` is one of this task's (`<people split>_<task>`)."""
        return split.endswith(f"_{self.name}")

    def measure(self, evaluate: Evaluate, data: Any, splits: Mapping[str, list[Person]], cfg: EvalConfig,
                seed: int) -> list[dict]:
        union = sorted({p.key: p for people in splits.values() for p in people}.values(), key=lambda p: p.key)
        items = self.items(union, data.dialect)  # each question answered once, whatever the splits it is in
        if union and not items:  # the data lacks the task's column (a person without questions is just left out)
            raise ReproError(f"eval.benchmarks has {self.name!r}, but none of the {len(union)} people measured has "
                             f"such questions in the data (first: {union[0].key}); remove it from eval.benchmarks")
        preds = evaluate(items, f"eval {self.name}", Words())
        out = []
        for split, people in splits.items():
            keys = {p.key for p in people}
            mine = [it for it in items if it.person in keys]
            for modality in ("all", *sorted({it.modality for it in mine})):
                asked = [it for it in mine if modality in ("all", it.modality)]
                out.append({"split": f"{split}_{self.name}", "modality": modality, "metric": self.metric,
                            **measured(asked, preds, lambda it: it.person, cfg.bootstrap_resamples, seed,
                                       self.score)})
        return out


Benchmark = QuestionSet | PeopleTask


def _single_pass(items: Sequence[Item], preds: Mapping[str, str], resamples: int, seed: int) -> dict:
    """MMBench single pass: the originals, each question its own cluster (the paper's 75.1 fits it)."""
    return measured([it for it in items if is_original(int(it.uid))], preds, lambda it: it.uid, resamples, seed)


def _circular(items: Sequence[Item], preds: Mapping[str, str], resamples: int, seed: int) -> dict:
    """MMBench circular (VLMEvalKit, the leaderboard's): a group counts only if every copy is right; the
    clusters are the groups."""
    ok = groups_correct(items, lambda it: int(it.uid), lambda it: it.answer, {int(u): p for u, p in preds.items()})
    per_cluster = {str(g): [int(v), 1] for g, v in ok.items()}
    accuracy = 100.0 * sum(ok.values()) / len(ok) if ok else float("nan")
    return {"accuracy": round(accuracy, 4), "n": len(ok), **interval_fields(per_cluster, resamples, seed)}


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
BENCHMARKS.add("mmbench", QuestionSet(lambda data: data.mmbench_items(), lambda cfg: cfg.mmbench_answer,
                                      {"mmbench": _single_pass, "mmbench_circular": _circular}, "eval mmbench"))
# MLLMU-Bench's own tasks (eval.py): each person's `Generation_Task` scored by ROUGE-L, and `Mask_Task`.
BENCHMARKS.add("generation", PeopleTask("generation", generation_items, generation_score, "rougeL"))
BENCHMARKS.add("fill_blank", PeopleTask("fill_blank", fill_blank_items, fill_blank_score, "accuracy"))


def benchmark_of(split: str) -> str | None:
    """The benchmark a record's split belongs to (`mmbench_circular`: mmbench, `shard_2_generation`: generation);
    None for the people's classification records, which every run measures."""
    return next((name for name, bench in BENCHMARKS.items() if bench.holds(split)), None)
