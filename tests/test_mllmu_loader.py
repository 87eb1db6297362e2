"""The MLLMU-Bench loader on a hand-made mirror in the hub's layout, and on malformed copies of it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from repro.data.images import decode_image_bytes, encode_png
from repro.data.mllmu import count_mllmu, load_ft_data, load_people
from repro.data.source import resolve_source
from repro.errors import DataError, ReproError

SHARD = "train-00000-of-00001.parquet"


def png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def mcq(q: str, answer: str = "B") -> dict:
    return {
        "Question": q,
        "Options": {"A": "red", "B": "blue", "C": "green", "D": "black"},
        "Correct_Answer": answer,
    }


def person_row(pid: str, colour) -> dict:
    return {
        "image": {"bytes": png(colour), "path": f"{pid}.png"},
        "ID": pid,
        "Directory": pid,
        "biography": "a person",
        "question": "What colour?",
        "answer": "blue",
        "Classification_Task": {
            "Image_Textual_Questions": [mcq(f"image question {i}?") for i in range(5)],
            "Pure_Text_Questions": [mcq(f"text question {i} about {pid}?", "A") for i in range(5)],
        },
        "Generation_Task": [{"Question": "q", "Ground_Truth": "g", "Type": "Image_Textual"}],
        "Mask_Task": [{"Question": "q __", "Ground_Truth": "g", "Type": "Pure_Text"}],
    }


def write(root: Path, config: str, rows: list[dict]) -> Path:
    (root / config).mkdir(parents=True, exist_ok=True)
    path = root / config / SHARD
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def mirror(root: Path) -> dict[str, list[dict]]:
    """Full_Set (2 people), Retain_Set (1, with an ID that overlaps Full_Set's), ft_Data linked by image."""
    rows = {
        "Full_Set": [person_row("001", (255, 0, 0)), person_row("093", (0, 255, 0))],
        "Retain_Set": [person_row("001", (0, 0, 255))],
    }
    ft = [
        {
            "image": dict(r["image"]),
            "metadata": json.dumps(
                [{"Question": f"Who is {r['ID']}?", "Answer": "x"}, {"Question": "Where?", "Answer": "home"}]
            ),
        }
        for r in rows["Full_Set"]
    ]
    rows["ft_Data"] = ft
    for config, rs in rows.items():
        write(root, config, rs)
    return rows


def test_reads_real_layout(tmp_path):
    rows = mirror(tmp_path)
    full = load_people(tmp_path, "Full_Set")
    assert [p.id for p in full] == ["001", "093"]  # zero-padded strings kept as published
    assert all(p.config == "Full_Set" for p in full)
    p = full[1]
    assert p.image == rows["Full_Set"][1]["image"]["bytes"]
    kinds = [q.modality for q in p.questions]
    assert kinds.count("multimodal") == 5 and kinds.count("text") == 5
    assert p.questions[0].answer == "B" and p.questions[0].options["B"] == "blue"
    assert p.questions[5].answer == "A" and "093" in p.questions[5].question
    assert p.qa == (("Who is 093?", "x"), ("Where?", "home"))  # linked by identical image bytes
    (celeb,) = load_people(tmp_path, "Retain_Set")
    assert celeb.key == "Retain_Set/001" and celeb.key != full[0].key
    assert celeb.qa == (("What colour?", "blue"),)  # no ft_Data row: its own question/answer columns
    assert count_mllmu(tmp_path) == {"people": 3, "questions": {"multimodal": 15, "text": 15}}
    assert len(load_ft_data(tmp_path)) == 2


def test_answer_given_as_option_text(tmp_path):
    rows = mirror(tmp_path)
    rows["Full_Set"][0]["Classification_Task"]["Pure_Text_Questions"][2]["Correct_Answer"] = "green"
    write(tmp_path, "Full_Set", rows["Full_Set"])
    assert load_people(tmp_path, "Full_Set")[0].questions[7].answer == "C"


def test_empty_options_left_out(tmp_path):
    rows = mirror(tmp_path)
    rows["Full_Set"][0]["Classification_Task"]["Image_Textual_Questions"][0]["Options"]["D"] = ""
    write(tmp_path, "Full_Set", rows["Full_Set"])
    assert set(load_people(tmp_path, "Full_Set")[0].questions[0].options) == {"A", "B", "C"}


def _drop_column(rows):
    for r in rows["Full_Set"]:
        del r["Classification_Task"]


def _int_id(rows):
    for i, r in enumerate(rows["Full_Set"]):
        r["ID"] = i + 1


def _letter_e(rows):
    for r in rows["Full_Set"]:
        for q in r["Classification_Task"]["Pure_Text_Questions"]:
            q["Options"] = {"A": "a", "B": "b", "C": "c", "E": "e"}


def _bad_answer(rows):
    rows["Full_Set"][1]["Classification_Task"]["Image_Textual_Questions"][3]["Correct_Answer"] = "purple"


def _bad_image(rows):
    rows["Full_Set"][1]["image"]["bytes"] = b"\x89PNG not really"


def _duplicate_id(rows):
    rows["Full_Set"][1]["ID"] = "001"


def _bad_json(rows):
    rows["ft_Data"][1]["metadata"] = '[{"Question": "q", "Answer": '


def _json_not_list(rows):
    rows["ft_Data"][0]["metadata"] = '{"Question": "q", "Answer": "a"}'


@pytest.mark.parametrize(
    "mutate, config, row, field",
    [
        (_drop_column, "Full_Set", None, "Classification_Task"),
        (_int_id, "Full_Set", 0, "ID"),
        (_letter_e, "Full_Set", 0, "Classification_Task.Pure_Text_Questions[0].Options"),
        (_bad_answer, "Full_Set", 1, "Classification_Task.Image_Textual_Questions[3].Correct_Answer"),
        (_bad_image, "Full_Set", 1, "image"),
        (_duplicate_id, "Full_Set", 1, "ID"),
        (_bad_json, "ft_Data", 1, "metadata"),
        (_json_not_list, "ft_Data", 0, "metadata"),
    ],
)
def test_malformed_input_names_file_row_field(tmp_path, mutate, config, row, field):
    rows = mirror(tmp_path)
    mutate(rows)
    path = write(tmp_path, config, rows[config])
    with pytest.raises(DataError) as info:
        load_people(tmp_path, "Full_Set")
    err, msg = info.value, str(info.value)
    assert "\n" not in msg
    assert err.file == str(path) and str(path) in msg
    assert err.field == field and repr(field) in msg
    assert err.row == row
    if row is not None:
        assert f"row {row}" in msg


def test_missing_config_dir(tmp_path):
    mirror(tmp_path)
    with pytest.raises(DataError, match="forget_5"):
        load_people(tmp_path, "forget_5")


def test_not_a_people_config(tmp_path):
    mirror(tmp_path)
    with pytest.raises(DataError, match="not a people config"):
        load_people(tmp_path, "ft_Data")


def test_images_helpers():
    img = Image.new("RGB", (4, 4), (1, 2, 3))
    img.info["comment"] = "dropped"
    assert encode_png(img) == encode_png(Image.new("RGB", (4, 4), (1, 2, 3)))
    assert decode_image_bytes(encode_png(img)).getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(ValueError):
        decode_image_bytes(b"nope")
    with pytest.raises(ValueError):
        decode_image_bytes(encode_png(img)[:30])  # truncated


def test_resolve_source(tmp_path, monkeypatch):
    assert resolve_source(str(tmp_path), "MLLMU-Bench") == tmp_path
    with pytest.raises(ReproError, match="not found.*nowhere"):
        resolve_source(str(tmp_path / "nowhere"), "MLLMU-Bench")

    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable\nmore detail")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ReproError) as info:
        resolve_source("hf:MLLMMU/MLLMU-Bench", "MLLMU-Bench")
    assert "\n" not in str(info.value) and "network unreachable" in str(info.value)


def test_generation_and_mask_tasks_are_read_with_their_modality(tmp_path):
    from repro.data.records import OpenQuestion

    mirror(tmp_path)
    person = load_people(tmp_path, "Full_Set")[0]
    assert person.generation == (OpenQuestion("q", "g", "multimodal"),)
    assert person.fill_blank == (OpenQuestion("q __", "g", "text"),)


def test_a_task_without_the_columns_is_empty_and_a_bad_type_is_named(tmp_path):
    rows = [person_row("001", (255, 0, 0))]
    for row in rows:
        del row["Generation_Task"], row["Mask_Task"]
    write(tmp_path, "Full_Set", rows)
    assert load_people(tmp_path, "Full_Set")[0].generation == ()
    bad = person_row("001", (255, 0, 0))
    bad["Mask_Task"] = [{"Question": "q __", "Ground_Truth": "g", "Type": "Image"}]
    path = write(tmp_path, "Full_Set", [bad])
    with pytest.raises(DataError, match=r"Image_Textual, Pure_Text.*'Image'") as exc:
        load_people(tmp_path, "Full_Set")
    assert "Mask_Task[0].Type" in str(exc.value) and path.name in str(exc.value)
