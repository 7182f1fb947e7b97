"""Flickr8k captions in their original on-disk format (Hodosh et al. 2013).

    Flickr8k.token.txt          "<image>.jpg#<k>\\t<caption>" per line, k = 0..4
    Flickr_8k.trainImages.txt   one image file name per line (6000)
    Flickr_8k.devImages.txt     (1000)
    Flickr_8k.testImages.txt    (1000)
    Flicker8k_Dataset/<image>.jpg   (sic: the official folder name has this typo; Images/ also works)

The text files may sit in ``root`` or in ``root/Flickr8k_text/``. :func:`write_flickr8k`
writes any captioned examples in exactly this format, so our own scenes and the real
Flickr8k go through the same loader. Unreadable or missing images are skipped and
counted (``.skipped`` / ``.skipped_files`` on the returned list), never fatal.

At the end of the file, where Flickr8k lives on disk for each profile: :func:`flickr8k_root`
(paper: ``$VLMID_PAPER_DATA/flickr8k``; tiny: our captioned scenes, written once in this
format by :func:`write_scenes_as_flickr8k`) and :func:`load_flickr8k_splits`, which reads
several splits from whichever it is.
"""
from __future__ import annotations

import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Hashable

from .base import CaptionExample
from .coco import LoadedExamples, caption_example, warn_skipped

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images")
HOW_TO_GET = ("Flickr8k comes as Flickr8k_text.zip (captions and splits) and Flickr8k_Dataset.zip "
              "(images), from the University of Illinois Flickr8k request form or its Kaggle mirrors")


def _text_file(root: Path, name: str) -> Path:
    for folder in (root, root / "Flickr8k_text"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"Flickr8k file missing: expected {root / name} (or "
                            f"{root / 'Flickr8k_text' / name}). {HOW_TO_GET}")


def _image_dir(root: Path) -> Path:
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"Flickr8k images missing: expected the folder {root / IMAGE_DIRS[0]} "
                            f"(or {' or '.join(IMAGE_DIRS[1:])}). {HOW_TO_GET}")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err})") from None


def read_tokens(path: Path) -> dict[str, list[str]]:
    """{image file name: captions in the order of their #k} from a Flickr8k token file."""
    captions: dict[str, dict[int, str]] = defaultdict(dict)
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        name, hash_, k = key.rpartition("#")
        if not tab or not hash_ or not name or not k.strip().isdigit():
            raise ValueError(f"{path}, line {number}: expected '<image>.jpg#<k><TAB><caption>', "
                             f"got {line[:100]!r}")
        captions[name][int(k)] = caption.strip()
    return {name: [c for _, c in sorted(d.items()) if c] for name, d in captions.items()}


def load_flickr8k(root: str | os.PathLike, split: str = "test", n: int | None = None,
                  max_side: int | None = None, lazy: bool = True) -> LoadedExamples:
    """Flickr8k ``split`` ("train", "val" (= dev) or "test") as :class:`CaptionExample` s.

    image_id is the file name without extension (e.g. "1000268201_693b08cb0e"); images are
    in the split file's order; ``n`` keeps the first ``n`` readable ones. An image listed in
    the split file without captions or without a readable file is skipped and counted.
    ``lazy`` (default): the examples keep their paths and decode each image when it is used
    (:class:`~vlmid.data.base.StoredCaptionExample`); ``False`` decodes them all now.
    """
    split = {"dev": "val"}.get(split, split)
    if split not in SPLIT_FILES:
        raise ValueError(f"split={split!r}: use 'train', 'val' (Flickr8k's 'dev') or 'test'")
    if n is not None and n < 1:
        raise ValueError(f"n={n!r} must be a positive number of images or None")
    root = Path(root)
    captions = read_tokens(_text_file(root, TOKEN_FILE))
    split_path = _text_file(root, SPLIT_FILES[split])
    names = [line.strip() for line in _read_lines(split_path) if line.strip()]
    bad = [x for x in names if "\t" in x or "#" in x or " " in x]
    if bad:
        raise ValueError(f"{split_path}: expected one image file name per line, got e.g. {bad[0][:100]!r}")
    image_dir = _image_dir(root)

    out, skipped = [], []
    for name in names:
        if n is not None and len(out) >= n:
            break
        example = (caption_example(Path(name).stem, image_dir / name, captions[name], max_side, lazy)
                   if captions.get(name) else None)
        if example is None:
            skipped.append(name)
            continue
        out.append(example)
    warn_skipped(skipped, f"Flickr8k {split} ({root})")
    return LoadedExamples(out, skipped)


def write_flickr8k(examples, root: str | os.PathLike,
                   split_of: str | dict[Hashable, str] | Callable[[CaptionExample], str] = "test",
                   image_format: str = "jpg", append: bool = False) -> Path:
    """Write ``examples`` in Flickr8k's format under ``root`` (token file, 3 split files, images).

    split_of: "train" / "val" / "test" for all examples, a dict {image_id: split} or a function
    of the example. Images are saved as ``Flicker8k_Dataset/<image_id>.jpg`` (JPEG quality 95,
    like the real set) or, with ``image_format="png"``, losslessly as ``.png``. The text files
    are replaced, or with ``append=True`` extended (an image written again replaces its old
    entry), so the splits can be written by separate calls. Returns ``root``.
    """
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format={image_format!r}: use 'jpg' or 'png'")
    root = Path(root)
    image_dir = root / IMAGE_DIRS[0]
    image_dir.mkdir(parents=True, exist_ok=True)
    captions: dict[str, list[str]] = {}  # file name -> captions, in writing order
    split_names: dict[str, list[str]] = {s: [] for s in SPLIT_FILES}
    if append and (root / TOKEN_FILE).is_file():
        captions = read_tokens(root / TOKEN_FILE)
        for split, file in SPLIT_FILES.items():
            if (root / file).is_file():
                split_names[split] = [x.strip() for x in _read_lines(root / file) if x.strip()]
    for e in examples:
        split = (split_of if isinstance(split_of, str)
                 else split_of[e.image_id] if isinstance(split_of, dict) else split_of(e))
        split = {"dev": "val"}.get(split, split)
        if split not in SPLIT_FILES:
            raise ValueError(f"split {split!r} of image {e.image_id!r}: use 'train', 'val' or 'test'")
        name = f"{e.image_id}.{image_format}"
        if any(ch in name for ch in "#\t\n /"):
            raise ValueError(f"image_id {e.image_id!r} cannot be a Flickr8k file name (no '#', tabs, "
                             "spaces or slashes)")
        e.image.convert("RGB").save(image_dir / name, **({"quality": 95} if image_format == "jpg" else {}))
        for names in split_names.values():  # an image written again leaves its old split
            if name in names:
                names.remove(name)
        split_names[split].append(name)
        captions.pop(name, None)
        captions[name] = [" ".join(c.split()) for c in e.captions]
    lines = [f"{name}#{k}\t{c}" for name, caps in captions.items() for k, c in enumerate(caps)]
    (root / TOKEN_FILE).write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    for split, file in SPLIT_FILES.items():
        (root / file).write_text("".join(f"{x}\n" for x in split_names[split]), encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------
# where Flickr8k lives for each profile: one code path for the real set and our scenes
# ---------------------------------------------------------------------------------------
FLICKR8K_SIZES = {"train": 6000, "val": 1000, "test": 1000}  # Flickr8k's official split sizes


def flickr8k_root(profile: str, seed: int = 0, smoke: bool = False) -> Path:
    """paper: ``$VLMID_PAPER_DATA/flickr8k``; tiny: the scenes in Flickr8k format under ``data_dir()``."""
    from ..paths import check_profile, data_dir

    if check_profile(profile) == "paper":
        base = os.environ.get("VLMID_PAPER_DATA")
        if not base:
            raise FileNotFoundError("the paper profile reads Flickr8k from $VLMID_PAPER_DATA/flickr8k: set "
                                    "VLMID_PAPER_DATA to the folder that holds flickr8k/ (Flickr8k_text + "
                                    "Flicker8k_Dataset)")
        return Path(base) / "flickr8k"
    return data_dir() / (f"flickr8k-scenes-smoke-seed{seed}" if smoke else f"flickr8k-scenes-seed{seed}")


def write_scenes_as_flickr8k(seed: int = 0, smoke: bool = False) -> Path:
    """Write the captioned scenes once in Flickr8k's format (its split sizes, at most), return the folder.

    Written to a temporary folder and renamed into place, so a half-written set is never read.
    """
    root = flickr8k_root("tiny", seed, smoke)
    if root.is_dir():
        return root
    from . import load_captions  # looked up at call time (the package imports this module lazily)

    examples, split_of = [], {}
    for split, n in FLICKR8K_SIZES.items():
        part = load_captions("tiny", split=split, n=None if smoke else n, seed=seed, smoke=smoke)
        examples += part
        split_of.update({ex.image_id: split for ex in part})
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_flickr8k(examples, tmp, split_of=split_of)
    os.replace(tmp, root)
    return root


def load_flickr8k_splits(profile: str, seed: int = 0, smoke: bool = False, splits=("train", "test"),
                         max_side: int | None = 224) -> dict:
    """{split: CaptionExamples} read by :func:`load_flickr8k` (tiny: scenes written first).

    ``max_side`` shrinks large photos as they are read (real Flickr8k is ~500 x 375: 6,000 of them
    at full size would take 3 GB of memory; the 64 px scenes are untouched).
    """
    root = write_scenes_as_flickr8k(seed, smoke) if profile == "tiny" else flickr8k_root(profile, seed, smoke)
    return {split: load_flickr8k(root, split, max_side=max_side) for split in splits}
