"""The tiny profile's zero-shot set: Fashion-MNIST test, shown the way the tiny CLIP was trained.

Each test photo becomes one untinted (white) item, centred on the black 64 px canvas; the
10 class names are filled into prompt templates written in the caption grammar's words
(the tiny CLIP's tokenizer knows no other words). Chance is 10 %.
"""
from __future__ import annotations

import numpy as np

from .base import ZeroShotSet
from .fashion_mnist import FASHION_CLASSES, load_fashion_mnist

FASHION_TEMPLATES = ["a white {}", "a white {} in the center", "one white {} on a black background",
                     "there is a white {} in the center", "a picture of a white {}"]


def load_fashion_zeroshot(n: int | None = None, seed: int = 0, root=None) -> ZeroShotSet:
    """``n`` Fashion-MNIST test images (None: all 10000; else a seeded random subset) as a ZeroShotSet."""
    from PIL import Image

    from .scenes import centred_items

    if n is not None and n < 1:
        raise ValueError(f"n={n!r} must be a positive number of images or None")
    photos, labels = load_fashion_mnist("test", root)
    idx = np.arange(len(labels)) if n is None else np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    images = [Image.fromarray(a) for a in centred_items(photos[idx])]
    return ZeroShotSet(images=images, labels=labels[idx].copy(), classnames=list(FASHION_CLASSES),
                       templates=list(FASHION_TEMPLATES))
