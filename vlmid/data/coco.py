"""COCO captions in Karpathy's split (``dataset_coco.json``), the split BLIP reports on.

On-disk format (Karpathy's ``caption_datasets.zip``)::

    dataset_coco.json = {"images": [{"filepath": "val2014", "filename": "COCO_val2014_...jpg",
                                     "split": "train" | "restval" | "val" | "test",
                                     "cocoid": 391895, "imgid": 0,
                                     "sentences": [{"raw": "A man ...", "tokens": ["a", "man", ...]}, ...]},
                                    ...], "dataset": "coco"}
    <images_root>/<filepath>/<filename>          (the COCO 2014 train2014/ and val2014/ folders)

Karpathy test and val hold 5000 images each; "train" here means train + restval (113 287
images), as BLIP and most captioning work train on both. The same writer/loader pair also
stores our own captioned scenes, so one evaluation path serves both.

Images are read lazily: the loader lists the split and checks each file's header (a missing file or
one that is not an image is skipped, counted and reported once, never fatal; the returned list carries
``.skipped`` and ``.skipped_files``), and each :class:`~vlmid.data.base.StoredCaptionExample` decodes
its photo when ``.image`` is asked for, so a training loop holds one batch of pixels at a time.
``lazy=False`` decodes every image at load time (and skips the ones that fail to decode).
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Hashable

from .base import CaptionExample, StoredCaptionExample, image_readable, read_rgb

COCO_SPLITS = ("train", "val", "test", "restval")
HOW_TO_GET = ("Karpathy's split file comes in caption_datasets.zip "
              "(https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip); the images are "
              "COCO 2014 train2014/ and val2014/ from https://cocodataset.org/#download")


class LoadedExamples(list):
    """A list of examples that also says what was skipped while loading it."""

    def __init__(self, items=(), skipped_files=()):
        super().__init__(items)
        self.skipped_files = list(skipped_files)

    @property
    def skipped(self) -> int:
        return len(self.skipped_files)


def caption_example(image_id, path: Path, captions: list[str], max_side: int | None, lazy: bool):
    """The example of one listed image: stored (decoded on use) when ``lazy``, else decoded now;
    None when the file is missing or unreadable (the caller counts it as skipped)."""
    if lazy:
        return StoredCaptionExample(image_id, path, captions, max_side) if image_readable(path) else None
    image = read_rgb(path, max_side)
    return None if image is None else CaptionExample(image_id=image_id, image=image, captions=captions)


def warn_skipped(skipped: list, what: str) -> None:
    if skipped:
        shown = ", ".join(str(s) for s in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        warnings.warn(f"{what}: skipped {len(skipped)} missing or unreadable image(s): {shown}",
                      stacklevel=3)


def _find_json(root: Path) -> Path:
    if root.is_file():
        return root
    for candidate in (root / "dataset_coco.json", root / "annotations" / "dataset_coco.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"COCO Karpathy split not found: expected {root / 'dataset_coco.json'} "
                            f"(or annotations/dataset_coco.json). {HOW_TO_GET}")


def _read_json(path: Path) -> list[dict]:
    expected = ('expected Karpathy\'s format {"images": [{"filepath", "filename", "split", "cocoid", '
                '"sentences": [{"raw", ...}]}, ...]}')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {expected}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise ValueError(f"{path} has no 'images' list; {expected}")
    for i, entry in enumerate(images):
        ok = (isinstance(entry, dict) and all(k in entry for k in ("filename", "split", "sentences"))
              and isinstance(entry["sentences"], list)
              and all(isinstance(s, dict) and isinstance(s.get("raw"), str) for s in entry["sentences"]))
        if not ok:
            raise ValueError(f"{path}: images[{i}] is malformed ({str(entry)[:120]}); {expected}")
    return images


def load_coco_karpathy(root: str | os.PathLike, split: str = "test", n: int | None = None,
                       images_root: str | os.PathLike | None = None,
                       max_side: int | None = None, lazy: bool = True) -> LoadedExamples:
    """COCO Karpathy ``split`` as :class:`CaptionExample` s (image_id = cocoid, all raw captions).

    root:        folder holding ``dataset_coco.json`` (or the json file itself)
    split:       "train" (= train + restval), "val", "test" or "restval"
    n:           return the first ``n`` readable images of the split in file order (None: all)
    images_root: folder holding ``<filepath>/<filename>`` (default: ``root``); a flat folder
                 with the files directly inside also works
    max_side:    shrink images whose longer side exceeds this many pixels when decoded (BLIP
                 resizes to 384 anyway)
    lazy:        keep paths and decode each image when it is used (default; bounded memory), or
                 decode them all now (``False``: the 5000 test images take about 4.5 GB at full size)
    """
    if split not in COCO_SPLITS:
        raise ValueError(f"split={split!r}: use one of {COCO_SPLITS} ('train' includes 'restval')")
    if n is not None and n < 1:
        raise ValueError(f"n={n!r} must be a positive number of images or None")
    root = Path(root)
    path = _find_json(root)
    images_root = Path(images_root) if images_root is not None else (root if root.is_dir() else root.parent)
    wanted = {"train", "restval"} if split == "train" else {split}

    out, skipped = [], []
    for entry in _read_json(path):
        if entry["split"] not in wanted:
            continue
        if n is not None and len(out) >= n:
            break
        rel = Path(entry.get("filepath") or "") / entry["filename"]
        file = images_root / rel
        if not file.exists() and (images_root / entry["filename"]).exists():
            file = images_root / entry["filename"]  # a flat image folder
        captions = [s["raw"].strip() for s in entry["sentences"] if s["raw"].strip()]
        image_id = entry.get("cocoid", entry.get("imgid", entry["filename"]))
        example = caption_example(image_id, file, captions, max_side, lazy) if captions else None
        if example is None:
            skipped.append(rel)
            continue
        out.append(example)
    warn_skipped(skipped, f"COCO {split} ({path})")
    return LoadedExamples(out, skipped)


def _tokens(sentence: str) -> list[str]:
    # Karpathy's "tokens": lower case words without punctuation
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", sentence.lower())


def write_coco_karpathy(examples, root: str | os.PathLike,
                        split_of: str | dict[Hashable, str] | Callable[[CaptionExample], str] = "test",
                        filepath: str = "images", image_format: str = "png", append: bool = False) -> Path:
    """Write ``examples`` as ``root/dataset_coco.json`` + ``root/<filepath>/<image_id>.<format>``.

    split_of: one split for all examples, a dict {image_id: split} or a function of the example.
    append:   keep the entries already in ``dataset_coco.json`` (those with the same image id
              are replaced), so the splits can be written by separate calls.
    Returns the json path. :func:`load_coco_karpathy` reads it back unchanged (PNG is lossless).
    """
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format={image_format!r}: use 'png' (lossless) or 'jpg'")
    root = Path(root)
    (root / filepath).mkdir(parents=True, exist_ok=True)
    entries = []
    for i, e in enumerate(examples):
        split = (split_of if isinstance(split_of, str)
                 else split_of[e.image_id] if isinstance(split_of, dict) else split_of(e))
        if split not in COCO_SPLITS:
            raise ValueError(f"split {split!r} of image {e.image_id!r}: use one of {COCO_SPLITS}")
        filename = f"{e.image_id}.{image_format}"
        e.image.convert("RGB").save(root / filepath / filename, **({"quality": 95} if image_format == "jpg" else {}))
        entries.append({"filepath": filepath, "filename": filename, "split": split, "imgid": i,
                        "cocoid": e.image_id,
                        "sentences": [{"raw": c, "tokens": _tokens(c)} for c in e.captions]})
    path = root / "dataset_coco.json"
    if append and path.exists():
        new_ids = {e["cocoid"] for e in entries}
        kept = [e for e in _read_json(path) if e.get("cocoid") not in new_ids]
        entries = kept + [{**e, "imgid": len(kept) + i} for i, e in enumerate(entries)]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"images": entries, "dataset": "coco"}), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def references(examples) -> dict[Hashable, list[str]]:
    """{image_id: [reference captions]}: the ``refs`` argument of ``caption_scores``."""
    refs = {}
    for e in examples:
        if e.image_id in refs:
            raise ValueError(f"duplicate image_id {e.image_id!r}")
        refs[e.image_id] = list(e.captions)
    return refs
