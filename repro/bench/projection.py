"""The paper grid's wall time on this device, projected from the bench's measured throughput and the
grid's sizes (the splits and methods of the paper profile the shape is named after). A projection, not a measurement: it
counts every training example and every evaluated question of `pulse-repro all` once and divides by
the measured rates, so it leaves out model loading and the run's bookkeeping."""

from __future__ import annotations

from repro.choices import load_profile
from repro.config import Profile
from repro.data.records import Person
from repro.model.families import family_named
from repro.train.examples import knowledge_examples

QUESTIONS_PER_PERSON = 10  # MLLMU-Bench: 5 image-textual + 5 pure-text multiple-choice questions
MMBENCH_DEV_QUESTIONS = 1164  # MMBench dev-en, distinct questions (one pass, the paper profile's setting)
CELEBRITIES = 153  # MLLMU-Bench Retain_Set: every celebrity is scored once for the selection


def grid(paper: Profile, examples_per_person: float) -> dict:
    """Training examples per stage and questions per evaluation of `all` under `paper`'s values."""
    s, f, u = paper.splits, paper.finetune, paper.unlearn
    methods = len(u.methods)
    fictional_q = s.fictional_pool * QUESTIONS_PER_PERSON + MMBENCH_DEV_QUESTIONS
    celebrity_q = s.celebrity_keep * QUESTIONS_PER_PERSON + MMBENCH_DEV_QUESTIONS
    per_shard = s.unlearn // s.shards
    return {
        "finetune_examples": f.epochs * s.fictional_pool * examples_per_person,
        # per method: fine-tuned request, pre-trained request, five chained requests (shards of D_unlearn)
        "unlearn_examples_per_method": u.epochs * examples_per_person
        * (s.unlearn + s.celebrity_unlearn + s.shards * per_shard),
        "modality_ga_llm_examples": u.epochs * examples_per_person * s.unlearn,  # the one extra target
        # vanilla + one model per method; one per method on the kept celebrities; 5 chained per method;
        # GA with the llm target (GA proj+llm is the fine-tuned experiment's model, evaluated once)
        "eval_questions": (1 + methods) * fictional_q + methods * celebrity_q + s.shards * methods * fictional_q
        + fictional_q,
        # the base model's: the selection over every celebrity, then the kept ones. Its predictions are
        # cached by the base model's key, which `all --seeds` shares: made once for every seed.
        "base_eval_questions": CELEBRITIES * QUESTIONS_PER_PERSON + celebrity_q,
    }


def project(people: list[Person], samples_per_s: dict, eval_qps: float, paper_profile: str) -> dict | None:
    """Projected hours of `paper_profile`'s grid from the measured rates; None when a rate is missing."""
    paper = load_profile(paper_profile)
    per_person = len(knowledge_examples(people, paper.finetune, family_named(paper.model.family).dialect)) / max(1, len(people))
    g = grid(paper, per_person)
    rates = [samples_per_s.get(m) for m in ("finetune", *paper.unlearn.methods)]
    if not eval_qps or any(not r for r in rates):
        return None
    seconds = {
        "finetune": g["finetune_examples"] / samples_per_s["finetune"],
        **{m: g["unlearn_examples_per_method"] / samples_per_s[m] for m in paper.unlearn.methods},
        "modality": g["modality_ga_llm_examples"] / samples_per_s["ga"],
        "evaluation": g["eval_questions"] / eval_qps,
        "base_evaluation": g["base_eval_questions"] / eval_qps,
    }
    hours = sum(seconds.values()) / 3600
    # `all --seeds 0 1 2` repeats everything but the base model's evaluations per seed (each seed fine-tunes
    # and unlearns its own models)
    per_seed = hours - seconds["base_evaluation"] / 3600
    return {"hours": round(hours, 3), "hours_three_seeds": round(3 * per_seed + seconds["base_evaluation"] / 3600, 3),
            "seconds_by_stage": {k: round(v, 1) for k, v in seconds.items()},
            "grid": {k: round(v, 1) for k, v in g.items()},
            "examples_per_person": round(per_person, 2)}
