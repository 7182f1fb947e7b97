"""The models every notebook uses, behind two calls.

    cap = load_captioner("tiny", seed=0)   # BlipForConditionalGeneration + BlipProcessor (+ prompt, decoding)
    clip = load_clip("tiny", seed=0)       # CLIPModel + image processor + tokenizer

``tiny``: small BLIP and CLIP trained by this repository on Fashion-MNIST scenes. By default
the shipped ones in ``checkpoints/tiny-seed<N>/``, checked against their manifest's SHA-256;
``$VLMID_MODEL_SOURCE=built`` uses the ones trained here in ``data/models/`` instead, and a seed
that ships none is trained here, announced first. ``model_source(seed, smoke)`` says which
(:mod:`vlmid.models.zoo`: where the models come from; :mod:`vlmid.models.build`: how they are
trained). ``paper``: Salesforce/blip-image-captioning-base and openai/clip-vit-base-patch16 from
``$VLMID_MODELS`` or the Hugging Face cache, offline.
"""
from __future__ import annotations

from pathlib import Path

from ..paths import check_profile, resolve_device
from .bundles import Captioner, ClipBundle, load_tiny_captioner, load_tiny_clip
from .paper import BLIP_ID, CLIP_ID, QWEN2VL_ID, ModelNotAvailable, load_paper_qwen2vl as load_qwen2vl, qwen2vl_path

__all__ = ["load_captioner", "load_clip", "Captioner", "ClipBundle", "ModelNotAvailable",
           "BLIP_ID", "CLIP_ID", "QWEN2VL_ID", "qwen2vl_path", "load_qwen2vl", "tiny_folder", "model_source"]


_ANNOUNCED: set = set()


def model_source(seed: int = 0, smoke: bool = False) -> str:
    """"shipped" or "built": where the tiny models of ``seed`` come from (:func:`vlmid.models.zoo.model_source`).
    (The zoo is imported on use, so that ``python -m vlmid.models.zoo`` runs a module not yet imported.)"""
    from .zoo import model_source as source

    return source(seed, smoke)


def tiny_folder(seed: int = 0, smoke: bool = False, build_if_missing: bool = True):
    """The folder of the tiny models of ``seed`` (see :func:`model_source` for which one).

    Shipped models are verified against their manifest (once per process) and never trained.
    Built models are trained into ``data/models/`` if missing, after a message saying so."""
    from .zoo import is_built, models_root, rebuild_notice, shipped_folder, verify

    source = model_source(seed, smoke)
    if source == "shipped":
        folder = shipped_folder(seed)
        verify(folder)  # CheckpointError (names the file and the fix) on any mismatch
        return folder
    if source == "built" and (seed, source) not in _ANNOUNCED and is_built(seed, smoke):
        _ANNOUNCED.add((seed, source))
        why = ("VLMID_MODEL_SOURCE=built" if shipped_folder(seed) is not None
               else f"no shipped models for seed {seed}")
        print(f"tiny models for seed {seed}: using the ones built here in {models_root(seed, smoke)} ({why})")
    if not is_built(seed, smoke):
        if not build_if_missing:
            raise FileNotFoundError(f"no tiny models in {models_root(seed, smoke)}")
        import fcntl

        lock = models_root(seed, smoke).parent / f".{models_root(seed, smoke).name}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # another process may be building the same models: wait for it
            if not is_built(seed, smoke):
                if smoke:
                    print(f"smoke models for seed {seed} not found: building them into "
                          f"{models_root(seed, smoke)} (seconds; for tests only)")
                elif shipped_folder(seed) is not None:  # VLMID_MODEL_SOURCE=built
                    print(rebuild_notice(seed, f"VLMID_MODEL_SOURCE=built and no models built here for seed {seed}"),
                          flush=True)
                else:
                    print(rebuild_notice(seed), flush=True)
                _ANNOUNCED.add((seed, source))
                from . import build  # training needs torch's trainers: imported only when it happens

                build.build(seed, smoke)
    return models_root(seed, smoke)


def load_captioner(profile: str = "tiny", seed: int = 0, smoke: bool = False, device: str = "auto",
                   folder=None) -> Captioner:
    """The captioner of ``profile`` on ``device`` ("auto": CUDA when available, else CPU); ``folder``: a tiny
    models folder to load instead of the seed's."""
    check_profile(profile)
    device = resolve_device(device)
    if profile == "paper":
        from .paper import load_paper_captioner
        return load_paper_captioner(device)
    return load_tiny_captioner(Path(folder or tiny_folder(seed, smoke)) / "blip", device)


def load_clip(profile: str = "tiny", seed: int = 0, smoke: bool = False, device: str = "auto",
              folder=None) -> ClipBundle:
    """The CLIP of ``profile`` on ``device`` ("auto": CUDA when available, else CPU); ``folder``: a tiny models
    folder to load instead of the seed's."""
    check_profile(profile)
    device = resolve_device(device)
    if profile == "paper":
        from .paper import load_paper_clip
        return load_paper_clip(device)
    return load_tiny_clip(Path(folder or tiny_folder(seed, smoke)) / "clip", device)
