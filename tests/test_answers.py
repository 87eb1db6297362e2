"""Answer extraction by each peer's rule (repro/eval/answers.py), on answers whose letter each rule is known
to find or miss: MLLMU-Bench's first character, VLMEvalKit's can_infer (a letter among the last words, else
the text of exactly one option)."""

from __future__ import annotations

import pytest

from repro.choices import load_profile
from repro.errors import ConfigError
from repro.eval.answers import first_letter, vlmevalkit

OPTIONS = {"A": "circle", "B": "square", "C": "star", "D": "ring"}


@pytest.mark.parametrize(("text", "mllmu", "vlmeval"), [
    ("A", "A", "A"),
    (" b) square", "B", "B"),              # first character, upper-cased; the letter stands alone after ')'
    ("B.", "B", "B"),
    ("The answer is C", "", "C"),          # VLMEvalKit: the letter is among the last words
    ("(D) ring", "", "D"),
    ("square", "", "B"),                   # the text of exactly one option
    ("I think the shape is a star", "", "C"),
    ("It is a circle or a square", "", ""),  # two options' texts: no answer
    ("Cannot determine the answer", "C", ""),  # a refusal: VLMEvalKit's Z, no option
    ("E", "", ""),
])
def test_each_rule_reads_the_letter_its_peer_reads(text, mllmu, vlmeval):
    assert first_letter(text, OPTIONS) == mllmu
    assert vlmevalkit(text, OPTIONS) == vlmeval


def test_a_letter_early_in_a_long_answer_is_not_vlmevalkits_answer():
    """can_infer_option takes a lone letter only among the last four words."""
    assert vlmevalkit("A is wrong because the shape has corners and no curve at all", OPTIONS) == ""
    assert vlmevalkit("A is not the shape", OPTIONS) == ""     # fifth word from the end: too early
    assert vlmevalkit("B is the shape", OPTIONS) == "B"        # fourth from the end: taken


@pytest.mark.parametrize(("text", "letter"), [
    ("The correct answer is **b**", "B"),   # no lone capital letter: the spelled-out answer, upper-cased
    ("the answer is c", "C"),
    ("The answer is e", ""),                # a letter that is no option
    ("Z. The answer is apple", ""),         # a lone Z is VLMEvalKit's refusal, before any spelled-out answer
    ("Answer: AX", ""),                     # a letter glued to another is not a lone letter
])
def test_vlmevalkits_spelled_out_answer_and_refusal(text, letter):
    assert vlmevalkit(text, OPTIONS) == letter


def test_vlmevalkit_reads_an_options_text_only_in_an_answer_at_most_twice_the_options_length():
    """can_infer_text gives up on an answer longer than twice the options' texts together (20 characters
    here): at exactly 40 characters it still reads one."""
    assert sum(map(len, OPTIONS.values())) == 20
    at_limit = "it looks like a square shape to me, i sa"
    assert len(at_limit) == 40 and vlmevalkit(at_limit, OPTIONS) == "B"
    over = "it looks like a square shape to me and to you, i say so"
    assert 40 < len(over) <= 60 and vlmevalkit(over, OPTIONS) == ""


@pytest.mark.parametrize(("override", "named"), [
    ("eval.mmbench_template=vicuna", "eval.mmbench_template 'vicuna'"),
    ("eval.mmbench_answer=judge", "eval.mmbench_answer 'judge'"),
    ("eval.generate_tokens=0", "eval.generate_tokens 0"),
    ("model.processor=asset:llava-1.5", "only a model built from config"),
])
def test_peer_options_are_checked_when_the_profile_loads(override, named):
    profile = "llava-1.5-13b" if override.startswith("model.") else "tiny"
    with pytest.raises(ConfigError, match=named):
        load_profile(profile, [override])


def test_few_shot_is_refused_not_ignored():
    """MLLMU-Bench's one-shot demonstrations are not implemented: the key is unknown, not accepted and dropped."""
    with pytest.raises(ConfigError, match="unknown profile key 'eval.few_shot'"):
        load_profile("tiny", ["eval.few_shot=1"])
