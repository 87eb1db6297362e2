"""The PULSE split rules (docs/design.md, "The protocol"): partitions, disjointness, behaviour-based selection."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.config import DataConfig, ModelConfig, Profile, SplitConfig
from repro.data.records import Person
from repro.data.splits import (
    build_fictional_splits,
    build_manifest,
    check_disjoint,
    data_hash,
    load_scores,
    select_celebrities,
    write_manifest,
)
from repro.errors import DataError, ReproError

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def person(i: int, config: str = "Full_Set", image: bytes | None = None) -> Person:
    """A fake record: distinct key and (unless given) distinct image bytes per index."""
    return Person(
        id=f"{i:03d}", config=config, image=image if image is not None else b"img-%d" % i, questions=()
    )


def people(n: int, config: str = "Full_Set") -> list[Person]:
    return [person(i, config) for i in range(n)]


@st.composite
def fictional_cases(draw):
    """A consistent (cfg, people, seed): shards in 1..5, shard size 1..10, a non-empty retain."""
    shards = draw(st.integers(1, 5))
    unlearn = shards * draw(st.integers(1, 10))
    pool = unlearn + draw(st.integers(1, 20))
    available = pool + draw(st.integers(0, 15))
    cfg = SplitConfig(fictional_pool=pool, unlearn=unlearn, shards=shards)
    return cfg, people(available), draw(seeds)


# --- fictional splits -------------------------------------------------------------------------


@settings(max_examples=200)
@given(fictional_cases())
def test_fictional_splits_partition(case):
    cfg, ppl, seed = case
    s = build_fictional_splits(ppl, cfg, seed)
    unlearn, retain, pool = set(s["unlearn"]), set(s["retain"]), set(s["pool"])
    assert len(s["pool"]) == len(pool) == cfg.fictional_pool
    assert pool <= {p.key for p in ppl}
    assert len(unlearn) == cfg.unlearn and len(retain) == cfg.fictional_pool - cfg.unlearn
    assert unlearn.isdisjoint(retain) and unlearn | retain == pool
    # Shards partition unlearn: disjoint, equal size, union = unlearn.
    assert len(s["shards"]) == cfg.shards
    assert {len(sh) for sh in s["shards"]} == {cfg.unlearn // cfg.shards}
    flat = [k for sh in s["shards"] for k in sh]
    assert len(flat) == len(set(flat)) and set(flat) == unlearn
    # Retain and unlearn share no image either.
    by_key = {p.key: p.image for p in ppl}
    assert {by_key[k] for k in unlearn}.isdisjoint(by_key[k] for k in retain)
    json.dumps(s)  # plain JSON-able data


@given(fictional_cases(), st.randoms(use_true_random=False))
def test_fictional_splits_deterministic_and_order_free(case, rnd):
    cfg, ppl, seed = case
    shuffled = list(ppl)
    rnd.shuffle(shuffled)
    assert build_fictional_splits(ppl, cfg, seed) == build_fictional_splits(shuffled, cfg, seed)


def test_fictional_splits_depend_on_seed():
    ppl, cfg = people(500), SplitConfig()
    a, b = build_fictional_splits(ppl, cfg, 0), build_fictional_splits(ppl, cfg, 1)
    assert a["pool"] != b["pool"] and a["unlearn"] != b["unlearn"] and a["shards"] != b["shards"]


def test_fictional_splits_reject_bad_config():
    with pytest.raises(ReproError, match="not divisible"):
        build_fictional_splits(people(200), SplitConfig(unlearn=50, shards=3), 0)
    with pytest.raises(ReproError, match="only 99"):
        build_fictional_splits(people(99), SplitConfig(), 0)
    with pytest.raises(ReproError, match="unlearn"):
        build_fictional_splits(people(200), SplitConfig(fictional_pool=50, unlearn=50), 0)
    with pytest.raises(ReproError, match="^splits: duplicate person keys among the fictional people$"):
        build_fictional_splits(people(150) + [person(3)], SplitConfig(), 0)
    for bad in (SplitConfig(shards=0), SplitConfig(unlearn=0)):  # each bound on its own
        with pytest.raises(ReproError, match="need 1 <= shards"):
            build_fictional_splits(people(200), bad, 0)


def test_fictional_splits_refuse_shared_image():
    # Every face identical: whatever the draw, some retain image equals an unlearn image.
    same = [person(i, image=b"same") for i in range(150)]
    with pytest.raises(ReproError, match="same image"):
        build_fictional_splits(same, SplitConfig(), 0)


# --- disjointness ------------------------------------------------------------------------------


@given(st.integers(1, 20), st.integers(1, 20), st.data())
def test_check_disjoint_catches_shared_key(n_u, n_r, data):
    ppl = people(n_u + n_r)
    unlearn, retain = ppl[:n_u], ppl[n_u:]
    check_disjoint(unlearn, retain)  # disjoint: no error
    shared = data.draw(st.sampled_from(unlearn))
    # Same key, different image: still the same person.
    clash = Person(id=shared.id, config=shared.config, image=b"other-bytes", questions=())
    with pytest.raises(ReproError, match=shared.key):
        check_disjoint(unlearn, retain + [clash])


@given(st.integers(1, 20), st.integers(1, 20), st.data())
def test_check_disjoint_catches_shared_image(n_u, n_r, data):
    ppl = people(n_u + n_r)
    unlearn, retain = ppl[:n_u], ppl[n_u:]
    shared = data.draw(st.sampled_from(unlearn))
    twin = person(10_000, image=shared.image)  # a new key, the same face
    with pytest.raises(ReproError, match="same image"):
        check_disjoint(unlearn, retain + [twin])


def test_check_disjoint_keys_differ_across_configs():
    # Fictional and celebrity IDs overlap in MLLMU-Bench; the key tells them apart.
    fictional, celebrity = person(1, "Full_Set"), person(1, "Retain_Set", image=b"celeb")
    assert fictional.id == celebrity.id and fictional.key != celebrity.key
    check_disjoint([fictional], [celebrity])  # two people: no error
    with pytest.raises(ReproError, match="Full_Set/001"):  # the same ID in the same config is one person
        check_disjoint([fictional], [person(1, "Full_Set", image=b"celeb")])


# --- celebrity selection ----------------------------------------------------------------------

# Scores on a coarse grid (10 questions = steps of 10%), so ties are common.
celebrity_scores = st.dictionaries(
    st.integers(0, 300).map(lambda i: f"Retain_Set/{i:03d}"),
    st.integers(0, 10).map(lambda x: x * 10.0),
    min_size=1,
    max_size=160,
)


@st.composite
def celebrity_cases(draw):
    unlearn, retain = draw(st.integers(1, 20)), draw(st.integers(1, 25))
    cfg = SplitConfig(
        celebrity_keep=unlearn + retain,
        celebrity_unlearn=unlearn,
        celebrity_retain=retain,
        min_accuracy=draw(st.sampled_from([0.0, 30.0, 55.0, 60.0, 100.0])),
    )
    return cfg, draw(celebrity_scores), draw(seeds)


@settings(max_examples=300)
@given(celebrity_cases())
def test_selection_ranks_keeps_and_splits(case):
    cfg, scores, seed = case
    cleared = sum(v >= cfg.min_accuracy for v in scores.values())
    if cleared < cfg.celebrity_keep:
        with pytest.raises(ReproError, match=f"only {cleared} of {len(scores)}"):
            select_celebrities(scores, cfg, seed)
        return
    s = select_celebrities(scores, cfg, seed)
    assert s["scores"] == scores and s["min_accuracy"] == cfg.min_accuracy
    ranked = s["ranked"]
    assert sorted(ranked) == sorted(scores)
    # Accuracy descending, ties by key ascending.
    for a, b in itertools.pairwise(ranked):
        assert scores[a] > scores[b] or (scores[a] == scores[b] and a < b)
    kept = s["kept"]
    assert kept == ranked[: cfg.celebrity_keep]
    assert all(scores[k] >= cfg.min_accuracy for k in kept)
    assert len(s["unlearn"]) == cfg.celebrity_unlearn and len(s["retain"]) == cfg.celebrity_retain
    assert set(s["unlearn"]).isdisjoint(s["retain"]) and set(s["unlearn"]) | set(s["retain"]) == set(kept)
    assert select_celebrities(dict(reversed(list(scores.items()))), cfg, seed) == s
    json.dumps(s)


def test_selection_tie_break_by_key():
    scores = {"Retain_Set/003": 80.0, "Retain_Set/001": 80.0, "Retain_Set/002": 90.0, "Retain_Set/000": 70.0}
    cfg = SplitConfig(celebrity_keep=2, celebrity_unlearn=1, celebrity_retain=1, min_accuracy=60.0)
    s = select_celebrities(scores, cfg, 0)
    assert s["ranked"] == ["Retain_Set/002", "Retain_Set/001", "Retain_Set/003", "Retain_Set/000"]
    assert s["kept"] == ["Retain_Set/002", "Retain_Set/001"]


def test_selection_never_keeps_below_minimum():
    scores = {f"Retain_Set/{i:03d}": 100.0 - i for i in range(50)}  # 44 clear 57.0
    cfg = SplitConfig(min_accuracy=57.0)
    with pytest.raises(ReproError, match="only 44 of 50"):
        select_celebrities(scores, cfg, 0)
    s = select_celebrities(scores, SplitConfig(min_accuracy=56.0), 0)
    assert min(scores[k] for k in s["kept"]) == 56.0


def test_selection_depends_on_seed():
    rnd = random.Random(7)
    scores = {f"Retain_Set/{i:03d}": float(rnd.choice(range(60, 101, 10))) for i in range(153)}
    a, b = select_celebrities(scores, SplitConfig(), 0), select_celebrities(scores, SplitConfig(), 1)
    assert a["kept"] == b["kept"] and a["unlearn"] != b["unlearn"]


def test_selection_rejects_inconsistent_sizes():
    scores = {f"Retain_Set/{i:03d}": 90.0 for i in range(60)}
    with pytest.raises(ReproError, match="must equal"):
        select_celebrities(
            scores, SplitConfig(celebrity_keep=45, celebrity_unlearn=20, celebrity_retain=20), 0
        )
    for unlearn, retain in ((0, 45), (45, 0)):  # sizes that add up but leave one split empty
        with pytest.raises(ReproError, match="both at least 1"):
            select_celebrities(
                scores, SplitConfig(celebrity_keep=45, celebrity_unlearn=unlearn, celebrity_retain=retain), 0
            )


# --- manifest, scores file, data hash ---------------------------------------------------------


def _profile(seed: int = 3) -> Profile:
    return Profile(
        name="t", seed=seed, data=DataConfig(mllmu="world", mmbench="world"), model=ModelConfig("tiny")
    )


def test_manifest_round_trip(tmp_path):
    scores = {f"Retain_Set/{i:03d}": 100.0 - (i % 30) for i in range(153)}
    m = build_manifest(_profile(), people(500), scores, "abc")
    assert (m["profile"], m["seed"], m["split_seed"], m["source_hash"]) == ("t", 3, 3, "abc")
    assert m["fictional"] == build_fictional_splits(people(500), SplitConfig(), 3)
    assert m["celebrities"] == select_celebrities(scores, SplitConfig(), 3)
    assert build_manifest(_profile(), people(500), None, "abc")["celebrities"] is None
    out = tmp_path / "sub" / "splits.json"
    write_manifest(m, out)
    text = out.read_text()
    assert json.loads(text) == m
    assert text == json.dumps(m, sort_keys=True, indent=2) + "\n"
    write_manifest({"x": 1}, out)  # replaces the old one, leaves no temp file
    assert json.loads(out.read_text()) == {"x": 1}
    assert [p.name for p in out.parent.iterdir()] == ["splits.json"]


def test_load_scores(tmp_path):
    f = tmp_path / "scores.json"
    f.write_text(json.dumps({"Retain_Set/001": 70, "Retain_Set/002": 35.5}))
    assert load_scores(f) == {"Retain_Set/001": 70.0, "Retain_Set/002": 35.5}
    for content, match in [
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"Retain_Set/009": "high"}', "Retain_Set/009.*number"),
        ('{"Retain_Set/009": true}', "Retain_Set/009.*number"),
        ('{"Retain_Set/009": 120}', r"Retain_Set/009.*\[0, 100\]"),
    ]:
        f.write_text(content)
        with pytest.raises(DataError, match=match) as exc:
            load_scores(f)
        assert str(f) in str(exc.value)
    with pytest.raises(DataError, match="cannot read") as exc:
        load_scores(tmp_path / "missing.json")
    assert str(tmp_path / "missing.json") in str(exc.value)
    f.write_text("[1, 2]")
    with pytest.raises(DataError, match="got list"):  # says what it found
        load_scores(f)


def test_load_scores_takes_the_whole_percent_range_and_nothing_beyond(tmp_path):
    f = tmp_path / "scores.json"
    f.write_text(json.dumps({"Retain_Set/001": 0, "Retain_Set/002": 0.5, "Retain_Set/003": 100}))
    assert load_scores(f) == {"Retain_Set/001": 0.0, "Retain_Set/002": 0.5, "Retain_Set/003": 100.0}
    for bad in (-0.5, 100.5, float("nan")):
        f.write_text(json.dumps({"Retain_Set/004": bad}))
        with pytest.raises(DataError, match="Retain_Set/004"):
            load_scores(f)


def test_data_hash(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "x.bin").write_bytes(b"hello")
        (root / "sub" / "y.bin").write_bytes(b"world")
    h = data_hash(a)
    assert h == data_hash(b) == data_hash(str(a))  # location-independent
    assert len(h) == 64
    (b / "sub" / "y.bin").write_bytes(b"World")
    assert data_hash(b) != h  # content matters
    (b / "sub" / "y.bin").write_bytes(b"world")
    (b / "sub" / "y.bin").rename(b / "sub" / "z.bin")
    assert data_hash(b) != h  # names matter
    assert data_hash([a, b]) != data_hash(a)
    with pytest.raises(ReproError, match="does not exist"):
        data_hash(tmp_path / "nope")
    # a single file hashes like a directory holding only it
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.bin").write_bytes(b"hello")
    assert data_hash(a / "x.bin") == data_hash(tmp_path / "c") != data_hash(b / "sub" / "z.bin")
