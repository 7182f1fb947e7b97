"""The two kinds of example every notebook consumes, whatever the profile.

A :class:`CaptionExample` holds its image in memory (the tiny scenes: 64 px each). Real data sets
are too big for that (COCO's Karpathy train split is 113,287 photos, about 95 GB decoded), so their
loaders return :class:`StoredCaptionExample` s, which hold a path and decode the image each time
it is asked for. Code that needs the images of many examples takes :func:`images_of` (a sequence
that decodes per item or per slice, i.e. per batch), so host memory is bounded by the batch, not
by the split.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class CaptionExample:
    """One image with its reference captions (COCO: 5 per image; our scenes: 5 per image)."""
    image_id: int | str
    image: "PIL.Image.Image"  # noqa: F821  (RGB)
    captions: list[str] = field(default_factory=list)


class StoredCaptionExample(CaptionExample):
    """A :class:`CaptionExample` whose image stays on disk: ``image`` decodes ``path`` (RGB, the longer
    side shrunk to ``max_side``) on every access and keeps nothing. A file that was readable when the
    split was listed but fails to decode now raises an error that names it."""

    def __init__(self, image_id, path: str | os.PathLike, captions: list[str], max_side: int | None = None):
        self.image_id, self.path, self.captions, self.max_side = image_id, Path(path), list(captions), max_side

    @property
    def image(self):
        im = read_rgb(self.path, self.max_side)
        if im is None:
            raise OSError(f"{self.path} could not be decoded (it was readable when the split was listed): "
                          f"restore or remove the file and load the split again")
        return im

    def __repr__(self) -> str:
        return f"StoredCaptionExample(image_id={self.image_id!r}, path={str(self.path)!r}, {len(self.captions)} captions)"


def read_rgb(path: Path, max_side: int | None = None) -> Image.Image | None:
    """The image at ``path`` fully decoded as RGB, or None if it is missing or unreadable."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # forces a full decode: truncated files fail here, not later
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return im


def image_readable(path: Path) -> bool:
    """Whether ``path`` is an image file PIL can open (reads the header only, no pixels)."""
    try:
        with Image.open(path) as im:
            return im.size[0] > 0 and im.size[1] > 0
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


class _Images(Sequence):
    """The images of a list of examples, decoded when indexed (a slice decodes just that slice)."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [e.image for e in self.examples[i]]
        return self.examples[i].image


def images_of(examples) -> Sequence:
    """The images of ``examples`` as a sequence that decodes them per item or per slice (per batch):
    what evaluation and feature extraction pass on instead of ``[e.image for e in examples]``, which
    would decode a whole split at once."""
    return _Images(examples)


@dataclass
class ZeroShotSet:
    """Images with class labels, the class names, and prompt templates with one ``{}`` each."""
    images: list  # list of RGB PIL images
    labels: np.ndarray
    classnames: list[str]
    templates: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def caption_batches(examples: Sequence, batch_size: int, seed: int = 0) -> Iterator[tuple[list, list]]:
    """Endless random batches (images, one of each image's reference captions), reproducible by seed:
    items drawn with replacement, a caption drawn per item. The one sampler of every fine-tune
    (notebook 02's prune-fine-tune runs and their dense control, notebook 05's layer-drop heal and
    its control)."""
    if not examples:
        raise ValueError("caption_batches: no training examples")
    rng = np.random.default_rng([seed, 2])
    while True:
        idx = rng.integers(0, len(examples), size=batch_size)
        yield ([examples[i].image for i in idx],
               [examples[i].captions[int(rng.integers(len(examples[i].captions)))] for i in idx])
