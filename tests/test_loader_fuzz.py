"""Property tests: the MLLMU-Bench parquet loader and the MMBench TSV loader fed malformed records, and
both parquet loaders fed damaged bytes.

Each example starts from a valid miniature source and applies a few random mutations. A mutation is
either *breaking* (the published schema is violated: the loader must raise DataError) or *benign*
(still valid: the loader must return exactly the records an independent oracle computes). Whatever
the input, nothing but DataError may escape, and a partial list is never returned.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_mmbench_loader import base_rows, write_hub_parquet

from repro.data.mllmu import load_people
from repro.data.mmbench import load_mmbench
from repro.data.records import LETTERS, MCQ, MMBenchQuestion, Person
from repro.errors import DataError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHARD = "train-00000-of-00001.parquet"
N_PEOPLE = 3
N_ROWS = 4


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), ((60 * i) % 256, (90 * i + 40) % 256, 200)).save(buf, format="PNG")
    return buf.getvalue()


def overwrite(path: Path, pos: int, width: int, fill: bytes) -> None:
    """`width` bytes of `path` from `pos` (modulo its size) overwritten with `fill` repeated."""
    data = bytearray(path.read_bytes())
    pos %= len(data)
    data[pos:pos + width] = (fill * width)[:width]
    path.write_bytes(bytes(data))


# ============================================================ MLLMU-Bench (parquet)


def _mcq(q: str, answer: str) -> dict:
    return {"Question": q, "Options": {"A": "red", "B": "blue", "C": "green", "D": "black"},
            "Correct_Answer": answer}


def mllmu_rows() -> tuple[list[dict], list[dict]]:
    full, ft = [], []
    for i in range(N_PEOPLE):
        pid = f"{i:03d}"
        image = {"bytes": png(i), "path": f"{pid}.png"}
        full.append({
            "image": image, "ID": pid, "Directory": pid, "biography": "bio",
            "question": "What colour?", "answer": "blue",
            "Classification_Task": {
                "Image_Textual_Questions": [_mcq(f"image q{j} {pid}?", "B") for j in range(2)],
                "Pure_Text_Questions": [_mcq(f"text q{j} {pid}?", "A") for j in range(2)],
            },
        })
        ft.append({"image": dict(image), "metadata": json.dumps(
            [{"Question": f"Who is {pid}?", "Answer": f"person {pid}"}, {"Question": "Where?", "Answer": "home"}])})
    return full, ft


def _questions(row: dict) -> list[dict]:
    ct = row["Classification_Task"]
    return ct["Image_Textual_Questions"] + ct["Pure_Text_Questions"]


# Each mutation: (name, breaking, function(full, ft, draw-index) -> None).
def _drop(rows, col):
    for r in rows:
        r.pop(col, None)


def _column(rows, col, value):
    for r in rows:
        r[col] = value(r)


def m_missing_full_col(full, ft, k):
    _drop(full, ("ID", "image", "Classification_Task")[k % 3])


def m_missing_ft_col(full, ft, k):
    _drop(ft, ("image", "metadata")[k % 2])


def m_id_wrong_type(full, ft, k):
    _column(full, "ID", lambda r: int(r["ID"]) if isinstance(r["ID"], str) else 7)


def m_id_none(full, ft, k):
    full[k % len(full)]["ID"] = None


def m_duplicate_id(full, ft, k):
    full[1]["ID"] = full[0]["ID"]


def m_truncated_image(full, ft, k):
    row = full[k % len(full)]
    data = row["image"]["bytes"]
    row["image"] = {"bytes": data[: (k * 7) % max(1, len(data) // 2)], "path": "x.png"}


def m_truncated_ft_image(full, ft, k):
    row = ft[k % len(ft)]
    data = row["image"]["bytes"]
    row["image"] = {"bytes": data[: (k * 5) % max(1, len(data) // 2)], "path": "x.png"}


def m_image_none(full, ft, k):
    full[k % len(full)]["image"] = None


def m_image_path_only(full, ft, k):
    full[k % len(full)]["image"] = {"bytes": None, "path": "only/a/path.png"}


def m_image_plain_binary(full, ft, k):
    _column(full, "image", lambda r: png(k))


def m_ct_wrong_type(full, ft, k):
    _column(full, "Classification_Task", lambda r: "not a struct")


def m_ct_none(full, ft, k):
    full[k % len(full)]["Classification_Task"] = None


def m_question_list_none(full, ft, k):
    full[k % len(full)]["Classification_Task"]["Pure_Text_Questions"] = None


def m_question_none(full, ft, k):
    _questions(full[k % len(full)])[k % 4]["Question"] = None


def m_bad_answer_letter(full, ft, k):
    _questions(full[k % len(full)])[k % 4]["Correct_Answer"] = ("E", "", "Z", "AB")[k % 4]


def m_answer_wrong_type(full, ft, k):
    for r in full:
        for q in _questions(r):
            q["Correct_Answer"] = 1


def m_bad_option_letter(full, ft, k):
    _questions(full[k % len(full)])[k % 4]["Options"]["E"] = "purple"


def m_bad_json(full, ft, k):
    row = ft[k % len(ft)]
    text = row["metadata"]
    row["metadata"] = text[: len(text) - 1 - k % (len(text) - 1)]


def m_json_not_list(full, ft, k):
    ft[k % len(ft)]["metadata"] = ('{"Question": "q", "Answer": "a"}', "[1, 2]", '"text"', "null")[k % 4]


def m_metadata_none(full, ft, k):
    ft[k % len(ft)]["metadata"] = None


def m_metadata_wrong_type(full, ft, k):
    _column(ft, "metadata", lambda r: 42)


# Benign: still valid input, with a predictable effect on the records.
def b_drop_optional(full, ft, k):
    _drop(full, ("biography", "Directory", "question", "answer")[k % 4])


def b_option_d_empty(full, ft, k):
    q = _questions(full[k % len(full)])[k % 4]
    q["Options"]["D"] = None if k % 2 else ""


def b_answer_as_text(full, ft, k):
    q = _questions(full[k % len(full)])[k % 4]
    q["Correct_Answer"] = q["Options"][q["Correct_Answer"]]


def b_ft_empty_pair(full, ft, k):
    row = ft[k % len(ft)]
    pairs = json.loads(row["metadata"])
    row["metadata"] = json.dumps(pairs + [{"Question": "skipped?", "Answer": ""}])


BREAKING = [m_missing_full_col, m_missing_ft_col, m_id_wrong_type, m_id_none, m_duplicate_id, m_truncated_image,
            m_truncated_ft_image, m_image_none, m_image_path_only, m_image_plain_binary, m_ct_wrong_type, m_ct_none,
            m_question_list_none, m_question_none, m_bad_answer_letter, m_answer_wrong_type, m_bad_option_letter,
            m_bad_json, m_json_not_list, m_metadata_none, m_metadata_wrong_type]
BENIGN = [b_drop_optional, b_option_d_empty, b_answer_as_text, b_ft_empty_pair]


def mllmu_oracle(full: list[dict], ft: list[dict]) -> list[Person]:
    """The records a valid (benignly mutated) source must give, computed without the loader."""
    qa_by_image = {}
    for r in ft:
        pairs = [(p["Question"], p["Answer"]) for p in json.loads(r["metadata"]) if p["Question"] and p["Answer"]]
        qa_by_image[r["image"]["bytes"]] = tuple(pairs)
    people = []
    for r in full:
        questions = []
        for key, modality in (("Image_Textual_Questions", "multimodal"), ("Pure_Text_Questions", "text")):
            for q in r["Classification_Task"][key]:
                options = {k: v for k, v in q["Options"].items() if v}
                answer = q["Correct_Answer"]
                if answer not in LETTERS:
                    (answer,) = [k for k, v in options.items() if v == answer]
                questions.append(MCQ(q["Question"], options, answer, modality))
        people.append(Person(r["ID"], "Full_Set", r["image"]["bytes"], tuple(questions),
                             qa_by_image[r["image"]["bytes"]]))
    return people


def write_mllmu(root: Path, full: list[dict], ft: list[dict]) -> bool:
    """Write the two configs; False when pyarrow cannot hold the mutated rows in one table."""
    for config, rows in (("Full_Set", full), ("ft_Data", ft)):
        (root / config).mkdir(parents=True)
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowException, TypeError, ValueError):
            return False
        pq.write_table(table, root / config / SHARD)
    return True


def apply(mutations, *data) -> list:
    """Apply what applies; a mutation that an earlier one made meaningless (its field is gone) is skipped."""
    applied = []
    # Benign mutations first: applied after a breaking one they could overwrite the very field it broke.
    for fn, k in sorted(mutations, key=lambda m: m[0].__name__.startswith(("m_", "t_"))):
        try:
            fn(*data, k)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            continue
        applied.append(fn)
    return applied


mutation_lists = st.lists(st.tuples(st.sampled_from(BREAKING + BENIGN), st.integers(0, 60)), max_size=3)


@FUZZ
@given(mutations=mutation_lists)
def test_mllmu_loader_raises_data_error_or_returns_every_record(mutations):
    full, ft = mllmu_rows()
    applied = apply(mutations, full, ft)
    breaking = any(fn in BREAKING for fn in applied)
    names = [fn.__name__ for fn in applied]
    with tempfile.TemporaryDirectory() as tmp:
        assume(write_mllmu(Path(tmp), full, ft))
        try:
            people = load_people(Path(tmp), "Full_Set")
        except DataError as exc:
            if not breaking:
                pytest.fail(f"valid input refused ({names}): {exc}")
            return
    assert not breaking, f"malformed input accepted: {names}"
    assert people == mllmu_oracle(full, ft)


@FUZZ
@given(pos=st.integers(0, 10_000), width=st.integers(1, 64), fill=st.binary(min_size=1, max_size=64))
# found by this test: a zeroed row-group header made pyarrow read no rows, and the loader returned no people
@example(pos=4935, width=1, fill=b"\x00")
# and a damaged string page read as text that is not UTF-8: a UnicodeDecodeError, not a DataError
@example(pos=376, width=1, fill=b"\x80")
def test_mllmu_loader_survives_corrupt_parquet_bytes(pos, width, fill):
    """Bytes overwritten anywhere in a shard (a bad download): DataError, or the full list."""
    full, ft = mllmu_rows()
    with tempfile.TemporaryDirectory() as tmp:
        write_mllmu(Path(tmp), full, ft)
        overwrite(Path(tmp) / "Full_Set" / SHARD, pos, width, fill)
        try:
            people = load_people(Path(tmp), "Full_Set")
        except DataError:
            return
    assert len(people) == N_PEOPLE and all(len(p.questions) == 4 for p in people)


# ============================================================ MMBench (lmms-lab parquet)


@FUZZ
@given(pos=st.integers(0, 20_000), width=st.integers(1, 64), fill=st.binary(min_size=1, max_size=64))
@example(pos=636, width=1, fill=b"\x86")  # a string page damaged into text that is not UTF-8
def test_mmbench_parquet_loader_survives_corrupt_bytes(pos, width, fill):
    """Bytes overwritten anywhere in a hub shard (a bad download): DataError, or every question."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write_hub_parquet(root, base_rows())
        expected = [q.index for q in load_mmbench(root)]
        overwrite(path, pos, width, fill)
        try:
            questions = load_mmbench(root)
        except DataError:
            return
    assert [q.index for q in questions] == expected


# ============================================================ MMBench (VLMEvalKit TSV)

TSV_COLS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split", "image"]
REQUIRED = ["index", "question", "A", "B", "answer", "category", "image"]


def mmbench_rows() -> list[dict]:
    return [{"index": str(i), "question": f"What is shown in picture {i}?", "hint": f"hint {i}" if i % 2 else "",
             "A": "a cat", "B": "a dog", "C": "a bird", "D": "a fish", "answer": "ABCD"[i % 3],
             "category": "object", "l2-category": "perception", "split": "dev",
             "image": base64.b64encode(png(i)).decode()} for i in range(N_ROWS)]


def t_missing_col(rows, extra, k):
    _drop(rows, REQUIRED[k % len(REQUIRED)])


def t_index_not_int(rows, extra, k):
    rows[k % N_ROWS]["index"] = ("x1", "", "1.5", "nan", "0x3")[k % 5]


def t_duplicate_index(rows, extra, k):
    rows[1 + k % (N_ROWS - 1)]["index"] = rows[0]["index"]


def t_bad_answer(rows, extra, k):
    rows[k % N_ROWS]["answer"] = ("E", "", "a", "AB", "nan")[k % 5]


def t_answer_names_empty_option(rows, extra, k):
    row = rows[k % N_ROWS]
    row["D"], row["answer"] = "", "D"


def t_empty_question(rows, extra, k):
    rows[k % N_ROWS]["question"] = ("", "   ", "nan")[k % 3]


def t_option_a_empty(rows, extra, k):
    rows[k % N_ROWS]["A" if k % 2 else "B"] = ""


def t_gap_in_options(rows, extra, k):
    row = rows[k % N_ROWS]
    row["C"], row["D"] = "", "a fish"  # C empty with D set: a gap (C and D both empty would be valid)
    if row["answer"] == "C":
        row["answer"] = "A"


def t_truncated_image(rows, extra, k):
    data = png(k % N_ROWS)
    rows[k % N_ROWS]["image"] = base64.b64encode(data[: 50 + k % (len(data) // 2 - 50)]).decode() \
        if len(data) > 110 else base64.b64encode(data[:20]).decode() + "A" * 60


def t_image_not_base64(rows, extra, k):
    rows[k % N_ROWS]["image"] = "!" * 100 if k % 2 else "é" * 80


def t_image_short_not_index(rows, extra, k):
    rows[k % N_ROWS]["image"] = ("abc", "", "nan", "1.0")[k % 4]


def t_image_dangling_ref(rows, extra, k):
    rows[k % N_ROWS]["image"] = "999"


def t_extra_field(rows, extra, k):
    extra["extra_field_row"] = k % N_ROWS


def t_invalid_utf8(rows, extra, k):
    extra["invalid_utf8_row"] = k % N_ROWS


def tb_drop_optional(rows, extra, k):
    _drop(rows, ("hint", "l2-category", "split", "C")[k % 4] if k % 4 != 3 else "split")


def tb_d_empty(rows, extra, k):
    row = rows[k % N_ROWS]
    if row["answer"] != "D":
        row["D"] = ("", "nan")[k % 2]


def tb_image_ref(rows, extra, k):
    rows[1 + k % (N_ROWS - 1)]["image"] = " 0 " if k % 2 else "0"


def tb_padded(rows, extra, k):
    row = rows[k % N_ROWS]
    row["index"], row["answer"] = f" {row['index']} ", f" {row['answer']}"


TSV_BREAKING = [t_missing_col, t_index_not_int, t_duplicate_index, t_bad_answer, t_answer_names_empty_option,
                t_empty_question, t_option_a_empty, t_gap_in_options, t_truncated_image, t_image_not_base64,
                t_image_short_not_index, t_image_dangling_ref, t_extra_field, t_invalid_utf8]
TSV_BENIGN = [tb_drop_optional, tb_d_empty, tb_image_ref, tb_padded]


def write_tsv(path: Path, rows: list[dict], extra: dict) -> None:
    cols = [c for c in TSV_COLS if any(c in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in cols})
    lines = buf.getvalue().split("\n")
    if "extra_field_row" in extra:
        lines[1 + extra["extra_field_row"]] += "\tsurplus"
    data = "\n".join(lines).encode()
    if "invalid_utf8_row" in extra:
        raw = data.split(b"\n")
        raw[1 + extra["invalid_utf8_row"]] = raw[1 + extra["invalid_utf8_row"]].replace(b"What", b"Wh\xff\xfet", 1)
        data = b"\n".join(raw)
    path.write_bytes(data)


def mmbench_oracle(rows: list[dict]) -> list[MMBenchQuestion]:
    def empty(v):
        return v is None or v.strip() in ("", "nan")

    images = {int(r["index"]): base64.b64decode(r["image"]) for r in rows if len(r["image"].strip()) > 64}
    out = []
    for r in rows:
        img = r["image"].strip()
        out.append(MMBenchQuestion(
            index=int(r["index"]), question=r["question"], hint="" if empty(r.get("hint")) else r["hint"],
            options={k: r[k] for k in LETTERS if k in r and not empty(r[k])}, answer=r["answer"].strip(),
            category=r["category"], l2_category="" if empty(r.get("l2-category")) else r["l2-category"],
            image=images[int(img)] if len(img) <= 64 else images[int(r["index"])]))
    return out


@FUZZ
@given(mutations=st.lists(st.tuples(st.sampled_from(TSV_BREAKING + TSV_BENIGN), st.integers(0, 60)), max_size=3))
def test_mmbench_tsv_loader_raises_data_error_or_returns_every_record(mutations):
    rows, extra = mmbench_rows(), {}
    applied = apply(mutations, rows, extra)
    breaking = any(fn in TSV_BREAKING for fn in applied)
    names = [fn.__name__ for fn in applied]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "MMBench_DEV_EN.tsv"
        write_tsv(path, rows, extra)
        try:
            questions = load_mmbench(path)
        except DataError as exc:
            if not breaking:
                pytest.fail(f"valid input refused ({names}): {exc}")
            assert str(exc).startswith(str(path)), "the error names the file"
            return
    assert not breaking, f"malformed input accepted: {names}"
    assert questions == mmbench_oracle(rows)


@FUZZ
@given(pos=st.integers(0, 100_000), junk=st.binary(min_size=1, max_size=32))
def test_mmbench_tsv_loader_survives_arbitrary_byte_damage(pos, junk):
    """Arbitrary bytes spliced into the file: DataError or a full, well-typed list, nothing else."""
    rows = mmbench_rows()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "MMBench_DEV_EN.tsv"
        write_tsv(path, rows, {})
        data = path.read_bytes()
        pos %= len(data)
        path.write_bytes(data[:pos] + junk + data[pos:])
        try:
            questions = load_mmbench(path)
        except DataError:
            return
    assert all(isinstance(q, MMBenchQuestion) and q.answer in q.options and q.image for q in questions)


def test_the_oracles_agree_with_the_loaders_on_clean_input(tmp_path):
    """The properties above can fail: the clean sources load to exactly what the oracles compute."""
    full, ft = mllmu_rows()
    assert write_mllmu(tmp_path / "mllmu", full, ft)
    assert load_people(tmp_path / "mllmu", "Full_Set") == mllmu_oracle(full, ft)
    rows = mmbench_rows()
    write_tsv(tmp_path / "mm.tsv", rows, {})
    assert load_mmbench(tmp_path / "mm.tsv") == mmbench_oracle(copy.deepcopy(rows))
