"""MLLMU-Bench loader: a local directory laid out as the hub repo `MLLMMU/MLLMU-Bench`.

Layout: `<Config>/train-*.parquet` for the configs below. Layout facts checked against the benchmark's
own evaluation and fine-tuning code (franciscoliu / YokeYao MLLMU-Bench `eval.py`, `data_preprocess.py`):
- `Classification_Task` is a struct of `Image_Textual_Questions` and `Pure_Text_Questions`, each a list of
  `{Question, Options: {A, B, C, D}, Correct_Answer}`; `Correct_Answer` is compared to the predicted
  *letter*, so it is a letter. We also accept the option text, mapped to its letter.
- `image` is an HF Image struct read as `row["image"]["bytes"]`; `Test_Set` has `images`, a list of them.
- `ft_Data` is read only through `image` and `metadata` (JSON list of `{"Question", "Answer"}`; pairs with an
  empty side are skipped there, and here). It has no documented `ID`, so its rows are linked to people by
  identical image bytes, or by `ID` when a mirror has that column.

Only pyarrow is used (no pandas, no datasets). Every violation raises DataError naming file, row and field;
no partial record is ever returned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.data.images import decode_image_bytes
from repro.data.parquet import column_names, read_table
from repro.data.records import LETTERS, MCQ, Modality, OpenQuestion, Person
from repro.errors import DataError

PEOPLE_CONFIGS = ("Full_Set", "Retain_Set")
SPLIT_CONFIGS = ("forget_5", "forget_10", "forget_15", "retain_95", "retain_90", "retain_85")
ALL_CONFIGS = (*PEOPLE_CONFIGS, *SPLIT_CONFIGS, "Test_Set", "ft_Data")
QUESTION_KINDS: tuple[tuple[str, Modality], ...] = (
    ("Image_Textual_Questions", "multimodal"),
    ("Pure_Text_Questions", "text"),
)
# `Generation_Task` and `Mask_Task` items carry their modality in `Type`
OPEN_TYPES: dict[str, Modality] = {"Image_Textual": "multimodal", "Pure_Text": "text"}
OPEN_TASKS = ("Generation_Task", "Mask_Task")


@dataclass(frozen=True)
class FtEntry:
    """One `ft_Data` row: the image it is trained with and its (question, answer) pairs."""

    image: bytes
    qa: tuple[tuple[str, str], ...]
    id: str | None = None  # only when the mirror has an `ID` column (the hub's ft_Data does not)


# ---------------------------------------------------------------- reading


def config_files(root: Path, config: str) -> list[Path]:
    """The parquet shards of one config, in name order (Test_Set has two on the hub)."""
    cdir = Path(root) / config
    if not cdir.is_dir():
        raise DataError(cdir, f"missing MLLMU-Bench config directory {config!r} under {root}")
    files = sorted(cdir.glob("*.parquet"))
    if not files:
        raise DataError(cdir, "no .parquet files in this config directory")
    return files


def _read_rows(file: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of `file` as dicts, reading only the columns we use (the hub files hold large images)."""
    names = column_names(file)
    for col in required:
        if col not in names:
            raise DataError(file, f"missing column (columns: {', '.join(names)})", field=col)
    return read_table(file, [c for c in (*required, *optional) if c in names]).to_pylist()


# ---------------------------------------------------------------- field checks


def _str(value: Any, file: Path, row: int, field: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataError(file, f"expected a string, got {type(value).__name__}", row=row, field=field)
    if not allow_empty and not value.strip():
        raise DataError(file, "empty string", row=row, field=field)
    return value


def _image(value: Any, file: Path, row: int, field: str) -> bytes:
    """The bytes of an HF Image struct `{bytes, path}`, checked to decode."""
    if not isinstance(value, dict) or "bytes" not in value:
        raise DataError(
            file,
            f"expected an image struct {{bytes, path}}, got {type(value).__name__}",
            row=row,
            field=field,
        )
    data = value["bytes"]
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise DataError(file, "image has no bytes (path-only images are not supported)", row=row, field=field)
    try:
        decode_image_bytes(bytes(data))
    except ValueError as exc:
        raise DataError(file, str(exc), row=row, field=field) from None
    return bytes(data)


def _options(value: Any, file: Path, row: int, field: str) -> dict[str, str]:
    """Options as {letter: text}; a struct reads as a dict, a parquet map as a list of pairs."""
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)
    if not isinstance(value, dict):
        raise DataError(
            file, f"expected a struct of options A-D, got {type(value).__name__}", row=row, field=field
        )
    out: dict[str, str] = {}
    for letter, text in value.items():
        if letter not in LETTERS:
            raise DataError(file, f"option letter {letter!r} is not one of A-D", row=row, field=field)
        if text is None or (isinstance(text, str) and not text.strip()):
            continue  # empty options are left out, as records.MCQ documents
        out[letter] = _str(text, file, row, f"{field}.{letter}")
    if len(out) < 2:
        raise DataError(file, f"fewer than two non-empty options ({len(out)})", row=row, field=field)
    return dict(sorted(out.items()))


def _mcq(item: Any, modality: Modality, file: Path, row: int, field: str) -> MCQ:
    if not isinstance(item, dict):
        raise DataError(file, f"expected a question struct, got {type(item).__name__}", row=row, field=field)
    for key in ("Question", "Options", "Correct_Answer"):
        if key not in item:
            raise DataError(file, "missing key", row=row, field=f"{field}.{key}")
    question = _str(item["Question"], file, row, f"{field}.Question")
    options = _options(item["Options"], file, row, f"{field}.Options")
    raw = _str(item["Correct_Answer"], file, row, f"{field}.Correct_Answer").strip()
    if raw.upper() in options and len(raw) == 1:
        answer = raw.upper()
    else:  # the option text itself; must name exactly one option
        hits = [k for k, v in options.items() if v.strip() == raw]
        if len(hits) != 1:
            raise DataError(
                file,
                f"answer {raw!r} is not among the options {sorted(options)}",
                row=row,
                field=f"{field}.Correct_Answer",
            )
        answer = hits[0]
    return MCQ(question=question, options=options, answer=answer, modality=modality)


def _questions(value: Any, file: Path, row: int) -> tuple[MCQ, ...]:
    field = "Classification_Task"
    if not isinstance(value, dict):
        raise DataError(file, f"expected a struct, got {type(value).__name__}", row=row, field=field)
    out: list[MCQ] = []
    for key, modality in QUESTION_KINDS:
        items = value.get(key)
        if not isinstance(items, list):
            raise DataError(
                file, f"expected a list, got {type(items).__name__}", row=row, field=f"{field}.{key}"
            )
        out.extend(_mcq(item, modality, file, row, f"{field}.{key}[{j}]") for j, item in enumerate(items))
    return tuple(out)


def _open_questions(value: Any, file: Path, row: int, field: str) -> tuple[OpenQuestion, ...]:
    """`Generation_Task` / `Mask_Task`: a list of `{Question, Ground_Truth, Type}`; absent (None) is none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DataError(file, f"expected a list, got {type(value).__name__}", row=row, field=field)
    out = []
    for j, item in enumerate(value):
        where = f"{field}[{j}]"
        if not isinstance(item, dict):
            raise DataError(file, f"expected a struct, got {type(item).__name__}", row=row, field=where)
        for key in ("Question", "Ground_Truth", "Type"):
            if key not in item:
                raise DataError(file, "missing key", row=row, field=f"{where}.{key}")
        kind = item["Type"]
        if kind not in OPEN_TYPES:
            raise DataError(file, f"expected one of {', '.join(OPEN_TYPES)}, got {kind!r}", row=row,
                            field=f"{where}.Type")
        out.append(OpenQuestion(_str(item["Question"], file, row, f"{where}.Question"),
                                _str(item["Ground_Truth"], file, row, f"{where}.Ground_Truth"), OPEN_TYPES[kind]))
    return tuple(out)


def _qa_json(value: Any, file: Path, row: int) -> tuple[tuple[str, str], ...]:
    text = _str(value, file, row, "metadata")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            file, f"invalid JSON ({exc.msg} at char {exc.pos})", row=row, field="metadata"
        ) from None
    if not isinstance(items, list):
        raise DataError(file, f"expected a JSON list, got {type(items).__name__}", row=row, field="metadata")
    pairs = []
    for j, item in enumerate(items):
        f = f"metadata[{j}]"
        if not isinstance(item, dict):
            raise DataError(file, f"expected an object, got {type(item).__name__}", row=row, field=f)
        q = _str(item.get("Question"), file, row, f"{f}.Question", allow_empty=True)
        a = _str(item.get("Answer"), file, row, f"{f}.Answer", allow_empty=True)
        if q.strip() and a.strip():  # MLLMU-Bench's own loader skips pairs with an empty side
            pairs.append((q, a))
    return tuple(pairs)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- public API


def load_ft_data(root: Path) -> list[FtEntry]:
    """All `ft_Data` rows, validated."""
    out = []
    for file in config_files(root, "ft_Data"):
        for i, row in enumerate(_read_rows(file, ("image", "metadata"), ("ID",))):
            rid = _str(row["ID"], file, i, "ID") if "ID" in row else None
            out.append(
                FtEntry(
                    image=_image(row["image"], file, i, "image"),
                    qa=_qa_json(row["metadata"], file, i),
                    id=rid,
                )
            )
    return out


def load_people(root: Path, config: str, ft: list[FtEntry] | None = None) -> list[Person]:
    """People of one config (Full_Set, Retain_Set, or a forget/retain split of Full_Set), in file order.

    `qa` comes from ft_Data, linked by `ID` (Full_Set people only, when ft_Data has that column) or by
    identical image bytes; a person with no ft_Data row falls back to its own `question`/`answer` columns.
    Pass `ft` to reuse an already loaded ft_Data; it is read from `root` when present otherwise.
    """
    if config in ("ft_Data", "Test_Set") or config not in ALL_CONFIGS:
        raise DataError(
            Path(root) / config,
            f"not a people config: {config!r} (use one of {', '.join((*PEOPLE_CONFIGS, *SPLIT_CONFIGS))})",
        )
    record_config = "Retain_Set" if config == "Retain_Set" else "Full_Set"  # splits hold Full_Set people
    files = config_files(root, config)  # checked before ft_Data, so a missing config is reported first
    if ft is None:
        ft = load_ft_data(root) if (Path(root) / "ft_Data").is_dir() else []
    by_hash: dict[str, list[tuple[str, str]]] = {}
    by_id: dict[str, list[tuple[str, str]]] = {}
    for entry in ft:
        by_hash.setdefault(_digest(entry.image), []).extend(entry.qa)
        if entry.id is not None:
            by_id.setdefault(entry.id, []).extend(entry.qa)

    people: list[Person] = []
    seen: dict[str, tuple[Path, int]] = {}
    for file in files:
        rows = _read_rows(file, ("ID", "image", "Classification_Task"), ("question", "answer", *OPEN_TASKS))
        for i, row in enumerate(rows):
            pid = _str(row["ID"], file, i, "ID")
            if pid in seen:
                f0, r0 = seen[pid]
                raise DataError(
                    file, f"duplicate ID {pid!r} (first at {f0.name} row {r0})", row=i, field="ID"
                )
            seen[pid] = (file, i)
            image = _image(row["image"], file, i, "image")
            questions = _questions(row["Classification_Task"], file, i)
            qa = by_id.get(pid) if record_config == "Full_Set" else None
            qa = qa or by_hash.get(_digest(image))
            q, a = row.get("question"), row.get("answer")
            if not qa and isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
                qa = [(q, a)]
            people.append(
                Person(id=pid, config=record_config, image=image, questions=questions, qa=tuple(qa or ()),
                       generation=_open_questions(row.get("Generation_Task"), file, i, "Generation_Task"),
                       fill_blank=_open_questions(row.get("Mask_Task"), file, i, "Mask_Task"))
            )
    return people


def count_mllmu(root: Path) -> dict:
    """{"people": int, "questions": {"multimodal": int, "text": int}} over Full_Set and Retain_Set."""
    ft = load_ft_data(root) if (Path(root) / "ft_Data").is_dir() else []
    people = [p for c in PEOPLE_CONFIGS for p in load_people(root, c, ft=ft)]
    counts = {"multimodal": 0, "text": 0}
    for p in people:
        for q in p.questions:
            counts[q.modality] += 1
    return {"people": len(people), "questions": counts}
