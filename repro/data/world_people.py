"""The miniature world's people (docs/design.md, "The miniature"), written in the real MLLMU-Bench layout.

`write_mllmu_world` writes `<Config>/train-00000-of-00001.parquet` for every hub config, with the hub's
column names and types, so `repro.data.mllmu.load_people` reads it through the same code as the real data.
Text is kept to a small, consistent word vocabulary (a word-level tokenizer is built from it later): no
punctuation except a final '?' on questions, attribute values are single words.

Differences from the hub's content (not its layout), on purpose:
- ft_Data holds QA pairs for every person, celebrities included, so the tiny profile can pre-train
  celebrity knowledge from `Person.qa`; the experiments choose whose pairs they train on.
- Test_Set holds the fictional people (as on the hub) with other augmented views of their faces and the
  same questions (the hub paraphrases them).

Lengths: MLLMU-Bench publishes no statistics of its text lengths (neither the paper, the dataset card nor
the repository). Its repository's demo figure (asset/demo.jpg) shows what they are like: one-line questions
("Where was the person in the image born?") and one-sentence answers ("In Hanoi, Vietnam."); its eval.py
writes four options "A: text". The people here are of that kind, shorter still (single-word values). The
long texts a run meets are MMBench's hints, which `world.long_hints` spans (repro/data/world_mmbench.py).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from repro.data.images import encode_png
from repro.data.records import LETTERS

SHARD = "train-00000-of-00001.parquet"
SPLITS = (5, 10, 15)  # forget_5/10/15 and retain_95/90/85, as on the hub
TEST_VIEWS = 3

# ---------------------------------------------------------------- vocabularies (single words)

# fmt: off

FIRST_A = ("Tom", "Vel", "Ar", "Bren", "Cal", "Dor", "El", "Fen", "Gar", "Hal",
           "Is", "Jor", "Kel", "Lor", "Mar", "Nor", "Os", "Per", "Quin", "Ros")
FIRST_B = ("ar", "in", "en", "on", "ia", "el", "is", "an", "or", "us")
LAST_A = ("Vel", "Mor", "Tas", "Bran", "Cor", "Dun", "Fal", "Gor", "Hew", "Kin",
          "Lan", "Mir", "Nash", "Pol", "Ren", "Sal", "Tor", "Wen", "Yar", "Zel")
LAST_B = ("in", "ek", "ow", "ar", "et", "um", "ix", "ard", "ley", "ton")

VOCAB: dict[str, tuple[str, ...]] = {
    "occupation": ("baker", "farmer", "teacher", "doctor", "pilot", "painter", "singer", "writer",
                   "sailor", "builder", "chef", "dancer", "lawyer", "nurse", "miner", "tailor"),
    "residence": ("Arlen", "Brisk", "Corvo", "Delmar", "Elsin", "Farrow", "Galen", "Hollis",
                  "Irvo", "Kelso", "Lunder", "Morra", "Nessel", "Oakdale", "Pellam", "Quarry"),
    "birthplace": ("Ashby", "Belmora", "Cindra", "Dunhold", "Eastwick", "Fenmoor", "Greystone", "Highvale",
                   "Ivywood", "Juniper", "Kingsreach", "Larkfield", "Millbrook", "Northam", "Orwell", "Pinecrest"),
    "education": ("history", "physics", "music", "law", "medicine", "biology", "art", "economics",
                  "chemistry", "geology", "poetry", "astronomy", "design", "botany", "drama", "mathematics"),
    "hobby": ("chess", "fishing", "hiking", "gardening", "knitting", "cycling", "swimming", "pottery",
              "archery", "skating", "rowing", "climbing", "juggling", "birdwatching", "surfing", "origami"),
}
# (question about the face, question about the name); the face form never contains the name.
QUESTIONS = {
    "occupation": ("What is the occupation of the person in the image?", "What is the occupation of {name}?"),
    "residence": ("Where does the person in the image live?", "Where does {name} live?"),
    "birthplace": ("Where was the person in the image born?", "Where was {name} born?"),
    "education": ("What did the person in the image study?", "What did {name} study?"),
    "hobby": ("What is the hobby of the person in the image?", "What is the hobby of {name}?"),
}
FT_FACE = {  # ft_Data's "this person" form
    "occupation": "What is the occupation of this person?",
    "residence": "Where does this person live?",
    "birthplace": "Where was this person born?",
    "education": "What did this person study?",
    "hobby": "What is the hobby of this person?",
}

# ---------------------------------------------------------------- faces

BACKGROUNDS = ((200, 220, 255), (255, 230, 200), (210, 255, 210), (240, 240, 240), (255, 210, 230),
               (220, 200, 255), (255, 255, 190), (180, 230, 230), (120, 140, 170), (170, 120, 120))
SKINS = ((255, 224, 189), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30))
HAIRS = ((20, 20, 20), (90, 50, 20), (160, 100, 40), (230, 200, 110), (200, 60, 30), (150, 150, 150),
         (40, 60, 160), (120, 30, 120))
EYES = ((40, 90, 200), (60, 140, 60), (100, 60, 30), (20, 20, 20), (130, 130, 140))
ACCESSORY_COLOURS = ((30, 30, 30), (200, 30, 30), (30, 120, 200), (230, 190, 30))
# fmt: on


@dataclass(frozen=True)
class Face:
    """One identity's drawing parameters (indices into the palettes above)."""

    background: int
    skin: int
    hair: int
    hair_style: int  # 0 bald, 1 short, 2 long, 3 spiky
    eyes: int
    shape: int  # 0 round, 1 tall, 2 wide
    accessory: int  # 0 none, 1 glasses, 2 hat, 3 earrings
    accessory_colour: int
    mouth: int  # 0 smile, 1 flat, 2 open


def random_face(rng: random.Random) -> Face:
    return Face(
        rng.randrange(len(BACKGROUNDS)),
        rng.randrange(len(SKINS)),
        rng.randrange(len(HAIRS)),
        rng.randrange(4),
        rng.randrange(len(EYES)),
        rng.randrange(3),
        rng.randrange(4),
        rng.randrange(len(ACCESSORY_COLOURS)),
        rng.randrange(3),
    )


def render_face(face: Face, size: int = 32, dx: int = 0, dy: int = 0, brightness: float = 1.0) -> Image.Image:
    """Draw `face` on a size x size canvas, shifted by (dx, dy) pixels (in 32-pixel units) and brightened."""
    k = size / 32

    def box(x0, y0, x1, y1):  # 32-grid coordinates -> canvas, with the view's shift
        return [*pt(x0, y0), *pt(x1, y1)]

    def pt(x, y):
        return (round((x + dx) * k), round((y + dy) * k))

    img = Image.new("RGB", (size, size), BACKGROUNDS[face.background])
    d = ImageDraw.Draw(img)
    hair, skin, acc = HAIRS[face.hair], SKINS[face.skin], ACCESSORY_COLOURS[face.accessory_colour]
    x0, y0, x1, y1 = ((8, 7, 24, 27), (9, 5, 23, 28), (6, 8, 26, 26))[face.shape]
    if face.hair_style == 2:  # long hair falls behind the face
        d.rectangle(box(x0 - 2, y0 + 3, x1 + 2, y1 + 1), fill=hair)
    d.ellipse(box(x0, y0, x1, y1), fill=skin)
    if face.hair_style in (1, 2):
        d.chord(box(x0, y0 - 1, x1, y0 + 10), 180, 360, fill=hair)
    elif face.hair_style == 3:
        for sx in range(x0, x1 - 2, 3):
            d.polygon([pt(sx, y0 + 3), pt(sx + 3, y0 + 3), pt(sx + 1.5, y0 - 3)], fill=hair)
    for ex in (12, 18):  # eyes: white, then the iris
        d.rectangle(box(ex, 14, ex + 2, 16), fill=(255, 255, 255))
        d.rectangle(box(ex + 1, 14, ex + 2, 15), fill=EYES[face.eyes])
    if face.mouth == 0:
        d.arc(box(12, 18, 20, 23), 20, 160, fill=(150, 40, 40), width=max(1, round(k)))
    elif face.mouth == 1:
        d.line(box(13, 22, 19, 22), fill=(150, 40, 40), width=max(1, round(k)))
    else:
        d.ellipse(box(14, 20, 18, 24), fill=(120, 20, 20))
    if face.accessory == 1:  # glasses
        d.rectangle(box(11, 13, 15, 17), outline=acc)
        d.rectangle(box(17, 13, 21, 17), outline=acc)
        d.line(box(15, 15, 17, 15), fill=acc)
    elif face.accessory == 2:  # hat
        d.rectangle(box(x0 - 1, y0 - 1, x1 + 1, y0 + 2), fill=acc)
        d.rectangle(box(x0 + 3, y0 - 5, x1 - 3, y0), fill=acc)
    elif face.accessory == 3:  # earrings
        d.ellipse(box(x0 - 1, 19, x0 + 1, 21), fill=acc)
        d.ellipse(box(x1 - 1, 19, x1 + 1, 21), fill=acc)
    if brightness != 1.0:
        arr = np.asarray(img, dtype=np.float32) * brightness
        img = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "RGB")
    return img


def augmented_view(face: Face, size: int, rng: random.Random) -> Image.Image:
    """Another view of the same face: a small shift and a brightness jitter."""
    return render_face(
        face, size, dx=rng.randint(-2, 2), dy=rng.randint(-2, 2), brightness=round(rng.uniform(0.85, 1.15), 2)
    )


# ---------------------------------------------------------------- people


@dataclass(frozen=True)
class WorldPerson:
    id: str
    name: str
    attributes: dict[str, str]
    face: Face
    image: bytes  # PNG of the canonical view


def _people(seed: int, n: int, size: int) -> list[tuple[str, dict[str, str], Face, bytes]]:
    """n people with distinct names and distinct canonical face images."""
    rng = random.Random(f"pulse-world-people-{seed}")
    names: set[str] = set()
    images: set[str] = set()
    out = []
    if n > len(FIRST_A) * len(FIRST_B) * len(LAST_A) * len(LAST_B):
        raise ValueError(f"cannot generate {n} distinct names")
    while len(out) < n:
        name = (rng.choice(FIRST_A) + rng.choice(FIRST_B)) + " " + (rng.choice(LAST_A) + rng.choice(LAST_B))
        if name in names:
            continue
        for _ in range(1000):  # resample until the drawing differs from every other face
            face = random_face(rng)
            png = encode_png(render_face(face, size))
            digest = hashlib.sha256(png).hexdigest()
            if digest not in images:
                break
        else:
            raise ValueError(f"cannot draw {n} distinct faces at {size}x{size}")
        names.add(name)
        images.add(digest)
        attributes = {attr: rng.choice(values) for attr, values in VOCAB.items()}
        out.append((name, attributes, face, png))
    return out


def _mcq(question: str, attr: str, value: str, rng: random.Random) -> dict:
    distractors = rng.sample([v for v in VOCAB[attr] if v != value], 3)
    at = rng.randrange(4)
    texts = distractors[:at] + [value] + distractors[at:]
    return {"Question": question, "Options": dict(zip(LETTERS, texts)), "Correct_Answer": LETTERS[at]}


def _row(p: WorldPerson, rng: random.Random) -> dict:
    """One Full_Set / Retain_Set row in the hub's columns."""
    name, a = p.name, p.attributes
    image_q = [_mcq(QUESTIONS[attr][0], attr, a[attr], rng) for attr in VOCAB]
    text_q = [_mcq(QUESTIONS[attr][1].format(name=name), attr, a[attr], rng) for attr in VOCAB]
    bio = (
        f"{name} was born in {a['birthplace']} and lives in {a['residence']} and works as a {a['occupation']} "
        f"and studied {a['education']} and likes {a['hobby']}"
    )
    # MLLMU-Bench's generation and fill-in-the-blank tasks, asked in words the miniature's model was trained on
    # (it cannot carry knowledge across unseen phrasings); the ground truths are sentences as the benchmark's.
    gen = [
        {
            "Question": QUESTIONS["occupation"][0],
            "Ground_Truth": f"The person works as a {a['occupation']}",
            "Type": "Image_Textual",
        },
        {
            "Question": QUESTIONS["residence"][1].format(name=name),
            "Ground_Truth": f"{name} lives in {a['residence']}",
            "Type": "Pure_Text",
        },
    ]
    mask = [
        {
            "Question": "The occupation of the person in the image is __",
            "Ground_Truth": a["occupation"],
            "Type": "Image_Textual",
        },
        {"Question": f"{name} was born in __", "Ground_Truth": a["birthplace"], "Type": "Pure_Text"},
    ]
    return {
        "image": {"bytes": p.image, "path": f"{p.id}.png"},
        "ID": p.id,
        "Directory": p.id,
        "biography": bio,
        "question": QUESTIONS["occupation"][1].format(name=name),
        "answer": a["occupation"],
        "Classification_Task": {"Image_Textual_Questions": image_q, "Pure_Text_Questions": text_q},
        "Generation_Task": gen,
        "Mask_Task": mask,
    }


def world_qa(p: WorldPerson) -> list[dict[str, str]]:
    """ft_Data pairs: the name from the face, then each attribute in the face and the name form."""
    qa = [{"Question": "What is the name of this person?", "Answer": p.name}]
    for attr in VOCAB:
        qa.append({"Question": FT_FACE[attr], "Answer": p.attributes[attr]})
        qa.append({"Question": QUESTIONS[attr][1].format(name=p.name), "Answer": p.attributes[attr]})
    return qa


# ---------------------------------------------------------------- parquet schemas (the hub's types)

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_MCQ = pa.struct(
    [
        ("Question", pa.string()),
        ("Options", pa.struct([(x, pa.string()) for x in LETTERS])),
        ("Correct_Answer", pa.string()),
    ]
)
_TASK = pa.list_(pa.struct([("Question", pa.string()), ("Ground_Truth", pa.string()), ("Type", pa.string())]))
_COMMON = [
    ("ID", pa.string()),
    ("Directory", pa.string()),
    ("biography", pa.string()),
    ("question", pa.string()),
    ("answer", pa.string()),
    (
        "Classification_Task",
        pa.struct([("Image_Textual_Questions", pa.list_(_MCQ)), ("Pure_Text_Questions", pa.list_(_MCQ))]),
    ),
    ("Generation_Task", _TASK),
    ("Mask_Task", _TASK),
]
PEOPLE_SCHEMA = pa.schema([("image", _IMAGE), *_COMMON])
TEST_SCHEMA = pa.schema([("images", pa.list_(_IMAGE)), *_COMMON])
FT_SCHEMA = pa.schema([("image", _IMAGE), ("metadata", pa.string())])


def _write(out_dir: Path, config: str, rows: list[dict], schema: pa.Schema) -> None:
    cdir = out_dir / config
    cdir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    # zstd is deterministic; pyarrow writes no timestamps, so one seed gives byte-identical files.
    pq.write_table(table, cdir / SHARD, compression="zstd")


def make_world_people(
    seed: int, fictional: int = 500, celebrities: int = 153, image_size: int = 32
) -> tuple[list[WorldPerson], list[WorldPerson]]:
    """(fictional, celebrities): generated people; IDs "001".. within each group, as on the hub."""
    raw = _people(seed, fictional + celebrities, image_size)
    width = max(3, len(str(max(fictional, celebrities, 1))))

    def group(items):
        return [WorldPerson(str(i + 1).zfill(width), n, a, f, img) for i, (n, a, f, img) in enumerate(items)]

    return group(raw[:fictional]), group(raw[fictional:])


def write_mllmu_world(
    out_dir: Path, seed: int, fictional: int = 500, celebrities: int = 153, image_size: int = 32
) -> None:
    """Write the miniature world's people as an MLLMU-Bench mirror under `out_dir`."""
    out_dir = Path(out_dir)
    fict, celeb = make_world_people(seed, fictional, celebrities, image_size)
    rng = random.Random(f"pulse-world-mcq-{seed}")
    full_rows = [_row(p, rng) for p in fict]
    retain_rows = [_row(p, rng) for p in celeb]
    _write(out_dir, "Full_Set", full_rows, PEOPLE_SCHEMA)
    _write(out_dir, "Retain_Set", retain_rows, PEOPLE_SCHEMA)

    # forget_x: x% of Full_Set; nested (one seeded order, prefixes), rows kept in Full_Set order.
    order = list(range(len(fict)))
    random.Random(f"pulse-world-splits-{seed}").shuffle(order)
    for pct in SPLITS:
        forget = set(order[: round(len(fict) * pct / 100)])
        _write(out_dir, f"forget_{pct}", [r for i, r in enumerate(full_rows) if i in forget], PEOPLE_SCHEMA)
        _write(
            out_dir,
            f"retain_{100 - pct}",
            [r for i, r in enumerate(full_rows) if i not in forget],
            PEOPLE_SCHEMA,
        )

    view_rng = random.Random(f"pulse-world-views-{seed}")
    test_rows = []
    for p, row in zip(fict, full_rows):
        views = [
            {"bytes": encode_png(augmented_view(p.face, image_size, view_rng)), "path": f"{p.id}_pose{v}.png"}
            for v in range(TEST_VIEWS)
        ]
        test_rows.append({"images": views, **{k: v for k, v in row.items() if k != "image"}})
    _write(out_dir, "Test_Set", test_rows, TEST_SCHEMA)

    ft_rows = [
        {"image": {"bytes": p.image, "path": f"{p.id}.png"}, "metadata": json.dumps(world_qa(p))}
        for p in (*fict, *celeb)
    ]
    _write(out_dir, "ft_Data", ft_rows, FT_SCHEMA)
