"""The miniature world's people: counts, determinism, distinct faces, and read back by the real loader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from repro.data.images import decode_image_bytes
from repro.data.mllmu import _image, _read_rows, _str, config_files, count_mllmu, load_people
from repro.data.world_people import make_world_people, write_mllmu_world
from repro.errors import DataError


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_mllmu_world(root, seed=0)
    return root


def test_counts(world):
    assert count_mllmu(world) == {"people": 653, "questions": {"multimodal": 3265, "text": 3265}}
    full, retain = load_people(world, "Full_Set"), load_people(world, "Retain_Set")
    assert len(full) == 500 and len(retain) == 153
    assert [p.id for p in retain[:2]] == ["001", "002"] and full[-1].id == "500"
    for p in full + retain:
        kinds = [q.modality for q in p.questions]
        assert kinds.count("multimodal") == 5 and kinds.count("text") == 5
        assert len(p.qa) == 11


def test_questions_name_only_in_text(world):
    fict, _ = make_world_people(0)
    names = {p.id: p.name for p in fict}
    for p in load_people(world, "Full_Set"):
        name = names[p.id]
        for q in p.questions:
            assert (name in q.question) == (q.modality == "text")
            assert q.question.endswith("?") and len(q.options) == 4 and q.answer in q.options
        assert (("What is the name of this person?", name)) in p.qa
    letters = [q.answer for p in load_people(world, "Retain_Set") for q in p.questions]
    assert set(letters) == {"A", "B", "C", "D"}  # the correct letter is not fixed


def test_splits(world):
    full = {p.id for p in load_people(world, "Full_Set")}
    previous: set[str] = set()
    for pct in (5, 10, 15):
        forget = {p.id for p in load_people(world, f"forget_{pct}")}
        retain = {p.id for p in load_people(world, f"retain_{100 - pct}")}
        assert len(forget) == 5 * pct and not forget & retain and forget | retain == full
        assert previous <= forget
        previous = forget


def load_test_images(root: Path) -> dict[str, tuple[bytes, ...]]:
    """Test_Set: person ID -> its other (transformed) face images, from the `images` list column."""
    out: dict[str, tuple[bytes, ...]] = {}
    for file in config_files(root, "Test_Set"):
        for i, row in enumerate(_read_rows(file, ("ID", "images"))):
            pid = _str(row["ID"], file, i, "ID")
            if pid in out:
                raise DataError(file, f"duplicate ID {pid!r}", row=i, field="ID")
            views = row["images"]
            if not isinstance(views, list) or not views:
                raise DataError(file, "expected a non-empty list of images", row=i, field="images")
            out[pid] = tuple(_image(v, file, i, f"images[{j}]") for j, v in enumerate(views))
    return out


def test_faces_distinct_and_views(world):
    people = load_people(world, "Full_Set") + load_people(world, "Retain_Set")
    assert len({p.image for p in people}) == len(people)
    assert decode_image_bytes(people[0].image).size == (32, 32)
    views = load_test_images(world)
    assert len(views) == 500
    canonical = {p.id: p.image for p in load_people(world, "Full_Set")}
    assert all(len(v) == 3 for v in views.values())
    changed = sum(view != canonical[pid] for pid, vs in views.items() for view in vs)
    assert changed > 0.9 * 1500  # augmented views are mostly different images


def test_byte_identical_for_same_seed(world, tmp_path):
    write_mllmu_world(tmp_path / "again", seed=0)
    write_mllmu_world(tmp_path / "other", seed=1)
    first, again, other = digests(world), digests(tmp_path / "again"), digests(tmp_path / "other")
    assert len(first) == 10
    assert first == again
    assert all(first[k] != other[k] for k in first)


def test_small_world_and_image_size(tmp_path):
    write_mllmu_world(tmp_path, seed=3, fictional=20, celebrities=7, image_size=64)
    assert count_mllmu(tmp_path)["people"] == 27
    assert decode_image_bytes(load_people(tmp_path, "Retain_Set")[0].image).size == (64, 64)
    assert len(load_people(tmp_path, "forget_5")) == 1


def test_a_world_cached_by_another_edition_of_the_generator_is_not_reused(monkeypatch):
    from repro.choices import load_profile
    from repro.data import world
    from repro.experiments.keys import world_key

    profile = load_profile("tiny", [])
    now = world_key(profile)
    assert world_key(load_profile("tiny", [])) == now  # stable for the same settings
    monkeypatch.setattr(world, "EDITION", world.EDITION - 1)
    assert world_key(profile) != now
