"""Captioned scenes: 1-3 real Fashion-MNIST photos on a black canvas, 5 captions each.

The offline stand-in for COCO captions. Each scene places one, two or three Fashion-MNIST
items (real photos) on a ``CANVAS`` x ``CANVAS`` canvas, each item tinted with a colour,
scaled and positioned at random. A small grammar writes 5 *different* reference captions
per scene, with synonyms ("sneaker" / "trainer"), word orders ("a red bag to the left of a
blue coat" / "a blue coat to the right of a red bag"), counts ("two items: ...") and
spatial relations.

Why it cannot be solved by colour alone (the shortcut of docs/methods.md §10):
colours are drawn independently of items, so a caption is only right if the model also
recognises *which* garment it sees; multi-item scenes add counts and order.

Train and val scenes take their photos from Fashion-MNIST's train split (disjoint
halves), test scenes from its test split: test photos are never seen in training.

On disk the set uses the COCO Karpathy format (``dataset_coco.json`` + PNGs), so the
loader and evaluation code for COCO serve our scenes unchanged.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..paths import data_dir
from .base import CaptionExample
from .coco import load_coco_karpathy
from .fashion_mnist import load_fashion_mnist

CANVAS = 64
# colour name -> RGB tint; drawn independently of the item (no colour-class correlation)
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (60, 100, 250),
           "yellow": (240, 220, 40), "purple": (170, 70, 230), "orange": (250, 140, 30),
           "white": (235, 235, 235)}
# class index -> synonyms (the first is the most frequent in captions). The t-shirt's synonym is
# "tee", not Fashion-MNIST's "top": "top" is a position word here ("at the top", "on top and ...",
# "in the top left corner"), and a word that is both a garment and a place cannot be read back.
NOUNS = [["t-shirt", "tee"], ["trouser"], ["pullover", "sweater"], ["dress"],
         ["coat", "jacket"], ["sandal"], ["shirt", "blouse"], ["sneaker", "trainer"],
         ["bag", "handbag"], ["ankle boot", "boot"]]
PLURAL = {"dress": "dresses"}
SIZES = {1: (26, 38), 2: (22, 30), 3: (18, 21)}  # item side in pixels, by number of items
N_ITEMS_P = (0.4, 0.35, 0.25)
DEFAULT_SIZES = {"train": 12000, "val": 500, "test": 1000}
SMOKE_SIZES = {"train": 256, "val": 32, "test": 64}


@dataclass
class Item:
    label: int
    colour: str
    size: int
    cx: int  # centre, pixels
    cy: int


# ---------------------------------------------------------------- rendering

def tint(photo: np.ndarray, rgb, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A 28x28 grey photo -> ``size`` x ``size`` x 3 float image tinted with ``rgb`` (jittered a little)."""
    from PIL import Image

    grey = np.asarray(Image.fromarray(photo).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    rgb = np.asarray(rgb, dtype=np.float32)
    if rng is not None:
        rgb = np.clip(rgb + rng.integers(-15, 16, size=3), 0, 255)
    return grey[..., None] * rgb[None, None, :]


def render(photos: list[np.ndarray], items: list[Item], canvas: int = CANVAS,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Items pasted on a black canvas (overlaps keep the brighter pixel): uint8 [canvas, canvas, 3]."""
    img = np.zeros((canvas, canvas, 3), dtype=np.float32)
    for photo, it in zip(photos, items):
        patch = tint(photo, COLOURS[it.colour], it.size, rng)
        x0, y0 = it.cx - it.size // 2, it.cy - it.size // 2
        region = img[y0:y0 + it.size, x0:x0 + it.size]
        np.maximum(region, patch[:region.shape[0], :region.shape[1]], out=region)
    return np.clip(img, 0, 255).astype(np.uint8)


def _clip_centre(c: float, size: int, canvas: int) -> int:
    return int(np.clip(round(c), size // 2, canvas - size + size // 2))


def sample_layout(n: int, labels: list[int], rng: np.random.Generator, canvas: int = CANVAS
                  ) -> tuple[list[Item], str]:
    """Sizes, colours and positions of ``n`` items; returns the items (in reading order) and the arrangement."""
    lo, hi = SIZES[n]
    sizes = [int(rng.integers(lo, hi + 1)) for _ in range(n)]
    colours = [str(rng.choice(list(COLOURS))) for _ in range(n)]
    third = canvas / 3
    if n == 1:
        cx, cy = (third * (rng.integers(0, 3) + 0.5) + rng.integers(-3, 4) for _ in range(2))
        arrangement = "single"
        centres = [(cx, cy)]
    elif n == 2 and rng.random() < 0.5:
        arrangement = "vertical"  # item 0 above item 1
        centres = [(canvas / 2 + rng.integers(-12, 13), canvas * (0.25 + 0.5 * i) + rng.integers(-2, 3))
                   for i in range(2)]
    else:
        arrangement = "horizontal"  # items left to right
        centres = [(canvas * (i + 0.5) / n + rng.integers(-2, 3), canvas / 2 + rng.integers(-12, 13))
                   for i in range(n)]
    items = [Item(lab, col, s, _clip_centre(cx, s, canvas), _clip_centre(cy, s, canvas))
             for lab, col, s, (cx, cy) in zip(labels, colours, sizes, centres)]
    return items, arrangement


# ---------------------------------------------------------------- the caption grammar

def _a(phrase: str) -> str:
    """The indefinite article for ``phrase``: "an orange bag", "a red bag"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun(label: int, rng: np.random.Generator) -> str:
    syn = NOUNS[label]
    return syn[0] if len(syn) == 1 or rng.random() < 0.6 else syn[1]


def _position(it: Item, canvas: int = CANVAS) -> str:
    col = 0 if it.cx < canvas * 0.4 else 2 if it.cx > canvas * 0.6 else 1
    row = 0 if it.cy < canvas * 0.4 else 2 if it.cy > canvas * 0.6 else 1
    return [["in the top left corner", "at the top", "in the top right corner"],
            ["on the left", "in the center", "on the right"],
            ["in the bottom left corner", "at the bottom", "in the bottom right corner"]][row][col]


def _single(items, rng):
    it = items[0]
    c, n, p = it.colour, _noun(it.label, rng), _position(it)
    z = "small" if it.size <= 31 else "large"
    return [f"{_a(f'{c} {n}')} {p}", f"a {z} {c} {n}", f"there is a {z} {c} {n} {p}",
            f"one {c} {n} on a black background", f"{_a(n)} in {c} {p}", _a(f"{c} {n}"),
            f"a picture of a {z} {c} {n}"]


def _pair(items, arrangement, rng):
    a, b = (_a(f"{it.colour} {_noun(it.label, rng)}") for it in items)
    out = [f"two items: {a} and {b}", f"{a} and {b}"]
    if arrangement == "vertical":
        out += [f"{a} above {b}", f"{b} below {a}", f"{a} on top and {b} at the bottom"]
    else:
        out += [f"{a} to the left of {b}", f"{b} to the right of {a}",
                f"{a} on the left and {b} on the right", f"{a} next to {b}"]
    if items[0].label == items[1].label:
        noun = NOUNS[items[0].label][0]
        out.append(f"two {PLURAL.get(noun, noun + 's')}, one {items[0].colour} and one {items[1].colour}")
    return out


def _triple(items, rng):
    a, b, c = (_a(f"{it.colour} {_noun(it.label, rng)}") for it in items)
    return [f"{a}, {b} and {c}", f"three items: {a}, {b} and {c}",
            f"from left to right: {a}, {b} and {c}", f"three things in a row: {a}, {b} and {c}",
            f"{b} between {a} and {c}"]


def captions_for(items: list[Item], arrangement: str, rng: np.random.Generator, k: int = 5) -> list[str]:
    """``k`` different captions of one scene, drawn from the grammar without repetition."""
    for _ in range(20):  # synonyms are drawn per template, so retry in the rare case of too few distinct ones
        if len(items) == 1:
            cands = _single(items, rng)
        elif len(items) == 2:
            cands = _pair(items, arrangement, rng)
        else:
            cands = _triple(items, rng)
        cands = list(dict.fromkeys(cands))
        if len(cands) >= k:
            order = rng.permutation(len(cands))[:k]
            return [cands[i] for i in order]
    raise RuntimeError("grammar produced fewer than k distinct captions")  # pragma: no cover


def grammar_words() -> list[str]:
    """Every word (BERT basic tokenisation: lower case, punctuation split off) the grammar can write:
    the tiny models' vocabulary (``vlmid.models.tokenizer``), so changing it changes their embeddings.

    Besides the words of the captions (and of the zero-shot prompts, ``vlmid.data.zeroshot``) it holds
    a fixed few that no caption writes: "photo", "item", "." and the plurals of the second synonyms
    ("tees", "sweaters", ...; only the first synonym is ever plural). tests/test_data_scenes.py pins
    both directions."""
    text = " ".join(["two items: three things in a row from left to right between next to and",
                     "a picture of there is one on black background above below top at the bottom",
                     "on the left right center in corner small large two one dresses",
                     "photo of item an , . : -", " ".join(COLOURS)]
                    + [" ".join(s) + " " + " ".join(PLURAL.get(w, w + "s") for w in s) for s in NOUNS])
    return sorted(set(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())))


# ---------------------------------------------------------------- the data set

def scenes_root(seed: int = 0, smoke: bool = False, root: str | os.PathLike | None = None) -> Path:
    return data_dir(root) / "scenes" / (f"smoke-seed{seed}" if smoke else f"seed{seed}")


def _photo_pools(split: str, seed: int):
    """(images, labels) the split draws from: train/val split Fashion-MNIST train in two halves."""
    if split == "test":
        return load_fashion_mnist("test")
    x, y = load_fashion_mnist("train")
    idx = pool_indices(split, len(y), seed)
    return x[idx], y[idx]


def pool_indices(split: str, n_train: int, seed: int = 0, n_val: int = 5000) -> np.ndarray:
    """Indices into Fashion-MNIST train of the photos the ``"train"`` or ``"val"`` scenes may use."""
    n_val = min(n_val, n_train // 10)
    order = np.random.default_rng(seed).permutation(n_train)
    return order[: n_train - n_val] if split == "train" else order[n_train - n_val:]


def generate_split(split: str, n: int, seed: int = 0):
    """``n`` scenes of ``split``: uint8 images [n, C, C, 3], list of 5-caption lists, list of item lists."""
    photos, labels = _photo_pools(split, seed)
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}[split]])
    images = np.zeros((n, CANVAS, CANVAS, 3), dtype=np.uint8)
    caps, scene_items = [], []
    for i in range(n):
        k = int(rng.choice([1, 2, 3], p=N_ITEMS_P))
        pick = rng.integers(0, len(labels), size=k)
        items, arrangement = sample_layout(k, [int(labels[j]) for j in pick], rng)
        images[i] = render([photos[j] for j in pick], items, rng=rng)
        caps.append(captions_for(items, arrangement, rng))
        scene_items.append(items)
    return images, caps, scene_items


def _tokens(sentence: str) -> list[str]:
    return re.findall(r"[a-z0-9-]+", sentence.lower())


def build_scenes(seed: int = 0, smoke: bool = False, sizes: dict | None = None,
                 root: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write the scenes in the COCO Karpathy format (once; later calls return the folder).

    Layout: ``<folder>/dataset_coco.json``, ``<folder>/<split>/scene_<id>.png`` and, for fast
    training, ``<folder>/<split>.npz`` with the same pixels.
    """
    from PIL import Image

    from ..harness.results import write_json

    folder = scenes_root(seed, smoke, root)
    if (folder / "dataset_coco.json").exists() and not force:
        return folder
    sizes = dict(sizes or (SMOKE_SIZES if smoke else DEFAULT_SIZES))
    entries, cocoid, sentid = [], 0, 0
    for split in ("train", "val", "test"):
        images, caps, items = generate_split(split, sizes[split], seed)
        (folder / split).mkdir(parents=True, exist_ok=True)
        np.savez(folder / f"{split}.npz", images=images,
                 labels=np.array([[it.label for it in s] + [-1] * (3 - len(s)) for s in items]),
                 colours=np.array([[it.colour for it in s] + [""] * (3 - len(s)) for s in items]))
        for img, sents in zip(images, caps):
            name = f"scene_{cocoid:06d}.png"
            Image.fromarray(img).save(folder / split / name)
            entries.append({"filepath": split, "filename": name, "split": split, "cocoid": cocoid,
                            "imgid": cocoid, "sentids": list(range(sentid, sentid + len(sents))),
                            "sentences": [{"raw": s, "tokens": _tokens(s), "imgid": cocoid, "sentid": sentid + j}
                                          for j, s in enumerate(sents)]})
            cocoid += 1
            sentid += len(sents)
    # the json is written last (atomically): its presence means the folder is complete
    write_json(folder / "dataset_coco.json", {"dataset": "vlmid-scenes", "seed": seed, "images": entries})
    return folder


def load_scenes(split: str = "test", n: int | None = None, seed: int = 0, smoke: bool = False) -> list[CaptionExample]:
    """The captioned scenes of ``split`` (built on first use), read by COCO's Karpathy-format loader
    with every image decoded now (64 px each)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split={split!r}: use 'train', 'val' or 'test'")
    return load_coco_karpathy(build_scenes(seed, smoke), split, n, lazy=False)


def read_scene_items(folder: str | os.PathLike, split: str, n: int | None = None) -> dict[int, list[tuple[int, str]]]:
    """{image_id: [(class index, colour), ...]}: the true items of each scene of ``split`` in ``folder``,
    keyed by the ids :func:`load_scenes` gives ``CaptionExample.image_id``, in its order.

    Read from ``<split>.npz`` (labels -1 / colour "" mark the empty slots of scenes with fewer than
    3 items); the ids from ``dataset_coco.json`` (one running counter over train, val, test)."""
    folder = Path(folder)
    meta = json.loads((folder / "dataset_coco.json").read_text())
    ids = [im["cocoid"] for im in meta["images"] if im["split"] == split]
    with np.load(folder / f"{split}.npz") as arrays:
        labels, colours = arrays["labels"], arrays["colours"]
    if len(labels) != len(ids):
        raise ValueError(f"{folder}: {split}.npz has {len(labels)} scenes, dataset_coco.json {len(ids)}: "
                         f"rebuild the scenes (build_scenes(..., force=True))")
    return {i: [(int(lab), str(col)) for lab, col in zip(row_l, row_c) if lab >= 0]
            for i, row_l, row_c in list(zip(ids, labels, colours))[:n]}


def scene_items(split: str = "test", n: int | None = None, seed: int = 0, smoke: bool = False
                ) -> dict[int, list[tuple[int, str]]]:
    """The true items of the first ``n`` scenes of ``split``, {image_id: [(class index, colour), ...]},
    for the same scenes and ids as ``load_scenes(split, n, seed, smoke)`` (built on first use)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split={split!r}: use 'train', 'val' or 'test'")
    return read_scene_items(build_scenes(seed, smoke), split, n)


def load_scene_arrays(split: str, seed: int = 0, smoke: bool = False):
    """Pixels uint8 [N, C, C, 3] and the 5 captions per scene of ``split``, for training."""
    folder = build_scenes(seed, smoke)
    images = np.load(folder / f"{split}.npz")["images"]
    meta = json.loads((folder / "dataset_coco.json").read_text())
    caps = [[s["raw"] for s in im["sentences"]] for im in meta["images"] if im["split"] == split]
    return images, caps


# ---------------------------------------------------------------- single items (CLIP training, zero-shot)

class SingleItems(NamedTuple):
    """Single items, one per image: what ``single_items`` draws."""
    images: np.ndarray      # uint8 [N, C, C, 3]
    colours: list[str]      # each item's colour (a key of COLOURS)
    captions: list[str]     # one grammar caption each


def single_items(photos: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                 white_p: float = 0.3) -> SingleItems:
    """One item per image at a random colour (white with probability ``white_p``), size and place,
    with one caption from the grammar. The one sampler of single items: CLIP's contrastive pairs, the
    build's validation items and the linear probes' items all come from it."""
    images = np.zeros((len(labels), CANVAS, CANVAS, 3), dtype=np.uint8)
    colours, caps = [], []
    for i, (photo, lab) in enumerate(zip(photos, labels)):
        items, _ = sample_layout(1, [int(lab)], rng)
        if rng.random() < white_p:
            items[0].colour = "white"
        images[i] = render([photo], items, rng=rng)
        colours.append(items[0].colour)
        caps.append(str(rng.choice(_single(items, rng))))
    return SingleItems(images, colours, caps)


def centred_items(photos: np.ndarray, size: int = 32) -> np.ndarray:
    """Untinted (white) items, centred: how the zero-shot set shows Fashion-MNIST to CLIP."""
    c = CANVAS // 2
    return np.stack([render([p], [Item(0, "white", size, c, c)]) for p in photos])


# ---------------------------------------------------------------- placed items (the harder zero-shot set)

BACKGROUND = 10               # the patch label of a patch with (almost) no garment in it (the 10 classes are 0-9)
MIN_FOREGROUND = 6            # pixels of a patch's 64 that must belong to a garment to label it
FOREGROUND_LEVEL = 20         # a pixel belongs to a garment where its brightest channel exceeds this


def render_labelled(photos, items, rng: np.random.Generator | None = None, patch: int = 8, canvas: int = CANVAS):
    """The scene exactly as :func:`render` draws it, plus the garment under each patch.

    Returns (uint8 [canvas, canvas, 3], int64 [(canvas / patch)^2] patch labels in the ViT's
    row-major patch order, ``BACKGROUND`` where fewer than ``MIN_FOREGROUND`` pixels are garment).
    Where items overlap the brighter pixel is drawn, and labelled with its item. The vision
    pre-training (:mod:`vlmid.models.pretrain`) labels its scenes with it, and notebook 03's harder
    zero-shot set marks its foreground with it."""
    img = np.zeros((canvas, canvas, 3), dtype=np.float32)
    bright = np.zeros((canvas, canvas), dtype=np.float32)
    label = np.full((canvas, canvas), BACKGROUND, dtype=np.int64)
    for photo, it in zip(photos, items):
        piece = tint(photo, COLOURS[it.colour], it.size, rng)
        x0, y0 = it.cx - it.size // 2, it.cy - it.size // 2
        region = img[y0:y0 + it.size, x0:x0 + it.size]
        h, w = region.shape[:2]
        piece = piece[:h, :w]
        level = piece.max(-1)
        wins = (level > FOREGROUND_LEVEL) & (level > bright[y0:y0 + h, x0:x0 + w])
        label[y0:y0 + h, x0:x0 + w][wins] = it.label
        bright[y0:y0 + h, x0:x0 + w][wins] = level[wins]
        np.maximum(region, piece, out=region)
    g = canvas // patch
    per_patch = label.reshape(g, patch, g, patch).transpose(0, 2, 1, 3).reshape(g * g, patch * patch)
    counts = np.stack([(per_patch == c).sum(1) for c in range(BACKGROUND)], 1)
    patch_labels = np.where(counts.max(1) >= MIN_FOREGROUND, counts.argmax(1), BACKGROUND)
    return np.clip(img, 0, 255).astype(np.uint8), patch_labels


class PlacedItems(NamedTuple):
    """What ``placed_items`` draws: one target garment per image, with or without distractors."""
    images: np.ndarray       # uint8 [N, C, C, 3]
    labels: np.ndarray       # int64 [N]: the target's class
    foreground: np.ndarray   # bool [N, (C / patch)^2]: the patches labelled with the target, ViT row-major order
    targets: list[Item]      # the target as drawn: colour, size, centre
    n_items: np.ndarray      # int64 [N]: items drawn, the target included


DISTRACTOR_SIZE = (14, 17)   # pixels: below the smallest item of any scene (SIZES), so the target is the largest


def _distractor_cells(cx: int, cy: int, canvas: int = CANVAS) -> list[tuple[int, int]]:
    """Cells (column, row) of :func:`sample_layout`'s 3 x 3 grid that do not touch the cell of the item centred at
    (cx, cy); the four corners when it sits in the middle cell."""
    col, row = int(cx // (canvas / 3)), int(cy // (canvas / 3))
    far = [(c, r) for r in range(3) for c in range(3) if max(abs(c - col), abs(r - row)) == 2]
    return far or [(0, 0), (2, 0), (0, 2), (2, 2)]


def placed_items(photos: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                 p_distractors=(1.0,), white_p: float = 0.3, patch: int = 8) -> PlacedItems:
    """One target item per photo, placed as CLIP's training places it, with the patches it covers: the
    harder zero-shot set, where the garment is not a fixed centre.

    The target (``photos[i]``, class ``labels[i]``) gets :func:`single_items`' place, size and colour
    (:func:`sample_layout` for one item; white with probability ``white_p``). Image ``i`` then gets ``d``
    distractors, ``d`` drawn with the probabilities ``p_distractors`` (of 0, 1, 2 distractors): other photos
    of ``photos`` of another class than the target, ``DISTRACTOR_SIZE`` pixels wide at a random colour, each
    in its own grid cell away from the target's (:func:`_distractor_cells`, the same jitter as the target).
    Smaller than any item CLIP was trained on, they leave the target the one garment an image is about, so
    its class stays the right answer; a patch's label says whose garment it is. ``foreground``: the target's
    patches by :func:`render_labelled`'s rule."""
    photos, labels = np.asarray(photos), np.asarray(labels)
    p = np.asarray(p_distractors, dtype=float)
    if p.ndim != 1 or not 1 <= len(p) <= 3 or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"p_distractors={p_distractors!r}: probabilities of 0, 1 and 2 distractors, summing to 1")
    g, third = CANVAS // patch, CANVAS / 3
    images = np.zeros((len(labels), CANVAS, CANVAS, 3), dtype=np.uint8)
    foreground = np.zeros((len(labels), g * g), dtype=bool)
    n_items = np.zeros(len(labels), dtype=np.int64)
    targets = []
    for i, (photo, lab) in enumerate(zip(photos, labels)):
        items, _ = sample_layout(1, [int(lab)], rng)
        if rng.random() < white_p:
            items[0].colour = "white"
        d = int(rng.choice(len(p), p=p))
        others = np.flatnonzero(labels != lab)
        if d and not len(others):
            raise ValueError("placed_items: distractors need photos of another class than the target")
        pick = rng.choice(others, size=d)
        cells = _distractor_cells(items[0].cx, items[0].cy)
        for j, c in zip(pick, rng.choice(len(cells), size=d, replace=False)):
            size = int(rng.integers(DISTRACTOR_SIZE[0], DISTRACTOR_SIZE[1] + 1))
            cx, cy = (third * (cells[c][k] + 0.5) + rng.integers(-3, 4) for k in range(2))
            items.append(Item(int(labels[j]), str(rng.choice(list(COLOURS))), size,
                              _clip_centre(cx, size, CANVAS), _clip_centre(cy, size, CANVAS)))
        images[i], patch_labels = render_labelled([photo] + [photos[j] for j in pick], items, rng, patch)
        foreground[i] = patch_labels == int(lab)
        targets.append(items[0])
        n_items[i] = len(items)
    return PlacedItems(images, labels.astype(np.int64), foreground, targets, n_items)


# ---------------------------------------------------------------- figure

def sample_figure(examples: list[CaptionExample], ncols: int = 4, captions_shown: int = 3):
    """A grid of scenes, each titled with some of its reference captions."""
    import textwrap

    import matplotlib.pyplot as plt

    nrows = int(np.ceil(len(examples) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 4.3 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples):
        ax.imshow(ex.image)
        text = "\n".join(textwrap.fill(c, 34) for c in ex.captions[:captions_shown])
        ax.set_title(text, fontsize=7.5, loc="left")
    fig.tight_layout()
    return fig
