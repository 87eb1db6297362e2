"""MMBench loader: VLMEvalKit TSV and lmms-lab parquet layouts, validation, circular scoring."""

from __future__ import annotations

import base64
import csv
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from repro.data.circular import groups_correct, single_pass
from repro.data.images import encode_png
from repro.data.mmbench import count_mmbench, load_mmbench
from repro.errors import DataError

COLS = [
    "index",
    "question",
    "hint",
    "A",
    "B",
    "C",
    "D",
    "answer",
    "category",
    "l2-category",
    "split",
    "image",
]


def png(colour: tuple[int, int, int], size: int = 8) -> bytes:
    return encode_png(Image.new("RGB", (size, size), colour))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


def row(**fields) -> dict:
    """Keyword arguments read like the TSV header."""
    return fields


def base_rows() -> list[dict]:
    """Question 0 with three circular copies, question 1 reusing 0's image with empty C/D, question 2."""
    rows = [
        row(
            index=0,
            question="What colour?",
            hint="",
            A="red",
            B="blue",
            C="green",
            D="pink",
            answer="A",
            image=b64(RED),
        ),
        row(index=1, question="Is it red?", hint="Look.", A="yes", B="no", C="", D="", answer="A", image="0"),
        row(
            index=2,
            question="Which shape?",
            hint="nan",
            A="dot",
            B="box",
            C="line",
            D="",
            answer="C",
            image=b64(BLUE),
        ),
    ]
    opts = ["red", "blue", "green", "pink"]
    for k in (1, 2, 3):
        rot = opts[k:] + opts[:k]
        rows.append(
            row(
                index=k * 1_000_000,
                question="What colour?",
                hint="",
                A=rot[0],
                B=rot[1],
                C=rot[2],
                D=rot[3],
                answer="ABCD"[rot.index("red")],
                image="0",
            )
        )
    for r in rows:
        r.update({"category": "attribute_recognition", "l2-category": "coarse_perception", "split": "dev"})
    return rows


def write_tsv(path, rows, cols=COLS):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r.get(c, "") for c in cols])
    return path


def test_tsv_circular_reference_and_empty_options(tmp_path):
    qs = load_mmbench(write_tsv(tmp_path / "MMBench_DEV_EN.tsv", base_rows()))
    by = {q.index: q for q in qs}
    assert [q.index for q in qs] == [0, 1, 2, 1_000_000, 2_000_000, 3_000_000]
    assert by[1].options == {"A": "yes", "B": "no"}  # empty C/D left out
    assert by[2].options == {"A": "dot", "B": "box", "C": "line"}
    assert by[1].image == RED and by[3_000_000].image == RED and by[2].image == BLUE
    assert by[1].hint == "Look." and by[0].hint == "" and by[2].hint == ""  # "nan" is no hint
    assert by[0].l2_category == "coarse_perception" and by[0].category == "attribute_recognition"
    assert {q.group for q in qs} == {0, 1, 2}
    assert [q.answer for q in qs if q.group == 0] == ["A", "D", "C", "B"]
    assert [q.index for q in single_pass(qs, lambda q: q.index)] == [0, 1, 2]
    assert count_mmbench(tmp_path / "MMBench_DEV_EN.tsv") == {"questions": 3, "rows": 6, "categories": 1}
    assert count_mmbench(tmp_path) == {"questions": 3, "rows": 6, "categories": 1}  # a dir holding the TSV


def test_tsv_field_larger_than_csv_default(tmp_path):
    rng = random.Random(0)
    noise = Image.frombytes("RGB", (256, 256), bytes(rng.randrange(256) for _ in range(256 * 256 * 3)))
    rows = base_rows()
    rows[2]["image"] = b64(encode_png(noise))
    assert len(rows[2]["image"]) > 131072  # csv's default field limit
    qs = load_mmbench(write_tsv(tmp_path / "big.tsv", rows))
    assert qs[2].image == encode_png(noise)


def write_hub_parquet(root, rows, index_type=None):
    """lmms-lab/MMBench layout: en/dev-*.parquet, HF Image struct, `L2-category`, "nan" strings."""
    index_type = index_type or pa.string()
    (root / "en").mkdir(parents=True)
    cols = {
        c: []
        for c in [
            "index",
            "question",
            "hint",
            "answer",
            "A",
            "B",
            "C",
            "D",
            "category",
            "image",
            "source",
            "L2-category",
            "comment",
            "split",
        ]
    }
    for r in rows:
        # The hub stores every row's image itself: resolve VLMEvalKit's index references here.
        src = r if len(r["image"]) > 64 else next(x for x in rows if str(x["index"]) == r["image"])
        img = base64.b64decode(src["image"])
        cols["index"].append(str(r["index"]) if index_type == pa.string() else r["index"])
        for c in ["question", "answer", "A", "B", "category", "split"]:
            cols[c].append(r[c])
        for c in ["C", "D"]:
            cols[c].append(r[c] or "nan")  # the hub kept pandas' NaN as the string "nan"
        cols["hint"].append(r["hint"] or None)
        cols["image"].append({"bytes": img, "path": None})
        cols["source"].append("test")
        cols["L2-category"].append(r["l2-category"])
        cols["comment"].append(None)
    schema = {"index": index_type, "image": pa.struct([("bytes", pa.binary()), ("path", pa.string())])}
    table = pa.table({c: pa.array(v, type=schema.get(c, pa.string())) for c, v in cols.items()})
    path = root / "en" / "dev-00000-of-00001.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("index_type", [pa.string(), pa.int64()])
def test_parquet_dir_in_lmms_lab_layout(tmp_path, index_type):
    write_hub_parquet(tmp_path, base_rows(), index_type)
    qs = load_mmbench(tmp_path)
    by = {q.index: q for q in qs}
    assert len(qs) == 6 and {q.group for q in qs} == {0, 1, 2}
    assert by[1].options == {"A": "yes", "B": "no"} and by[1].image == RED
    assert by[2].options == {"A": "dot", "B": "box", "C": "line"} and by[2].image == BLUE
    assert by[0].l2_category == "coarse_perception" and by[0].hint == "" and by[1].hint == "Look."
    assert by[2_000_000].answer == "C"


def _drop(rows, col):
    return rows, [c for c in COLS if c != col]


MALFORMED = {
    # name: (mutation of base rows, expected row, expected field)
    "missing column": (lambda rs: _drop(rs, "answer"), None, "answer"),
    "index not integer": (lambda rs: (rs[:1] + [{**rs[1], "index": "1.5x"}] + rs[2:], COLS), 2, "index"),
    "answer names empty option": (
        lambda rs: (rs[:1] + [{**rs[1], "answer": "C"}] + rs[2:], COLS),
        2,
        "answer",
    ),
    "answer not a letter A-D": (lambda rs: (rs[:2] + [{**rs[2], "answer": "E"}] + rs[3:], COLS), 3, "answer"),
    "option gap": (lambda rs: (rs[:2] + [{**rs[2], "B": ""}] + rs[3:], COLS), 3, "B"),
    "image not base64": (lambda rs: (rs[:2] + [{**rs[2], "image": "!" * 100}] + rs[3:], COLS), 3, "image"),
    "image undecodable": (
        lambda rs: (rs[:2] + [{**rs[2], "image": b64(b"x" * 90)}] + rs[3:], COLS),
        3,
        "image",
    ),
    "reference to missing index": (
        lambda rs: (rs[:1] + [{**rs[1], "image": "99"}] + rs[2:], COLS),
        2,
        "image",
    ),
    "duplicate index": (lambda rs: (rs[:2] + [{**rs[2], "index": 1}] + rs[3:], COLS), 3, "index"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_tsv_raises_data_error(tmp_path, name):
    mutate, row, field = MALFORMED[name]
    rows, cols = mutate(base_rows())
    path = write_tsv(tmp_path / "bad.tsv", rows, cols)
    with pytest.raises(DataError) as info:
        load_mmbench(path)
    e = info.value
    assert (e.file, e.row, e.field) == (str(path), row, field)
    msg = str(e)
    assert "\n" not in msg and str(path) in msg and repr(field) in msg
    assert row is None or f"row {row}" in msg


def test_referenced_row_with_bad_image_is_named(tmp_path):
    rows = base_rows()
    rows[0]["image"] = b64(b"y" * 90)  # row 1 holds it; rows 2 and 4-6 refer to it
    with pytest.raises(DataError) as info:
        load_mmbench(write_tsv(tmp_path / "bad.tsv", rows))
    assert (info.value.row, info.value.field) == (1, "image")


def test_malformed_parquet_raises_data_error(tmp_path):
    rows = base_rows()
    rows[1] = {**rows[1], "index": "one"}
    path = write_hub_parquet(tmp_path, rows)
    with pytest.raises(DataError) as info:
        load_mmbench(tmp_path)
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 2, "index")


def test_missing_source_raises_data_error(tmp_path):
    with pytest.raises(DataError):
        load_mmbench(tmp_path)  # an empty directory
    with pytest.raises(DataError):
        load_mmbench(tmp_path / "nope.tsv")


def test_circular_correct_needs_every_copy(tmp_path):
    qs = load_mmbench(write_tsv(tmp_path / "d.tsv", base_rows()))
    preds = {q.index: q.answer for q in qs}

    def correct():
        return groups_correct(qs, lambda q: q.index, lambda q: q.answer, preds)

    assert correct() == {0: True, 1: True, 2: True}
    preds[2_000_000] = "A"  # one copy of question 0 wrong
    preds[2] = "B"
    assert correct() == {0: False, 1: True, 2: False}
    del preds[1]  # a question without a prediction is answered wrongly
    assert correct() == {0: False, 1: False, 2: False}

