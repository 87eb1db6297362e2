"""Answer extraction: the option letter a model's generated text gives, by one peer's rule.

- `first-letter`: MLLMU-Bench's eval.py: the first non-space character, upper-cased, if it is an option
  letter (`assistant_response[0].upper() ... in options`).
- `vlmevalkit`: VLMEvalKit's `can_infer` (vlmeval/utils/matching_util.py, as of its PR #1552): a letter
  standing alone among the last words of the answer, else the text of exactly one option inside it.
  VLMEvalKit sends what neither finds to a judge model; here that is no answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from repro.registry import Registry

NO_ANSWER = ""
# can_infer_option's refusals: an explicit "cannot answer" is option Z, never a letter
_REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
             "I'm sorry, but without the image provided", "Cannot determine the answer")
_VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def first_letter(text: str, options: Mapping[str, str]) -> str:
    """MLLMU-Bench: the first non-space character, upper-cased, if it is one of the option letters."""
    text = text.lstrip()
    return text[0].upper() if text and text[0].upper() in options else NO_ANSWER


def _infer_option(answer: str, options: Mapping[str, str]) -> str:
    if any(refusal in answer for refusal in _REFUSALS):
        return "Z"
    answer_mod = answer
    for c in ".()[],:;!*#{}":
        answer_mod = answer_mod.replace(c, " ")
    splits = [x.strip() for x in answer_mod.split()]
    count = sum(c in splits for c in options)
    if count == 1:
        for ch in options:
            if ch in splits and splits.index(ch) > len(splits) - 5:
                return ch
    elif count == 0 and sum(c in splits for c in ("Z", "")) == 1:
        return "Z"
    match = _VERBOSE_ANSWER.search(answer)
    if match and match.group(1).upper() in options:
        return match.group(1).upper()
    return NO_ANSWER


def _infer_text(answer: str, options: Mapping[str, str]) -> str:
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in options.values()):
        return NO_ANSWER
    found = [k for k, v in options.items() if str(v).lower() in answer]
    return found[0] if len(found) == 1 else NO_ANSWER


def vlmevalkit(text: str, options: Mapping[str, str]) -> str:
    """VLMEvalKit's can_infer: the option letter, else the one option whose text the answer contains.
    An explicit refusal ("Z") counts as no answer, as it matches no option."""
    letter = _infer_option(text, options) or _infer_text(text, options)
    return letter if letter in options else NO_ANSWER


ANSWER_RULES: Registry[Callable[[str, Mapping[str, str]], str]] = Registry("answer rule")
ANSWER_RULES.add("first-letter", first_letter)
ANSWER_RULES.add("vlmevalkit", vlmevalkit)
