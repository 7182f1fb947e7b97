"""The paper profile's checkpoints, loaded strictly offline.

Where they are looked for, in order: ``$VLMID_MODELS/<name>`` (a folder written by
``save_pretrained`` or a snapshot copy; ``<name>`` is the hub id, e.g.
``$VLMID_MODELS/Salesforce/blip-image-captioning-base``) and the Hugging Face cache
(``local_files_only=True``; nothing is ever downloaded).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import resolve_device

BLIP_ID = "Salesforce/blip-image-captioning-base"
CLIP_ID = "openai/clip-vit-base-patch16"
QWEN2VL_ID = "Qwen/Qwen2-VL-2B-Instruct"   # notebook 05
ENV_VAR = "VLMID_MODELS"


class ModelNotAvailable(FileNotFoundError):
    """A paper checkpoint is not on this machine (raised once, with where we looked and how to get it)."""


def _hf_cache() -> str:
    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")


def resolve(name: str) -> str:
    """The local folder of ``name`` under ``$VLMID_MODELS``, else ``name`` itself (HF cache lookup)."""
    root = os.environ.get(ENV_VAR)
    if root and (Path(root) / name / "config.json").exists():
        return str(Path(root) / name)
    return name


def _missing(name: str) -> ModelNotAvailable:
    root = os.environ.get(ENV_VAR)
    where = f"${ENV_VAR}/{name} ({Path(root) / name})" if root else f"${ENV_VAR} (not set)"
    return ModelNotAvailable(
        f"the paper checkpoint {name!r} is not on this machine. Looked in {where} and in the Hugging Face "
        f"cache {_hf_cache()} (offline, local_files_only=True). To get it, on a machine with network run "
        f"`huggingface-cli download {name}` (fills the cache; copy it here) or "
        f"`python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{name}').save_pretrained('DIR/{name}')\"` "
        f"and set {ENV_VAR}=DIR. The tiny profile needs none of this.")


def _load(name: str, fn):
    """Call ``fn(path)``; any failure to find the files becomes one clear ModelNotAvailable."""
    path = resolve(name)
    try:
        return fn(path)
    except OSError:  # transformers' way of saying "no such files offline"
        err = _missing(name)
    raise err  # outside the except block: one exception, no chained traceback


def load_paper_captioner(device: str = "auto"):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from .bundles import Captioner

    def fn(path):
        proc = BlipProcessor.from_pretrained(path, local_files_only=True)
        model = BlipForConditionalGeneration.from_pretrained(path, local_files_only=True)
        return model, proc

    model, proc = _load(BLIP_ID, fn)
    return Captioner(model=model.eval().to(resolve_device(device)), processor=proc, prompt="a picture of ",
                     generation=dict(num_beams=3, max_length=20, min_length=5), profile="paper")


def load_paper_clip(device: str = "auto"):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    from .bundles import ClipBundle

    def fn(path):
        ip = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = CLIPModel.from_pretrained(path, local_files_only=True)
        return model, ip, tok

    model, ip, tok = _load(CLIP_ID, fn)
    return ClipBundle(model=model.eval().to(resolve_device(device)), image_processor=ip, tokenizer=tok,
                      image_size=int(model.config.vision_config.image_size), profile="paper")


def qwen2vl_path() -> str:
    """Where notebook 05 should load Qwen2-VL from (``$VLMID_MODELS/<id>`` or the hub id for the cache)."""
    return resolve(QWEN2VL_ID)


def load_paper_qwen2vl(device: str = "auto"):
    """Qwen2-VL-2B-Instruct and its processor as a :class:`~vlmid.models.bundles.Qwen2VLBundle` (float32;
    notebook 05 casts it per method). Its processor builds a video processor that needs torchvision:
    without it this raises an ImportError that says how to install it, never a silent skip."""
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from .bundles import Qwen2VLBundle

    def fn(path):
        try:
            proc = AutoProcessor.from_pretrained(path, local_files_only=True)
        except ImportError as err:
            if "torchvision" not in str(err).lower():
                raise
            raise ImportError(
                f"Qwen2-VL's processor needs torchvision ({err}). Install the build that matches torch 2.13.0: "
                f"`bash run_all.sh --cuda` on a GPU machine (torch 2.13.0 + torchvision 0.28.0), or "
                f"`pip install torchvision==0.28.0` from the same index as your torch") from None
        model = Qwen2VLForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype="float32")
        return model, proc

    model, proc = _load(QWEN2VL_ID, fn)
    return Qwen2VLBundle(model=model.eval().to(resolve_device(device)), processor=proc)
