"""What a paper-profile run needs on disk, checked before it starts.

A paper run reads the real checkpoints from ``$VLMID_MODELS`` or the Hugging Face cache and the real
datasets from ``$VLMID_PAPER_DATA``. Each notebook's parameters name what it reads
(``NotebookParams.paper_inputs``); ``require`` checks all of them at once, so a run without its files
stops in its first cell with one message that lists everything missing and how to get it, before any
result folder is touched, instead of failing an hour later at the first missing one.

    require(["blip", "coco"])   # FileNotFoundError listing what is missing
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from ..models.paper import BLIP_ID, CLIP_ID, ENV_VAR as MODELS_VAR, QWEN2VL_ID, resolve

DATA_VAR = "VLMID_PAPER_DATA"


def _checkpoint(name: str) -> Callable[[], str | None]:
    def where_missing() -> str | None:
        if resolve(name) != name:   # $VLMID_MODELS/<name>/config.json
            return None
        from huggingface_hub import try_to_load_from_cache
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return None
        root = os.environ.get(MODELS_VAR)
        looked = f"${MODELS_VAR}/{name} ({Path(root) / name})" if root else f"${MODELS_VAR} (not set)"
        return (f"checkpoint {name!r}: not in {looked} nor in the Hugging Face cache. Get it on a machine "
                f"with network (`huggingface-cli download {name}`) and copy the cache here, or save it under "
                f"DIR/{name} and set {MODELS_VAR}=DIR")
    return where_missing


def _dataset(what: str, locate: Callable[[Path], object]) -> Callable[[], str | None]:
    def where_missing() -> str | None:
        root = os.environ.get(DATA_VAR)
        if not root:
            return f"{what}: ${DATA_VAR} is not set (point it at the folder holding the paper datasets)"
        try:
            locate(Path(root))
        except FileNotFoundError as err:
            return f"{what}: {err}"
        return None
    return where_missing


def _coco(root: Path):
    from ..data.coco import _find_json
    return _find_json(root / "coco")


def _flickr8k(root: Path):
    from ..data.flickr8k import TOKEN_FILE, _image_dir, _text_file
    return _text_file(root / "flickr8k", TOKEN_FILE), _image_dir(root / "flickr8k")


def _cifar10(root: Path):
    from ..data.cifar10 import _folder
    folder = _folder(root)
    for name in ("batches.meta", "test_batch"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"CIFAR-10 (python version) not found: expected {folder / name} "
                                    f"(unpack cifar-10-python.tar.gz into ${DATA_VAR})")
    return folder


def _fashion_mnist() -> str | None:
    from ..data.fashion_mnist import ENV_VAR, fashion_mnist_root
    root = fashion_mnist_root()
    if any(root.glob("t10k-images-idx3-ubyte*")):
        return None
    return (f"Fashion-MNIST (notebook 00's linear probes use it in both profiles): not in {root}. "
            f"Install Debian's dataset-fashion-mnist or set {ENV_VAR} to a folder of its idx files")


INPUTS: dict[str, Callable[[], str | None]] = {
    "blip": _checkpoint(BLIP_ID),
    "clip": _checkpoint(CLIP_ID),
    "qwen2vl": _checkpoint(QWEN2VL_ID),
    "coco": _dataset("COCO Karpathy", _coco),
    "flickr8k": _dataset("Flickr8k", _flickr8k),
    "cifar10": _dataset("CIFAR-10", _cifar10),
    "fashion-mnist": _fashion_mnist,
}


def missing(needs: Iterable[str]) -> list[str]:
    """One line per input in ``needs`` (keys of ``INPUTS``) that is not on this machine."""
    unknown = [n for n in needs if n not in INPUTS]
    if unknown:
        raise ValueError(f"unknown paper inputs {unknown}: use keys of vlmid.harness.paper_inputs.INPUTS {sorted(INPUTS)}")
    return [line for line in (INPUTS[n]() for n in needs) if line]


def require(needs: Iterable[str]) -> None:
    """Raise one FileNotFoundError listing every missing input of a paper run (nothing when all are here)."""
    lines = missing(list(needs))
    if lines:
        listed = "\n".join(f"  - {line}" for line in lines)
        raise FileNotFoundError(
            f"this paper-profile run needs files that are not on this machine:\n{listed}\n"
            f"Nothing was computed. The README's section on the paper profile says where each goes; "
            f"the tiny profile (the default) needs none of them.")


def params_from(cls, namespace):
    """A notebook's first step: ``cls.from_namespace(namespace)`` (defaults, range checks, smoke sizes),
    and for a paper run the check that every checkpoint and dataset it reads is on this machine: one
    FileNotFoundError listing all that is missing and how to get each, before anything is computed."""
    params = cls.from_namespace(namespace)
    if params.profile == "paper":
        require(params.paper_inputs())
    return params
