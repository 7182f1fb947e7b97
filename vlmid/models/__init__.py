"""The models every notebook uses, behind two calls.

    cap = load_captioner("tiny", seed=0)   # BlipForConditionalGeneration + BlipProcessor (+ prompt, decoding)
    clip = load_clip("tiny", seed=0)       # CLIPModel + image processor + tokenizer

``tiny``: small BLIP and CLIP trained here on Fashion-MNIST scenes (built on first use and
cached under ``data/models/``). ``paper``: Salesforce/blip-image-captioning-base and
openai/clip-vit-base-patch16 from ``$VLMID_MODELS`` or the Hugging Face cache, offline.
"""
from __future__ import annotations

from ..paths import check_profile
from .bundles import Captioner, ClipBundle
from .paper import BLIP_ID, CLIP_ID, QWEN2VL_ID, ModelNotAvailable, qwen2vl_path

__all__ = ["load_captioner", "load_clip", "Captioner", "ClipBundle", "ModelNotAvailable",
           "BLIP_ID", "CLIP_ID", "QWEN2VL_ID", "qwen2vl_path", "tiny_folder"]


def tiny_folder(seed: int = 0, smoke: bool = False, build_if_missing: bool = True):
    """The folder of the tiny models of ``seed``; trains them first if they are not cached."""
    from .build import build, is_built, models_root

    if not is_built(seed, smoke):
        if not build_if_missing:
            raise FileNotFoundError(f"no tiny models in {models_root(seed, smoke)}")
        import fcntl

        lock = models_root(seed, smoke).parent / f".{models_root(seed, smoke).name}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # another process may be building the same models: wait for it
            if not is_built(seed, smoke):
                print(f"tiny models for seed {seed}{' (smoke)' if smoke else ''} not found: building them into "
                      f"{models_root(seed, smoke)} (a few minutes; done once)")
                build(seed, smoke)
    return models_root(seed, smoke)


def load_captioner(profile: str = "tiny", seed: int = 0, smoke: bool = False, device: str = "cpu") -> Captioner:
    check_profile(profile)
    if profile == "paper":
        from .paper import load_paper_captioner
        return load_paper_captioner(device)
    from transformers import BlipForConditionalGeneration, BlipProcessor

    folder = tiny_folder(seed, smoke) / "blip"
    model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval().to(device)
    proc = BlipProcessor.from_pretrained(folder, local_files_only=True)
    return Captioner(model=model, processor=proc, prompt="",
                     generation=dict(num_beams=3, max_length=20, min_length=5), profile="tiny")


def load_clip(profile: str = "tiny", seed: int = 0, smoke: bool = False, device: str = "cpu") -> ClipBundle:
    check_profile(profile)
    if profile == "paper":
        from .paper import load_paper_clip
        return load_paper_clip(device)
    from transformers import BertTokenizer, CLIPImageProcessorPil, CLIPModel

    folder = tiny_folder(seed, smoke) / "clip"
    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval().to(device)
    ip = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
    tok = BertTokenizer.from_pretrained(folder, local_files_only=True)
    return ClipBundle(model=model, image_processor=ip, tokenizer=tok,
                      image_size=int(model.config.vision_config.image_size), profile="tiny")
