"""MMBench loader: VLMEvalKit's TSV or a directory laid out as the hub dataset lmms-lab/MMBench.

Facts the loader matches (docs/design.md, "MMBench", checked against the public code):
- VLMEvalKit (`vlmeval/dataset/image_base.py`): an `image` of 64 characters or fewer is the `index`
  of the row whose image it reuses; that row must hold a real image.
- Circular copies of question i have index i + k * 1,000,000 (the rules: repro/data/circular.py).
- lmms-lab/MMBench (config `en`, split `dev`): `image` is an HF Image struct {bytes, path},
  `L2-category` is capitalised, `index` is stored as a string in some revisions, and missing
  options/hints were stringified to "nan" (lmms-eval's `create_options_prompt` filters `!= "nan"`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repro.data.images import decode_image_bytes
from repro.data.records import LETTERS, MMBenchQuestion
from repro.errors import DataError

TSV_NAME = "MMBench_DEV_EN.tsv"
PARQUET_GLOB = "en/dev-*.parquet"
REQUIRED = ("index", "question", "A", "B", "answer", "category", "image")
REF_MAX_CHARS = 64  # VLMEvalKit: an image field this short is a row index, not base64

# Real MMBench rows hold whole base64 images in one TSV field, far above csv's 128 KiB default.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _empty(value: Any) -> bool:
    """None, NaN, blank, or the "nan" string the hub conversion left for pandas' NaN."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "nan")


def _text(value: Any) -> str:
    return "" if _empty(value) else str(value)


def _tsv_rows(file: Path) -> Iterator[dict[str, Any]]:
    n = 0
    try:
        with file.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            _check_columns(file, reader.fieldnames or [])
            for n, row in enumerate(reader, start=1):
                if None in row:  # more fields than the header names: a shifted, broken line
                    raise DataError(file, "row has more fields than the header", row=n)
                yield row
    except UnicodeDecodeError as exc:  # a binary or damaged file: never a Python traceback
        raise DataError(file, f"not UTF-8 text ({exc.reason}; a binary or damaged file?)") from None
    except csv.Error as exc:
        raise DataError(file, f"not a readable TSV ({exc})", row=n + 1) from None


def _parquet_rows(file: Path) -> Iterator[dict[str, Any]]:
    from repro.data.parquet import read_table  # pyarrow only when a parquet file is read

    table = read_table(file)
    _check_columns(file, table.column_names)
    yield from table.to_pylist()


def _check_columns(file: Path, names: Iterable[str]) -> None:
    have = set(names)
    for col in REQUIRED:
        if col not in have:
            raise DataError(file, "missing column", field=col)


def _files(path: Path) -> list[Path]:
    """The data files behind `path`: one TSV/parquet file, or the ones in a directory."""
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted(path.glob(PARQUET_GLOB))
        if shards:
            return shards
        if (path / TSV_NAME).is_file():
            return [path / TSV_NAME]
        raise DataError(path, f"no {PARQUET_GLOB} and no {TSV_NAME} in this directory")
    raise DataError(path, "no such file or directory")


def _raw_rows(file: Path) -> Iterator[dict[str, Any]]:
    return _parquet_rows(file) if file.suffix == ".parquet" else _tsv_rows(file)


def _index(file: Path, n: int, value: Any) -> int:
    if isinstance(value, bool):  # bool is an int subclass; never a valid index
        raise DataError(file, f"index {value!r} is not an integer", row=n, field="index")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataError(file, f"index {value!r} is not an integer", row=n, field="index") from None


def _image_field(file: Path, n: int, value: Any) -> bytes | int:
    """Encoded image bytes, or the index of the row whose image this row reuses."""
    if isinstance(value, dict):  # HF Image feature: {"bytes": ..., "path": ...}
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if _empty(value) or not isinstance(value, str):
        raise DataError(file, "no image", row=n, field="image")
    s = value.strip()
    if len(s) <= REF_MAX_CHARS:
        try:
            return int(s)
        except ValueError:
            raise DataError(
                file, f"short image field {s!r} is not a row index", row=n, field="image"
            ) from None
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(file, "image is not valid base64", row=n, field="image") from None


def _row_fields(file: Path, n: int, row: dict[str, Any]) -> dict[str, Any]:
    """Validate one row's text fields; the image is resolved later (it may point at a later row)."""
    lower = {k.lower(): v for k, v in row.items() if k}  # `l2-category` (TSV) vs `L2-category` (hub)
    options = {k: str(row[k]) for k in LETTERS if k in row and not _empty(row[k])}
    for k in LETTERS[: max(2, len(options))]:  # A and B always; C/D may be empty, but only at the end
        if k not in options:
            raise DataError(file, f"option {k} is empty (options must be A, B[, C[, D]])", row=n, field=k)
    answer = _text(row["answer"]).strip()
    if answer not in LETTERS:
        raise DataError(file, f"answer {answer!r} is not an option letter A-D", row=n, field="answer")
    if answer not in options:
        raise DataError(file, f"answer {answer!r} names an empty option", row=n, field="answer")
    question = _text(row["question"])
    if not question.strip():
        raise DataError(file, "empty question", row=n, field="question")
    return {
        "question": question,
        "hint": _text(row.get("hint")),
        "options": options,
        "answer": answer,
        "category": _text(row["category"]),
        "l2_category": _text(lower.get("l2-category")),
    }


def load_mmbench(path: Path) -> list[MMBenchQuestion]:
    """Every row (circular copies included) as a typed record, in file order.

    Raises DataError naming file, row (1-based data row) and field on the first malformed row.
    """
    path = Path(path)
    pending: list[tuple[Path, int, int, dict[str, Any], bytes | int]] = []
    where: dict[int, tuple[Path, int]] = {}
    for file in _files(path):
        for n, row in enumerate(_raw_rows(file), start=1):
            index = _index(file, n, row["index"])
            if index in where:
                f0, n0 = where[index]
                raise DataError(
                    file, f"duplicate index {index} (first at {f0.name} row {n0})", row=n, field="index"
                )
            where[index] = (file, n)
            pending.append((file, n, index, _row_fields(file, n, row), _image_field(file, n, row["image"])))

    images: dict[int, bytes] = {i: img for _, _, i, _, img in pending if isinstance(img, bytes)}
    decoded: set[int] = set()  # decode each distinct image once: real dev has ~1.1k images for 4.3k rows
    out = []
    for file, n, index, fields, img in pending:
        src = index
        if isinstance(img, int):
            if img not in images:
                raise DataError(
                    file, f"image refers to index {img}, which has no image", row=n, field="image"
                )
            src = img
        if src not in decoded:
            try:
                decode_image_bytes(images[src])
            except ValueError as e:
                f_src, n_src = where[src]
                raise DataError(f_src, f"image cannot be decoded ({e})", row=n_src, field="image") from None
            decoded.add(src)
        out.append(MMBenchQuestion(index=index, image=images[src], **fields))
    return out


def count_mmbench(path: Path) -> dict[str, int]:
    """Distinct questions (circular groups), rows, and distinct categories of a validated source."""
    qs = load_mmbench(path)
    return {
        "questions": len({q.group for q in qs}),
        "rows": len(qs),
        "categories": len({q.category for q in qs}),
    }
