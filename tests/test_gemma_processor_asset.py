"""Gemma 3's processor as repro/model/families/gemma3_processor.py writes it (google/gemma-3-12b-it's, at 896
px): the published tokenizer's ids, the expansion of `<start_of_image>` into 256 image tokens, and the chat
template's rendering.

Without the written processor (.pulse-assets/gemma-3-processor, or under PULSE_ASSETS) these tests skip,
saying how to write it; where PULSE_REQUIRE_ASSETS is set they fail instead, as tests/conftest.py's
processor_dir does. The tests of `extract` and `write_processor`'s refusals need neither asset nor network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from repro.assets import assets_dir
from repro.errors import ReproError
from repro.model.families import gemma3_processor as g3

PAD, EOS, BOS = 0, 1, 2
START_OF_TURN, END_OF_TURN = 105, 106
BOI, EOI, SOFT = 255999, 256000, 262144
NL, NL2, NL3 = 107, 108, 109  # "\n", "\n\n", "\n\n\n": single pieces
USER, MODEL, HELLO = 2364, 4368, 9259


@pytest.fixture(scope="module")
def gemma_dir() -> Path:
    path = (assets_dir() / "gemma-3-processor").resolve()
    if not (path / "tokenizer.json").is_file():
        message = f"no Gemma 3 processor at {path}: run `pulse-repro assets fetch --name gemma-3` (needs npm)"
        if os.environ.get("PULSE_REQUIRE_ASSETS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def processor(gemma_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(gemma_dir)


def _image() -> Image.Image:
    return Image.new("RGB", (500, 375), (90, 140, 200))


# ---- the tokenizer is Gemma 3's --------------------------------------------------------------------------

def test_the_tokenizer_is_gemma3s(processor):
    tok = processor.tokenizer
    assert tok("Hello world")["input_ids"] == [BOS, HELLO, 1902]  # as published for Gemma 3
    ids = {"<pad>": PAD, "<eos>": EOS, "<bos>": BOS, "<start_of_turn>": START_OF_TURN,
           "<end_of_turn>": END_OF_TURN, "<start_of_image>": BOI, "<end_of_image>": EOI,
           "<image_soft_token>": SOFT}
    assert {t: tok.convert_tokens_to_ids(t) for t in ids} == ids
    assert len(tok) == 262145 and tok.vocab_size == 262144  # 262,144 pieces + <image_soft_token>
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.padding_side) == (BOS, EOS, PAD, "left")
    assert (tok.boi_token_id, tok.eoi_token_id, tok.image_token_id) == (BOI, EOI, SOFT)
    assert tok("x")["input_ids"][-1] != EOS, "add_eos_token is false"


def test_the_directory_holds_the_pinned_tokenizer_and_loads_as_gemma3s_processor(gemma_dir, processor):
    from transformers import Gemma3Processor
    from transformers.utils import is_torchvision_available

    digest = hashlib.sha256((gemma_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert digest == g3.TOKENIZER_SHA256
    assert f"{g3.NPM_PACKAGE}@{g3.NPM_VERSION} {g3.TOKENIZER_MEMBER} sha256 {digest}" in \
        (gemma_dir / "SOURCE").read_text()
    assert type(processor) is Gemma3Processor
    assert type(Gemma3Processor.from_pretrained(gemma_dir).image_processor) is type(processor.image_processor)
    # without torchvision transformers 5 picks the PIL backend for "Gemma3ImageProcessor"
    want = "Gemma3ImageProcessor" if is_torchvision_available() else "Gemma3ImageProcessorPil"
    images = processor.image_processor
    assert type(images).__name__ == want
    assert (images.size["height"], images.size["width"], images.resample, images.do_pan_and_scan) == \
        (896, 896, 2, False)
    assert (list(images.image_mean), list(images.image_std), images.rescale_factor) == \
        ([0.5] * 3, [0.5] * 3, 1 / 255)


# ---- images ----------------------------------------------------------------------------------------------

def test_an_image_expands_into_256_soft_tokens_between_boi_and_eoi(processor):
    assert processor.image_seq_length == 256
    assert processor.full_image_sequence == \
        "\n\n<start_of_image>" + "<image_soft_token>" * 256 + "<end_of_image>\n\n"
    batch = processor(text="<start_of_image>Describe", images=[_image()], return_tensors="np")
    assert batch["input_ids"][0].tolist() == [BOS, NL2, BOI] + [SOFT] * 256 + [EOI, NL2, 82858]
    assert batch["token_type_ids"][0].tolist().count(1) == 256  # the soft tokens, which the model replaces
    assert tuple(batch["pixel_values"].shape) == (1, 3, 896, 896)
    assert batch["pixel_values"][0, :, 0, 0].tolist() == pytest.approx([(c / 255 - 0.5) / 0.5 for c in (90, 140, 200)],
                                                                       abs=1e-6)


def test_the_newlines_around_an_image_merge_with_the_prompts_own(processor):
    """The expansion's "\\n\\n" joins a neighbouring "\\n" into one "\\n\\n\\n" piece: a prompt's length is not
    its text's tokens plus 260."""
    ids = processor(text="Hi\n<start_of_image>\nWhat?", images=[_image()], return_tensors="np")["input_ids"][0]
    assert ids.tolist() == [BOS, 10979, NL3, BOI] + [SOFT] * 256 + [EOI, NL3, 3689, 236881]


# ---- the chat template -----------------------------------------------------------------------------------

CHAT_IMAGE = "<bos><start_of_turn>user\n<start_of_image>Hello<end_of_turn>\n<start_of_turn>model\n"


def test_the_chat_template_renders_gemma3s_turns(processor):
    image_turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hello"}]}]
    assert processor.apply_chat_template(image_turn, add_generation_prompt=True, tokenize=False) == CHAT_IMAGE
    text_turn = [{"role": "user", "content": "Hello"}]
    text = "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"
    assert processor.apply_chat_template(text_turn, add_generation_prompt=True, tokenize=False) == text
    assert processor.tokenizer.apply_chat_template(text_turn, add_generation_prompt=True, tokenize=False) == text
    # a system turn is folded into the first user turn; the assistant is "model"; text is trimmed
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": " Hello "}]},
                    {"role": "assistant", "content": "Hi"}]
    assert processor.apply_chat_template(conversation, tokenize=False) == \
        "<bos><start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi<end_of_turn>\n"


def test_a_rendered_image_turn_tokenizes_with_one_bos(processor):
    """The template writes <bos> itself: a rendered prompt is tokenized without special tokens (the
    processor's apply_chat_template does so), or it starts <bos><bos>."""
    turn = [{"role": "user", "content": [{"type": "image", "image": _image()}, {"type": "text", "text": "Hello"}]}]
    want = [BOS, START_OF_TURN, USER, NL3, BOI] + [SOFT] * 256 + [EOI, NL2, HELLO, END_OF_TURN, NL, START_OF_TURN,
                                                                 MODEL, NL]
    rendered = processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=True, return_dict=True,
                                             return_tensors="np")
    assert rendered["input_ids"][0].tolist() == want
    by_hand = processor(text=CHAT_IMAGE, images=[_image()], add_special_tokens=False, return_tensors="np")
    assert by_hand["input_ids"][0].tolist() == want
    doubled = processor(text=CHAT_IMAGE, images=[_image()], return_tensors="np")["input_ids"][0].tolist()
    assert doubled[:2] == [BOS, BOS]


# ---- extract and write_processor refuse what is not the pinned tokenizer (no asset, no network) ----------

def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_refuses_a_tarball_whose_tokenizer_differs(tmp_path, monkeypatch):
    fake = b'{"model": {"vocab": {}}}'
    tarball = _tarball(tmp_path / "fake.tgz", {g3.TOKENIZER_MEMBER: fake, "package/package.json": b"{}"})
    where = f"{g3.NPM_PACKAGE}@{g3.NPM_VERSION} {g3.TOKENIZER_MEMBER}"
    message = f"{where}: sha256 {hashlib.sha256(fake).hexdigest()}, expected {g3.TOKENIZER_SHA256}"
    with pytest.raises(ReproError, match=f"^{re.escape(message)}$"):
        g3.extract(tarball, tmp_path)
    assert not (tmp_path / "tokenizer.json").exists(), "the refused file is not left behind"
    monkeypatch.setattr(g3, "TOKENIZER_SHA256", hashlib.sha256(fake).hexdigest())
    assert g3.extract(tarball, tmp_path).read_bytes() == fake  # the hash, not the content, is what is refused


def test_extract_refuses_a_tarball_without_the_tokenizer(tmp_path):
    tarball = _tarball(tmp_path / "other.tgz", {"package/models/tokenizer_config.json": b"{}"})
    where = f"{g3.NPM_PACKAGE}@{g3.NPM_VERSION} {g3.TOKENIZER_MEMBER}"
    with pytest.raises(ReproError, match=f"^{re.escape(where)}: not in other.tgz$"):
        g3.extract(tarball, tmp_path)


def test_write_processor_refuses_a_tokenizer_that_is_not_gemma3s(tmp_path):
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(json.dumps({"model": {"vocab": {"<pad>": 0, "<eos>": 1}}, "added_tokens": [
        {"id": 0, "content": "<pad>", "special": True}, {"id": 1, "content": "<eos>", "special": True}]}))
    with pytest.raises(ReproError, match="not Gemma 3's tokenizer: 2 pieces"):
        g3.write_processor(tokenizer, tmp_path / "out", 896)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json"], "nothing half-written is left"
