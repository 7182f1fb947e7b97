"""CIFAR-10 from its python pickle batches (Krizhevsky 2009), the paper's zero-shot benchmark.

    cifar-10-batches-py/data_batch_1 .. data_batch_5   train, 10000 images each
    cifar-10-batches-py/test_batch                     test, 10000 images
    cifar-10-batches-py/batches.meta                   {b"label_names": [b"airplane", ...]}

Each batch is a pickled dict with b"data" (uint8 [N, 3072]: the red 32x32 plane, then
green, then blue, each row-major), b"labels" (N ints), b"batch_label" and b"filenames".
The pickles are read with an unpickler that only accepts numpy arrays and plain
containers, so a tampered file cannot run code.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from .base import ZeroShotSet

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
HOW_TO_GET = "download and unpack https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

# A small prompt ensemble in the style of CLIP's evaluation: CIFAR photos are tiny and blurry,
# so prompts that say so describe the images better than "a photo of a {}." alone.
CIFAR10_TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a pixelated photo of the {}.",
    "a close-up photo of a {}.",
    "a photo of a small {}.",
    "a photo of the big {}.",
    "a cropped photo of a {}.",
]

_ALLOWED = {  # what numpy arrays and python-2 byte strings need to unpickle, nothing more
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR file")


def _folder(root: Path) -> Path:
    if (root / "batches.meta").is_file() or root.name == FOLDER:
        return root
    return root / FOLDER


def _unpickle(path: Path, keys: tuple[bytes, ...]) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 file missing: {path}. Expected the python version's folder "
                                f"{FOLDER}/ with data_batch_1..5, test_batch and batches.meta: {HOW_TO_GET}")
    try:
        d = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 (pickle raises many kinds of errors on garbage)
        raise ValueError(f"{path} is not a CIFAR-10 python pickle ({type(err).__name__}: {err}); "
                         f"expected a pickled dict with keys {[k.decode() for k in keys]}") from None
    if not isinstance(d, dict) or any(k not in d for k in keys):
        found = list(d)[:6] if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{path}: expected a dict with keys {[k.decode() for k in keys]}, found {found}")
    return d


def cifar10_classnames(root: str | os.PathLike) -> list[str]:
    meta = _unpickle(_folder(Path(root)) / "batches.meta", (b"label_names",))
    names = [x.decode() if isinstance(x, bytes) else str(x) for x in meta[b"label_names"]]
    if len(names) != 10:
        raise ValueError(f"{_folder(Path(root)) / 'batches.meta'}: expected 10 label_names, got {names}")
    return names


def load_cifar10(root: str | os.PathLike, split: str = "test", n: int | None = None,
                 templates: list[str] | None = None) -> ZeroShotSet:
    """CIFAR-10 ``split`` ("train": 50000, "test": 10000) as a :class:`ZeroShotSet`.

    root: the folder ``cifar-10-batches-py`` itself or the folder containing it.
    n:    keep the first ``n`` images in file order (None: all).
    templates: prompt templates (default :data:`CIFAR10_TEMPLATES`).
    Returns images (32x32 RGB PIL), labels (int64 numpy), classnames (from batches.meta), templates.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: use 'train' or 'test'")
    if n is not None and n < 1:
        raise ValueError(f"n={n!r} must be a positive number of images or None")
    folder = _folder(Path(root))
    classnames = cifar10_classnames(folder)
    images, labels = [], []
    for name in TRAIN_FILES if split == "train" else TEST_FILES:
        if n is not None and len(labels) >= n:
            break
        path = folder / name
        d = _unpickle(path, (b"data", b"labels"))
        data, y = np.asarray(d[b"data"]), np.asarray(d[b"labels"], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(y) != len(data):
            raise ValueError(f"{path}: expected b'data' uint8 [N, 3072] and N b'labels', got data "
                             f"{data.dtype} {data.shape} and {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() >= len(classnames)):
            raise ValueError(f"{path}: labels outside 0..{len(classnames) - 1}")
        take = len(y) if n is None else min(len(y), n - len(labels))
        # [N, 3072] -> [N, 3, 32, 32] (channel planes) -> [N, 32, 32, 3] (PIL's layout)
        pixels = data[:take].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        images.extend(Image.fromarray(np.ascontiguousarray(p)) for p in pixels)
        labels.extend(y[:take].tolist())
    return ZeroShotSet(images=images, labels=np.asarray(labels, dtype=np.int64), classnames=classnames,
                       templates=list(templates or CIFAR10_TEMPLATES))
