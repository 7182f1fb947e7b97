"""The paper profile's checkpoints, loaded strictly offline.

Where they are looked for, in order: ``$VLMID_MODELS/<name>`` (a folder written by
``save_pretrained`` or a snapshot copy; ``<name>`` is the hub id, e.g.
``$VLMID_MODELS/Salesforce/blip-image-captioning-base``) and the Hugging Face cache
(``local_files_only=True``; nothing is ever downloaded).
"""
from __future__ import annotations

import functools
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


@functools.cache
def image_text_processor_class():
    """``Qwen2VLProcessor`` for images and text only: the same class without its video processor.

    transformers builds Qwen2-VL's video processor from torchvision, which the CPU install of this
    repository cannot have (PyPI's torchvision wheel is built against the CUDA torch). Captioning
    needs no video: this subclass takes the image processor and the tokenizer alone (a processor's
    parts are the arguments of its ``__init__``) and otherwise is the real processor: its chat
    template, its image placeholder expansion and its batching are transformers' own."""
    from transformers import Qwen2VLProcessor

    class Qwen2VLImageTextProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return Qwen2VLImageTextProcessor


def _chat_template(path: str, tokenizer) -> str | None:
    """The processor's chat template as the checkpoint ships it (``chat_template.json`` or
    ``chat_template.jinja``), else the tokenizer's."""
    import json

    from transformers.utils import cached_file

    for name in ("chat_template.jinja", "chat_template.json"):
        found = cached_file(path, name, local_files_only=True, _raise_exceptions_for_missing_entries=False)
        if found:
            text = Path(found).read_text(encoding="utf-8")
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return getattr(tokenizer, "chat_template", None)


def qwen2vl_processor(path: str):
    """Qwen2-VL's processor from the checkpoint's files: ``AutoProcessor`` where torchvision is installed
    (the GPU install), else :func:`image_text_processor_class` built from the same files (the
    checkpoint's ``preprocessor_config.json`` through transformers' PIL image processor, its tokenizer
    and its chat template), with a note that says so."""
    from transformers import AutoProcessor, AutoTokenizer, Qwen2VLImageProcessorPil

    try:
        return AutoProcessor.from_pretrained(path, local_files_only=True)
    except ImportError as err:
        if "torchvision" not in str(err).lower():
            raise
    print("Qwen2-VL: torchvision is not installed, so its video processor cannot be built; images and text "
          "go through the same processor without it (transformers' PIL image processor). "
          "`bash run_all.sh --cuda` installs torchvision 0.28.0 with the CUDA torch.")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return image_text_processor_class()(image_processor=Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True),
                                         tokenizer=tok, chat_template=_chat_template(path, tok))


def load_paper_qwen2vl(device: str = "auto"):
    """Qwen2-VL-2B-Instruct and its processor (:func:`qwen2vl_processor`) as a
    :class:`~vlmid.models.bundles.Qwen2VLBundle` (float32; notebook 05 casts it per method)."""
    from transformers import Qwen2VLForConditionalGeneration

    from .bundles import Qwen2VLBundle

    def fn(path):
        model = Qwen2VLForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype="float32")
        return model, qwen2vl_processor(path)

    model, proc = _load(QWEN2VL_ID, fn)
    return Qwen2VLBundle(model=model.eval().to(resolve_device(device)), processor=proc)
