"""LLaVA-1.5's prompts as the tests write them: the llava family's dialect (repro/model/families/llava.py)."""

from repro.model.families.llava import IMAGE_TOKEN, Llava

DIALECT = Llava.dialect
__all__ = ["DIALECT", "IMAGE_TOKEN", "mcq_prompt", "mmbench_prompt", "training_text"]


def mcq_prompt(q, demonstrations=()):
    return DIALECT.mcq(q, demonstrations)


def mmbench_prompt(q, template="plain"):
    return DIALECT.mmbench(q, template)


def training_text(question: str, answer: str, with_image: bool) -> tuple[str, str]:
    """(prompt, answer_text); their concatenation is `USER: <image>\\n{q}\\nASSISTANT: {a}</s>`."""
    return DIALECT.context(question, with_image), DIALECT.answer(answer)
