"""Data for both profiles, behind two calls.

    load_captions(profile, split="test", n=None, seed=0, smoke=False) -> list[CaptionExample]
        tiny: captioned Fashion-MNIST scenes (test scenes use Fashion-MNIST *test* photos)
        paper: COCO Karpathy split from $VLMID_PAPER_DATA/coco
    load_zeroshot(profile, n=None, seed=0) -> ZeroShotSet
        tiny: Fashion-MNIST test, centred untinted items; paper: CIFAR-10 test from $VLMID_PAPER_DATA
"""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import check_profile
from .base import CaptionExample, ZeroShotSet, caption_batches

__all__ = ["load_captions", "load_zeroshot", "CaptionExample", "ZeroShotSet", "caption_batches", "paper_data_dir"]


def paper_data_dir() -> Path:
    """``$VLMID_PAPER_DATA`` (holding coco/, flickr8k/, cifar-10-batches-py/); clear error if unset."""
    root = os.environ.get("VLMID_PAPER_DATA")
    if not root:
        raise FileNotFoundError(
            "the paper profile reads its datasets from $VLMID_PAPER_DATA, which is not set: point it at a "
            "folder holding coco/ (dataset_coco.json + train2014/ val2014/), flickr8k/ and cifar-10-batches-py/")
    return Path(root)


def _check_n(n):
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n={n!r} must be a positive number of examples or None (all)")


def load_captions(profile: str = "tiny", split: str = "test", n: int | None = None, seed: int = 0,
                  smoke: bool = False) -> list[CaptionExample]:
    check_profile(profile)
    _check_n(n)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split={split!r}: use 'train', 'val' or 'test'")
    if profile == "paper":
        from .coco import load_coco_karpathy  # imported here: the tiny profile never needs it
        return load_coco_karpathy(paper_data_dir() / "coco", split, n)
    from .scenes import load_scenes
    return load_scenes(split, n, seed, smoke)


def load_zeroshot(profile: str = "tiny", n: int | None = None, seed: int = 0) -> ZeroShotSet:
    check_profile(profile)
    _check_n(n)
    if profile == "paper":
        from .cifar10 import load_cifar10
        return load_cifar10(paper_data_dir(), "test", n)
    from .zeroshot import load_fashion_zeroshot
    return load_fashion_zeroshot(n, seed)
