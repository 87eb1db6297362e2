"""Qwen2.5-VL's processor as repro/model/families/qwen2_5_vl_processor.py writes it (Qwen/Qwen2.5-VL-7B-
Instruct's, at min_pixels = max_pixels = 448 * 448): the published tokenizer's ids, the expansion of an
image into 256 `<|image_pad|>` tokens, and the chat template's rendering.

Without the written processor (.pulse-assets/qwen2.5-vl-processor, or under PULSE_ASSETS) these tests skip,
saying how to write it; where PULSE_REQUIRE_ASSETS is set they fail instead, as tests/conftest.py's
processor_dir does. The whole processor is the family's `Qwen2_5_VLImageProcessor` (transformers'
Qwen2_5_VLProcessor without the video processor, which transformers builds only with torchvision). The tests
of `extract` and `write_processor`'s refusals need neither asset nor network.
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
from repro.model.families import qwen2_5_vl_processor as qw

PIXELS = 448 * 448
ENDOFTEXT, IM_START, IM_END = 151643, 151644, 151645
VISION_START, VISION_END, IMAGE_PAD = 151652, 151653, 151655
# Qwen2.5-VL's added tokens, as its tokenizer_config.json numbers them
SPECIAL_IDS = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647, "<|box_start|>": 151648, "<|box_end|>": 151649, "<|quad_start|>": 151650,
    "<|quad_end|>": 151651, "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655, "<|video_pad|>": 151656, "<tool_call>": 151657, "</tool_call>": 151658,
    "<|fim_prefix|>": 151659, "<|fim_middle|>": 151660, "<|fim_suffix|>": 151661, "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663, "<|file_sep|>": 151664,
}
# transformers' tests/models/qwen2/test_tokenization_qwen2.py, test_tokenizer_integration (Qwen/Qwen-tokenizer,
# the same BPE): its Chinese-and-emoji and code sequences, unpadded
PUBLISHED = {
    "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，"
    "并且节省从头训练所需要的时间和资源。":
        [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034,
         104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997,
         33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773],
    '```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\ntokenizer("世界，你好！")```':
        [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841, 3135,
         1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594],
}
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
CHAT_IMAGE = (SYSTEM + "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hello<|im_end|>\n"
              "<|im_start|>assistant\n")
CHAT_TEXT = SYSTEM + "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
IMAGE_TURN = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hello"}]}]
TEXT_TURN = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def qwen_dir() -> Path:
    path = (assets_dir() / "qwen2.5-vl-processor").resolve()
    if not (path / "tokenizer.json").is_file():
        message = f"no Qwen2.5-VL processor at {path}: run `pulse-repro assets fetch --name qwen2.5-vl` (needs npm)"
        if os.environ.get("PULSE_REQUIRE_ASSETS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def tokenizer(qwen_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_dir)


@pytest.fixture(scope="module")
def processor(qwen_dir):
    from repro.model.families.qwen2_5_vl import Qwen2_5_VLImageProcessor

    return Qwen2_5_VLImageProcessor.from_pretrained(qwen_dir)


def _image(side: int) -> Image.Image:
    return Image.new("RGB", (side, side), (90, 140, 200))


# ---- the tokenizer is Qwen2.5-VL's -----------------------------------------------------------------------

def test_the_tokenizer_encodes_as_published(tokenizer):
    assert tokenizer("Hello world")["input_ids"] == [9707, 1879]  # no BOS, no EOS added
    for text, ids in PUBLISHED.items():
        assert tokenizer(text)["input_ids"] == ids, text


def test_the_special_tokens_sit_at_qwen25_vls_ids(tokenizer):
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_IDS} == SPECIAL_IDS
    for text, i in SPECIAL_IDS.items():
        assert tokenizer(text)["input_ids"] == [i], text  # each one piece, never split


def test_the_vocabulary_is_exactly_qwen25_vls(tokenizer):
    assert len(tokenizer) == 151665 and tokenizer.vocab_size == 151643
    assert max(tokenizer.get_vocab().values()) == 151664
    for qwen3_only in ("<tool_response>", "</tool_response>", "<think>", "</think>"):  # 151665-151668 in Qwen3
        assert qwen3_only not in tokenizer.get_vocab()
        assert len(tokenizer(qwen3_only)["input_ids"]) > 1, qwen3_only


def test_the_tokenizer_config_is_qwen25_vl_7b_instructs(qwen_dir, tokenizer):
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", IM_END)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", ENDOFTEXT)
    assert tokenizer.bos_token is None and tokenizer.padding_side == "right"
    assert tokenizer.model_max_length == 131072
    digest = hashlib.sha256((qwen_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert f"{qw.NPM_PACKAGE}@{qw.NPM_VERSION} {qw.TOKENIZER_MEMBER} sha256 {qw.TOKENIZER_SHA256}" in \
        (qwen_dir / "SOURCE").read_text()
    assert digest != qw.TOKENIZER_SHA256, "the written tokenizer.json is Qwen3's less four tokens, not its bytes"


# ---- images ----------------------------------------------------------------------------------------------

def test_the_image_processor_resizes_to_the_fixed_area(qwen_dir):
    from transformers import AutoImageProcessor
    from transformers.utils import is_torchvision_available

    images = AutoImageProcessor.from_pretrained(qwen_dir)
    # without torchvision transformers 5 picks the PIL backend for "Qwen2VLImageProcessor"
    assert type(images).__name__ == ("Qwen2VLImageProcessor" if is_torchvision_available()
                                     else "Qwen2VLImageProcessorPil")
    assert (images.size["shortest_edge"], images.size["longest_edge"]) == (PIXELS, PIXELS)
    assert (images.patch_size, images.temporal_patch_size, images.merge_size) == (14, 2, 2)
    for side in (448, 336):  # 336 px is resized up to the same area: 32x32 patches, 256 tokens
        batch = images(_image(side), return_tensors="np")
        assert batch["image_grid_thw"].tolist() == [[1, 32, 32]], side
        assert batch["pixel_values"].shape == (1024, 3 * 2 * 14 * 14), side


def test_an_image_expands_into_256_image_pad_tokens(qwen_dir, processor):
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    assert isinstance(processor, Qwen2_5_VLProcessor)  # its own code expands the images
    assert isinstance(processor.image_processor, Qwen2VLImageProcessorPil)
    batch = processor(text="<|vision_start|><|image_pad|><|vision_end|>", images=[_image(448)], return_tensors="np")
    assert batch["input_ids"][0].tolist() == [VISION_START] + [IMAGE_PAD] * 256 + [VISION_END]
    assert batch["image_grid_thw"].tolist() == [[1, 32, 32]]


# ---- the chat template -----------------------------------------------------------------------------------

def test_the_tokenizers_chat_template_renders_qwen25_vls_turns(tokenizer):
    assert tokenizer.apply_chat_template(IMAGE_TURN, add_generation_prompt=True, tokenize=False) == CHAT_IMAGE
    assert tokenizer.apply_chat_template(TEXT_TURN, add_generation_prompt=True, tokenize=False) == CHAT_TEXT
    # a system turn of its own replaces the default one
    own = [{"role": "system", "content": "Be brief."}, *TEXT_TURN]
    assert tokenizer.apply_chat_template(own, tokenize=False) == \
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"


def test_the_processors_chat_template_renders_qwen25_vls_turns(processor):
    assert processor.apply_chat_template(IMAGE_TURN, add_generation_prompt=True, tokenize=False) == CHAT_IMAGE
    assert processor.apply_chat_template(TEXT_TURN, add_generation_prompt=True, tokenize=False) == CHAT_TEXT


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
    tarball = _tarball(tmp_path / "fake.tgz", {qw.TOKENIZER_MEMBER: fake, "package/package.json": b"{}"})
    where = f"{qw.NPM_PACKAGE}@{qw.NPM_VERSION} {qw.TOKENIZER_MEMBER}"
    message = f"{where}: sha256 {hashlib.sha256(fake).hexdigest()}, expected {qw.TOKENIZER_SHA256}"
    with pytest.raises(ReproError, match=f"^{re.escape(message)}$"):
        qw.extract(tarball, tmp_path)
    assert not (tmp_path / "tokenizer.json").exists(), "the refused file is not left behind"
    monkeypatch.setattr(qw, "TOKENIZER_SHA256", hashlib.sha256(fake).hexdigest())
    assert qw.extract(tarball, tmp_path).read_bytes() == fake  # the hash, not the content, is what is refused


def test_extract_refuses_a_tarball_without_the_tokenizer(tmp_path):
    tarball = _tarball(tmp_path / "other.tgz", {"package/models/tokenizer_config.json": b"{}"})
    where = f"{qw.NPM_PACKAGE}@{qw.NPM_VERSION} {qw.TOKENIZER_MEMBER}"
    with pytest.raises(ReproError, match=f"^{re.escape(where)}: not in other.tgz$"):
        qw.extract(tarball, tmp_path)


def test_write_processor_refuses_a_tokenizer_that_is_not_qwens(tmp_path):
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(json.dumps({"model": {"vocab": {"a": 0, "b": 1}}, "added_tokens": [
        {"id": 2, "content": "<|endoftext|>", "special": True}]}))
    with pytest.raises(ReproError, match="not Qwen's tokenizer: 2 pieces"):
        qw.write_processor(tokenizer, tmp_path / "out", PIXELS)
    with pytest.raises(ReproError, match="pixels 1000: not a positive multiple of 784"):
        qw.write_processor(tokenizer, tmp_path / "out", 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json"], "nothing half-written is left"
