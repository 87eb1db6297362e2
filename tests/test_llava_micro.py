"""The paper profile's code path on the real artefacts: LLaVA-1.5's tokenizer and processor (fetched by
`pulse-repro assets fetch`), 336-px images expanded into 576 image tokens, and the whole protocol on the
`llava-1.5-micro` profile (LLaVA-1.5 shrunk, random weights over the real vocabulary).

Without the fetched processor these tests skip, saying how to fetch it; where PULSE_REQUIRE_ASSETS is set
(CI sets it after fetching) they fail instead, so a CI that lost the asset cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from llava_text import training_text
from PIL import Image
from processes import sigkill_when

from repro.choices import load_profile
from repro.experiments.results import IDENTITY, read_results
from repro.model.factory import load_processor
from repro.model.prompts import IGNORE, encode_prompts, encode_training_batch

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "llava-1.5-micro"
IMAGE_ID, PAD_ID, BOS_ID, EOS_ID = 32000, 32001, 1, 2


@pytest.fixture(scope="module")
def processor(processor_dir):
    return load_processor(processor_dir)


# ---- the tokenizer and processor are LLaVA-1.5's ---------------------------------------------------------

# LLaMA's ids: "Hello world" as published for LLaMA / Vicuna; the others are llama-tokenizer-js's own test
# cases (its llama-tokenizer.js, runTests), computed with Meta's SentencePiece model.
LLAMA_CASES = {
    "Hello world": [1, 15043, 3186],
    "How are you?": [1, 1128, 526, 366, 29973],
    "grabbed": [1, 2646, 1327, 287],
    "\n": [1, 29871, 13],
    "ax\n####\nboo": [1, 4853, 13, 4136, 13, 833, 29877],
    "镇": [1, 29871, 30411],
    "🦙": [1, 29871, 243, 162, 169, 156],  # byte fallback: four <0x..> pieces
}


def test_the_tokenizer_is_llamas_with_llavas_added_tokens(processor):
    tok = processor.tokenizer
    for text, ids in LLAMA_CASES.items():
        assert tok(text)["input_ids"] == ids, text
    # legacy: false, as llava-hf's tokenizer_config.json says: no "▁" (29871) between <image> and the newline
    # (legacy: true gives [..., 32000, 29871, 13, ...]); transformers 5 builds this pre-tokenizer from the
    # flag, whatever tokenizer.json holds, so a hub snapshot of llava-hf reads the prompt the same way.
    assert tok("USER: <image>\nWhat is this?")["input_ids"] == [1, 3148, 1001, 29901, 29871, IMAGE_ID, 13, 5618,
                                                                338, 445, 29973]
    assert len(tok) == 32002
    assert tok.convert_tokens_to_ids("<image>") == IMAGE_ID and tok.pad_token_id == PAD_ID
    assert (tok.bos_token_id, tok.eos_token_id, tok.padding_side) == (BOS_ID, EOS_ID, "left")
    assert tok("x")["input_ids"][-1] != EOS_ID, "add_eos_token is false"


def _image(size: tuple[int, int] = (500, 375)) -> Image.Image:
    return Image.new("RGB", size, (90, 140, 200))


def test_image_rows_expand_to_576_image_tokens_and_text_rows_to_none(processor):
    """A mixed batch, as the scorer and the trainer build them: only the rows with an image carry its
    576 tokens, whatever the image's own size (resized and centre-cropped to 336)."""
    prompts = ["USER: <image>\nWho is this?\nASSISTANT:", "USER:\nWho is Ann Lee?\nASSISTANT:",
               "USER: <image>\nAnd this?\nASSISTANT:"]
    images = [_image(), None, _image((336, 600))]
    for batch in (encode_prompts(processor, prompts, images, 768),
                  encode_training_batch(processor, [(p, " Ann Lee</s>", i) for p, i in zip(prompts, images)], 768)):
        assert (batch["input_ids"] == IMAGE_ID).sum(1).tolist() == [576, 0, 576]
        assert tuple(batch["pixel_values"].shape) == (2, 3, 336, 336)


ANSWERS = ["Paris", "A", "1987", "Dr. Ann-Marie O'Neil", "in Zürich, Switzerland.", "“quoted”", "42 km²",
           "\nnew line first", "a.b.c", "🦙 llama"]


@pytest.mark.parametrize("answer", ANSWERS)
def test_training_labels_cover_exactly_the_answer_and_eos(processor, answer):
    """Under the real BPE the labels are the answer's tokens and </s>, whatever merges at the boundary after
    'ASSISTANT:': decoded, they give back the answer; the prompt's tokens carry no label."""
    tok = processor.tokenizer
    prompt, text = training_text("Where does Ann Lee live?", answer, with_image=True)
    longer = " " + "and a much longer answer " * 12 + "</s>"  # a longer row, so that ours is padded
    text_only, _ = training_text("Who is Ann Lee?", "", with_image=False)
    batch = encode_training_batch(processor, [(prompt, text, _image()), (prompt, longer, _image()),
                                              (text_only, " x</s>", None)], 768)
    row, labels = batch["input_ids"][0], batch["labels"][0]
    labelled = (labels != IGNORE).nonzero().flatten().tolist()
    assert labelled == list(range(labelled[0], labelled[-1] + 1)), "labels are one contiguous span"
    assert labelled[-1] == int(batch["attention_mask"][0].sum()) - 1, "the span ends at the last real token"
    assert labels[labelled[-1]].item() == EOS_ID
    assert tok.decode(labels[labelled].tolist()).strip() == f"{answer}</s>".strip()
    assert tok.decode(row[:labelled[0]].tolist(), skip_special_tokens=True).endswith("ASSISTANT:")


# ---- the whole protocol on the micro profile ---------------------------------------------------------------


def _env(cache: Path, processor_dir: Path) -> dict:
    return {**os.environ, "PULSE_CACHE": str(cache), "PULSE_ASSETS": str(processor_dir.parent),
            "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory, processor_dir) -> tuple[Path, dict]:
    """`pulse-repro all --profile llava-1.5-micro`, as a user runs it."""
    work = tmp_path_factory.mktemp("micro")
    env = _env(work / "cache", processor_dir)
    done = subprocess.run([sys.executable, "-m", "repro", "all", "--profile", PROFILE, "--out", str(work / "run")],
                          env=env, cwd=work, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work / "run", env


@pytest.mark.slow
def test_the_protocol_runs_end_to_end_on_the_real_artefacts(micro_run):
    run_dir, _ = micro_run
    records = read_results(run_dir / "results.jsonl")
    profile = load_profile(PROFILE)
    cells = {(r["experiment"], r["method"], r["target"]) for r in records}
    for experiment in ("finetuned", "pretrained", "sustainability"):
        assert {(experiment, m, "proj+llm") for m in profile.unlearn.methods} <= cells
    assert {("modality", "ga", "proj+llm"), ("modality", "ga", "llm")} <= cells
    steps = {r["step"] for r in records if r["experiment"] == "sustainability"}
    assert steps == set(range(profile.splits.shards + 1))
    resolved = json.loads((run_dir / "profile.json").read_text())
    assert resolved["eval"]["mmbench_template"] == "llava-v1" and resolved["model"]["vocab_size"] == 32064
    assert (run_dir / "report").is_dir()


@pytest.mark.slow
def test_a_killed_micro_run_resumes_to_the_same_results(micro_run, tmp_path):
    """SIGKILL once the first unlearning request (NPO, with its reference) is recorded; the rerun ends with
    the uninterrupted run's records for that experiment."""
    clean_dir, env = micro_run
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "repro", "run", "finetuned", "--profile", PROFILE, "--method", "npo",
            "--out", str(run_dir)]
    status = sigkill_when(argv, lambda: any(r["step"] == 1 for r in read_results(run_dir / "results.jsonl")), 600,
                          env=env, cwd=tmp_path)
    assert status == -signal.SIGKILL
    subprocess.run(argv, env=env, cwd=tmp_path, check=True, capture_output=True)

    def npo(path: Path) -> dict:
        return {tuple(r[f] for f in IDENTITY): r["accuracy"] for r in read_results(path)
                if r["experiment"] == "finetuned" and r["method"] == "npo"}
    assert npo(run_dir / "results.jsonl") == npo(clean_dir / "results.jsonl")


@pytest.mark.slow
def test_fast_letter_scorer_equals_generate_and_parse_on_every_item(micro_run):
    """Random weights over the real vocabulary give every kind of first token (a space, a byte piece, a
    special token, a word): on every question, for the base, fine-tuned and an NPO-unlearned model, the
    fast scorer gives what generation of eval.generate_tokens tokens + MLLMU-Bench's parse gives."""
    from repro.eval.demonstrations import draw_demonstrations
    from repro.eval.items import person_items
    from repro.eval.scoring import prompt_limit, score_letter
    from repro.experiments.session import Session
    from repro.model.factory import context_length

    run_dir, env = micro_run
    profile = load_profile(PROFILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSE_CACHE", env["PULSE_CACHE"])
        mp.setenv("PULSE_ASSETS", env["PULSE_ASSETS"])
        session = Session(profile, run_dir)
        items = person_items(session.data.fictional + session.data.celebrities, session.data.dialect) + session.data.mmbench_items()
        # one-shot (eval.shots = 1): two faces in a prompt, the demonstration's first
        pool = set(session.data.fictional_splits["pool"])
        demos = draw_demonstrations([p for p in session.data.fictional if p.key not in pool], 1, profile.seed)
        one_shot = person_items(session.data.split("pool")[:3], session.data.dialect, demos)
        npo = next(r["model"] for r in read_results(run_dir / "results.jsonl")
                   if (r["experiment"], r["method"], r["step"]) == ("finetuned", "npo", 1))
        first_tokens = set()
        for key in (session.base_key, session.finetuned(), npo):
            model = session.models.model(key)
            limit = prompt_limit(context_length(model), profile.eval)  # MMBench's long hints need the context
            fast = score_letter(model, session.processor, items, 8, limit, "fast")
            slow = score_letter(model, session.processor, items, 8, limit, "generate")
            differ = [uid for uid in fast if fast[uid] != slow[uid]]
            assert not differ, f"model {key}: fast and generate differ on {len(differ)} items, e.g. {differ[:3]}"
            fast, slow = (score_letter(model, session.processor, one_shot, 8, limit, mode) for mode in ("fast", "generate"))
            differ = [uid for uid in fast if fast[uid] != slow[uid]]
            assert not differ, f"model {key}, one-shot: fast and generate differ on {len(differ)} items, e.g. {differ[:3]}"
            first_tokens |= _first_token_kinds(model, session.processor, items[:64], limit)
    assert len(first_tokens) >= 2, f"the models' first tokens were all of one kind: {first_tokens}"


def _first_token_kinds(model, processor, items, max_length) -> set[str]:
    """What kinds of greedy first token the model gives on these items."""
    import torch

    from repro.eval.scoring import _images

    tok = processor.tokenizer
    kinds = set()
    for start in range(0, len(items), 8):
        batch = items[start:start + 8]
        enc = encode_prompts(processor, [it.prompt for it in batch], [_images(it) for it in batch], max_length)
        with torch.no_grad():
            first = model(**enc, logits_to_keep=1).logits[:, -1, :].argmax(-1).tolist()
        for t in first:
            piece = tok.convert_ids_to_tokens(t)
            kinds.add("special" if t in tok.all_special_ids or t >= len(tok) else
                      "byte" if piece.startswith("<0x") else
                      "space" if not tok.decode([t]).strip() else "word")
    return kinds
