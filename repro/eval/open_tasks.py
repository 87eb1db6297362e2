"""How MLLMU-Bench scores an answer in words (eval.py of github.com/YokeYao/MLLMU-Bench at b83832a):

- generation task: ROUGE-L F-measure of the answer against `Ground_Truth`, from Google's `rouge-score`
  (`RougeScorer(["rougeL"], use_stemmer=True)`, as the peer constructs it; it also reports ROUGE-1/2 and BLEU);
- fill-in-the-blank task: right when `Ground_Truth`, lower-cased, is inside the lower-cased answer.

Each gives one answer's score in [0, 1]; a record's value is the mean, in percent (repro/eval/intervals.py).
"""

from __future__ import annotations

from functools import cache

from repro.errors import ReproError
from repro.eval.items import Item


@cache
def _rouge_l():
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # a dependency of the kit; an environment built by hand may lack it
        raise ReproError("the generation task needs the rouge-score package (pip install rouge-score==0.1.2, "
                         "as requirements/ci.txt pins it)") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(reference: str, answer: str) -> float:
    """ROUGE-L F-measure of `answer` against `reference`, in [0, 1]."""
    return _rouge_l().score(reference, answer)["rougeL"].fmeasure


def contains_answer(reference: str, answer: str) -> float:
    """1.0 when the reference appears in the answer, case aside; else 0.0."""
    return float(reference.lower() in answer.lower())


def generation_score(item: Item, answer: str) -> float:
    return rouge_l(item.answer, answer)


def fill_blank_score(item: Item, answer: str) -> float:
    return contains_answer(item.answer, answer)
