"""Mini-MMBench: counts, determinism, readable by the real loader, dev images never in train."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections import defaultdict

import pytest
from PIL import Image

from repro.data.mmbench import count_mmbench, load_mmbench
from repro.data.world_mmbench import DEV_NAME, TRAIN_NAME, write_mmbench_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("mmb")
    start = time.perf_counter()
    write_mmbench_world(out, seed=7)  # the defaults: 200 dev, 2000 train
    assert time.perf_counter() - start < 10
    return out


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_counts(world):
    dev, train = count_mmbench(world / DEV_NAME), count_mmbench(world / TRAIN_NAME)
    assert dev["questions"] == 200 and dev["rows"] > 200  # circular copies are extra rows
    assert train == {"questions": 2000, "rows": 2000, "categories": train["categories"]}
    assert train["categories"] >= 4 and dev["categories"] >= 4


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_mmbench_world(a, seed=3, dev=30, train=60)
    write_mmbench_world(b, seed=3, dev=30, train=60)
    write_mmbench_world(c, seed=4, dev=30, train=60)
    for name in (DEV_NAME, TRAIN_NAME):
        assert digest(a / name) == digest(b / name)
        assert digest(a / name) != digest(c / name)


def test_dev_images_never_in_train(world):
    dev = {q.image for q in load_mmbench(world / DEV_NAME)}
    train = {q.image for q in load_mmbench(world / TRAIN_NAME)}
    assert dev and train and not dev & train


def test_schema_features_are_exercised(world):
    dev = load_mmbench(world / DEV_NAME)
    train = load_mmbench(world / TRAIN_NAME)
    with (world / DEV_NAME).open(newline="") as f:
        raw = list(csv.DictReader(f, delimiter="\t"))
    assert any(len(r["image"]) <= 64 for r in raw if int(r["index"]) < 1_000_000)  # image reuse by index
    assert {len(q.options) for q in train} == {2, 3, 4}
    assert {q.answer for q in train} == {"A", "B", "C", "D"}
    assert any(q.hint for q in train) and any(not q.hint for q in train)
    assert all(q.l2_category for q in train)
    img = Image.open(io.BytesIO(dev[0].image))
    assert img.size == (32, 32) and img.format == "PNG"


def test_circular_copies_rotate_options(world):
    groups = defaultdict(list)
    for q in load_mmbench(world / DEV_NAME):
        groups[q.group].append(q)
    circ = [g for g in groups.values() if len(g) > 1]
    assert circ
    for g in circ:
        assert len(g) == len(g[0].options)  # one copy per rotation
        assert len({q.image for q in g}) == 1 and len({q.question for q in g}) == 1
        assert len({q.options[q.answer] for q in g}) == 1  # same correct text
        assert len({q.answer for q in g}) == len(g)  # at a different letter each time


def test_text_is_tokenizer_friendly(world):
    for q in load_mmbench(world / TRAIN_NAME):
        for text in (q.question, q.hint, *q.options.values()):
            assert "," not in text and "\t" not in text and "\n" not in text


def test_long_hints_span_mmbench_lengths_and_change_nothing_else(tmp_path):
    """long_hints gives the dev questions hints of several sentences up to MMBench dev-en's longest (about
    2,000 characters); every other cell, and the training file, are the same bytes as without them."""
    plain, long = tmp_path / "plain", tmp_path / "long"
    write_mmbench_world(plain, seed=5, dev=60, train=20)
    write_mmbench_world(long, seed=5, dev=60, train=20, long_hints=1.0)
    assert digest(plain / TRAIN_NAME) == digest(long / TRAIN_NAME)
    rows = {}
    for name in (plain, long):
        with (name / DEV_NAME).open(encoding="utf-8") as fh:
            rows[name] = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows[plain]) == len(rows[long])
    for a, b in zip(rows[plain], rows[long]):
        assert {k: v for k, v in a.items() if k != "hint"} == {k: v for k, v in b.items() if k != "hint"}
    hints = [len(r["hint"]) for r in rows[long]]
    assert min(hints) >= 100 and max(hints) >= 1500, (min(hints), max(hints))
    assert sum(h > 1000 for h in hints) >= 10, "long hints are drawn across the range"
    # the questions load as MMBench questions, hints included
    assert max(len(q.hint) for q in load_mmbench(long / DEV_NAME)) == max(hints)
