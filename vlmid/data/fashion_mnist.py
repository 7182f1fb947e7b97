"""Fashion-MNIST (Xiao et al. 2017): 70k real 28x28 grey photos of clothing in 10 classes.

Read straight from the idx ``.gz`` files that Debian's ``dataset-fashion-mnist`` installs,
with numpy and gzip only: no download, no extra package.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "VLMID_FASHION_MNIST"
# the official class names, index = label
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
                   "sandal", "shirt", "sneaker", "bag", "ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def fashion_mnist_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$VLMID_FASHION_MNIST``, else Debian's install folder."""
    return Path(root or os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file (gzip-compressed): magic (0, 0, dtype code, ndim), ndim big-endian sizes, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 28, 28]`` and labels ``int64 [N]`` of the ``"train"`` (60k) or ``"test"`` (10k) split."""
    if split not in _FILES:
        raise ValueError(f"split={split!r}: use 'train' or 'test'")
    folder = fashion_mnist_root(root)
    paths = [folder / name for name in _FILES[split]]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found: missing {', '.join(missing)}. Install the Debian package "
            f"`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist, puts it in {DEFAULT_ROOT}) "
            f"or point ${ENV_VAR} (or the root argument) at a folder with the four idx .gz files.")
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels.astype(np.int64)
