"""Mini-MMBench (docs/design.md, "The miniature"): simple visual questions over freshly drawn images.

Writes two VLMEvalKit TSVs in the real MMBench schema, so the real loader reads them:
`MMBench_DEV_EN.tsv` (held out, with a few circular copies) and `MMBench_TRAIN_EN.tsv` (pre-training).
`dev` and `train` count distinct questions; circular copies are extra dev rows.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import random
from pathlib import Path

from PIL import Image, ImageDraw

from repro.data.circular import CIRCULAR_STRIDE
from repro.data.images import encode_png
from repro.data.mmbench import TSV_NAME
from repro.data.records import LETTERS

DEV_NAME = TSV_NAME  # VLMEvalKit's name, which the loader looks for
TRAIN_NAME = "MMBench_TRAIN_EN.tsv"
COLUMNS = (
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
)

# Plain single words, so a word-level tokenizer sees a small, consistent vocabulary.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 20),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
PLURAL = {s: s + "s" for s in SHAPES}
POSITIONS = ("left", "right", "top", "bottom")
NUMBERS = ("one", "two", "three", "four")
HINTS = ("Look at the whole image.", "The image shows simple shapes.")
# Sentences of the long hints (`long_hints`): MMBench dev-en's hints run to several sentences, and its
# longest question bodies (hint, question and options) to about 2,150 characters (EvalScope's MMBench card:
# English prompts up to 2,395 characters with about 240 of its own wrapper). LONG_HINT_SENTENCES spans that.
HINT_SENTENCES = (
    "The picture was drawn for a test of visual reasoning.",
    "Every object in it has a single flat colour and no outline.",
    "Objects may be large or small, and they never overlap one another.",
    "The background is plain and carries no information about the answer.",
    "Positions are described as they appear to the viewer, not to the objects.",
    "A square is a shape with four equal sides and four right angles.",
    "A triangle is a shape with three straight sides.",
    "A circle is round, and every point of its edge is as far from its centre as any other.",
    "A diamond is a square turned so that one corner points up.",
    "Counting means giving the number of separate objects of the kind asked about.",
    "Colours are named by the closest of a few common colour words.",
    "When several objects are present, the question says which one it is about.",
)
LONG_HINT_SENTENCES = (2, 40)  # about 100 to 2,000 characters


def long_hint(rng: random.Random) -> str:
    """A hint of several sentences, of a length drawn across LONG_HINT_SENTENCES."""
    return " ".join(rng.choice(HINT_SENTENCES) for _ in range(rng.randint(*LONG_HINT_SENTENCES)))

# (category, l2-category) per question kind, in MMBench's naming style.
CATEGORY = {
    "shape": ("shape_recognition", "coarse_perception"),
    "colour": ("colour_recognition", "coarse_perception"),
    "size": ("size_recognition", "finegrained_perception"),
    "position": ("object_localization", "finegrained_perception"),
    "count": ("object_counting", "finegrained_perception"),
}

KIND_WEIGHT = {"shape": 1.0, "colour": 1.0, "size": 0.5, "position": 2.5, "count": 1.0}


def _draw(
    img: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple[int, int, int]
) -> None:
    if shape == "circle":
        img.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        img.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        img.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:  # diamond
        img.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)


def _jitter(rng: random.Random, rgb: tuple[int, int, int], amount: int = 20) -> tuple[int, int, int]:
    """A shade of the named colour: makes every image distinct without changing its answer."""
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _canvas(rng: random.Random, size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    bg = _jitter(rng, (235, 235, 235), 12)
    img = Image.new("RGB", (size, size), bg)
    return img, ImageDraw.Draw(img)


def _single_scene(
    rng: random.Random, size: int
) -> tuple[Image.Image, list[tuple[str, str, tuple[str, ...]]]]:
    """One shape; returns the image and (kind, answer, vocabulary) for every question it can answer."""
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    img, draw = _canvas(rng, size)
    big = rng.random() < 0.4
    if big:  # a big shape fills the middle: it has no clear position
        r = size * rng.uniform(0.33, 0.40)
        cx, cy = size / 2 + rng.uniform(-1.5, 1.5), size / 2 + rng.uniform(-1.5, 1.5)
        where = None
    else:
        r = size * rng.uniform(0.11, 0.15)
        where = rng.choice(POSITIONS)
        off = size * 0.28  # distance of the shape's centre from the image centre
        dx, dy = {"left": (-off, 0), "right": (off, 0), "top": (0, -off), "bottom": (0, off)}[where]
        cx = size / 2 + dx + rng.uniform(-1.5, 1.5)
        cy = size / 2 + dy + rng.uniform(-1.5, 1.5)
    _draw(draw, shape, cx, cy, r, _jitter(rng, COLOURS[colour]))
    facts = [
        ("shape", shape, SHAPES),
        ("colour", colour, tuple(COLOURS)),
        ("size", "big" if big else "small", ("big", "small")),
    ]
    if where is not None:
        facts.append(("position", where, POSITIONS))
    return img, facts


def _count_scene(
    rng: random.Random, size: int
) -> tuple[Image.Image, list[tuple[str, str, tuple[str, ...]]], str]:
    """1-4 copies of one shape in distinct quadrants, maybe with one shape of another kind."""
    shape = rng.choice(SHAPES)
    n = rng.randint(1, 4)
    others = rng.randint(0, 1) if n < 4 else 0
    cells = rng.sample(range(4), n + others)
    img, draw = _canvas(rng, size)
    other = rng.choice([s for s in SHAPES if s != shape])
    for j, cell in enumerate(cells):
        cx = size * (0.25 + 0.5 * (cell % 2)) + rng.uniform(-1.5, 1.5)
        cy = size * (0.25 + 0.5 * (cell // 2)) + rng.uniform(-1.5, 1.5)
        kind = shape if j < n else other
        _draw(
            draw,
            kind,
            cx,
            cy,
            size * rng.uniform(0.12, 0.16),
            _jitter(rng, COLOURS[rng.choice(list(COLOURS))]),
        )
    return img, [("count", NUMBERS[n - 1], NUMBERS)], shape


def _question(kind: str, shape: str) -> str:
    return {
        "shape": "What shape is in the image?",
        "colour": "What colour is the shape?",
        "size": "Is the shape big or small?",
        "position": f"Where is the {shape}?",
        "count": f"How many {PLURAL[shape]} are there?",
    }[kind]


def _options(rng: random.Random, answer: str, vocab: tuple[str, ...]) -> list[str]:
    """2-4 option texts with the answer at a seeded-random place."""
    k = rng.randint(2, min(4, len(vocab)))
    opts = [answer] + rng.sample([v for v in vocab if v != answer], k - 1)
    rng.shuffle(opts)
    return opts


def _rows(
    rng: random.Random, n_questions: int, size: int, split: str, avoid: set[str], seen: set[str]
) -> list[dict]:
    """`n_questions` rows; a scene's later questions reuse its image by index, as MMBench does."""
    rows: list[dict] = []
    while len(rows) < n_questions:
        if rng.random() < 0.25:
            img, facts, shape = _count_scene(rng, size)
        else:
            img, facts = _single_scene(rng, size)
            shape = next(a for k, a, _ in facts if k == "shape")
        png = encode_png(img)
        digest = hashlib.sha256(png).hexdigest()
        if digest in avoid:  # keep dev images out of train, even by chance
            continue
        seen.add(digest)
        # Weighted shuffle (Efraimidis-Spirakis): position is possible in fewer scenes and the
        # two-option size question is easy, so weight them to keep question kinds roughly balanced.
        facts.sort(key=lambda f: -(rng.random() ** (1 / KIND_WEIGHT[f[0]])))
        first = len(rows)
        for kind, answer, vocab in facts[: rng.randint(1, 2)]:
            if len(rows) == n_questions:
                break
            opts = _options(rng, answer, vocab)
            cat, l2 = CATEGORY[kind]
            rows.append(
                {
                    "index": len(rows),
                    "question": _question(kind, shape),
                    "hint": rng.choice(HINTS) if rng.random() < 0.2 else "",
                    "options": opts,
                    "answer": LETTERS[opts.index(answer)],
                    "category": cat,
                    "l2-category": l2,
                    "split": split,
                    "image": base64.b64encode(png).decode("ascii") if len(rows) == first else str(first),
                }
            )
    return rows


def _circular(rng: random.Random, rows: list[dict], share: float = 0.05) -> list[dict]:
    """Circular copies (index + k * 1,000,000, options rotated by k) of a few questions."""
    picked = sorted(rng.sample(range(len(rows)), max(1, round(share * len(rows))))) if rows else []
    copies = []
    for i in picked:
        row = rows[i]
        opts, m = row["options"], len(row["options"])
        true = opts[LETTERS.index(row["answer"])]
        # Point at the row that holds the image itself: references are one level deep (VLMEvalKit).
        ref = row["image"] if len(row["image"]) <= 64 else str(row["index"])
        for k in range(1, m):
            rot = opts[k:] + opts[:k]
            copies.append(
                {
                    **row,
                    "index": row["index"] + k * CIRCULAR_STRIDE,
                    "options": rot,
                    "answer": LETTERS[rot.index(true)],
                    "image": ref,
                }
            )
    return copies


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            opts = r["options"] + [""] * (4 - len(r["options"]))  # unused C/D stay empty, as in MMBench
            w.writerow(
                [
                    r["index"],
                    r["question"],
                    r["hint"],
                    *opts,
                    r["answer"],
                    r["category"],
                    r["l2-category"],
                    r["split"],
                    r["image"],
                ]
            )


def write_mmbench_world(
    out_dir: Path, seed: int, dev: int = 200, train: int = 2000, image_size: int = 32, long_hints: float = 0.0
) -> None:
    """Write `out_dir/MMBench_DEV_EN.tsv` and `out_dir/MMBench_TRAIN_EN.tsv`; same seed, same bytes. A share
    `long_hints` of the dev questions carries a hint of several sentences (drawn from a stream of its own,
    so the rest of the world is the same bytes with or without them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Independent streams: dev is drawn without knowing train's draws, and vice versa.
    train_seen: set[str] = set()
    train_rows = _rows(random.Random(f"mmbench-train-{seed}"), train, image_size, "train", set(), train_seen)
    dev_rng = random.Random(f"mmbench-dev-{seed}")
    dev_rows = _rows(dev_rng, dev, image_size, "dev", train_seen, set())
    hint_rng = random.Random(f"mmbench-long-hints-{seed}")
    for row in dev_rows:
        if hint_rng.random() < long_hints:
            row["hint"] = long_hint(hint_rng)
    _write(out_dir / DEV_NAME, dev_rows + _circular(dev_rng, dev_rows))
    _write(out_dir / TRAIN_NAME, train_rows)
