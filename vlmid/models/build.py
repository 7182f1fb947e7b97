"""Build (train and cache) the tiny BLIP and CLIP: ``python -m vlmid.models.build --seed 0``.

Folder: ``data_dir()/models/tiny-seed<seed>/{blip,clip}/`` (:func:`vlmid.models.zoo.models_root`;
``save_pretrained`` of model and processor/tokenizer) and ``build.json`` (seconds, steps, loss curves, parameter counts).
Smoke mode trains a few steps on a small scene set into ``smoke-seed<seed>/`` in seconds:
those models are for tests and smoke runs only, never for results.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..paths import resolve_device, seed_everything
from .train import TrainConfig
from .zoo import is_built, models_root

# The recipe. Each model trains in its own process, one thread each (two cores, two trainers), in
# two stages, as the real BLIP and CLIP start from a pretrained ViT:
#   1. vision pre-training (vlmid.models.pretrain): token labels + the CLS garment on freshly rendered
#      scenes from the train photos; per-patch labels learn faster than the CLS loss alone. The tower
#      sees the CLS, every garment patch and random background up to `pretrain_keep_tokens` tokens
#      (pretrain.TokenDrop: a scene holds a garment in about 17 of its 64 patches, so a step costs less
#      than half and twice the steps fit in the same time); its last `pretrain_all_tokens_last` steps
#      see every token (FLIP's unmasked tuning), since it is tested on all of them.
#   2. the task (captioning / contrastive) with the pre-training loss kept on as an auxiliary term and
#      the tower at half the learning rate: the task's cheapest signal, the colour words, would
#      otherwise wash the garments out of the tower (without this recipe the tiny BLIP learned colour
#      only).
# Every number was chosen on the validation split or on the clock; docs/methods.md §10 tells
# the builds that led to each, and the shipped models' manifest records the build itself.
@dataclass(frozen=True)
class Recipe:
    """Every number of the build (``build.json``'s ``hyperparameters``); ``FULL`` and ``SMOKE`` below."""
    pretrain_images: int = 120000   # labelled scenes rendered for stage 1 (per model)
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    pretrain_keep_tokens: int = 24  # stage 1: patch tokens shown per scene, garments first (pretrain.TokenDrop)
    pretrain_all_tokens_last: int = 2400  # stage 1: its last steps see all 64 patches (FLIP's unmasked tuning)
    blip_pretrain_steps: int = 18000
    blip_steps: int = 2000          # stage 2: captioning
    blip_batch: int = 64
    blip_lr: float = 1e-3
    blip_scenes: int = 40000        # captioned scenes for stage 2
    blip_aux: float = 0.5           # stage 2: weight of the pre-training loss kept on
    clip_pretrain_steps: int = 18000
    clip_steps: int = 400           # stage 2: contrastive
    clip_batch: int = 128
    clip_lr: float = 1e-3
    clip_images: int = 40000        # single-item image-caption pairs for stage 2
    clip_aux: float = 1.0
    vision_lr_scale: float = 0.5    # stage 2: the towers learn at half the rate
    val_images: int = 1000          # single-item validation images for the pre-training curve

    def pretrain(self, part: str, seed: int, bf16: bool, progress: bool) -> TrainConfig:
        return TrainConfig(getattr(self, f"{part}_pretrain_steps"), self.pretrain_batch, self.pretrain_lr, seed, bf16,
                           keep_tokens=self.pretrain_keep_tokens, all_tokens_last=self.pretrain_all_tokens_last,
                           progress=progress)

    def task(self, part: str, seed: int, bf16: bool, progress: bool) -> TrainConfig:
        return TrainConfig(getattr(self, f"{part}_steps"), getattr(self, f"{part}_batch"), getattr(self, f"{part}_lr"),
                           seed, bf16, aux_weight=getattr(self, f"{part}_aux"), vision_lr_scale=self.vision_lr_scale,
                           progress=progress)


FULL = Recipe()
SMOKE = Recipe(pretrain_images=64, pretrain_batch=8, pretrain_all_tokens_last=1, blip_pretrain_steps=2, blip_steps=3,
               blip_batch=8, blip_scenes=64, clip_pretrain_steps=2, clip_steps=2, clip_batch=8, clip_images=64,
               val_images=16)
# What the scenes of each pre-training set look like: BLIP's match the captioned scenes (40 / 35 /
# 25 % one / two / three items); CLIP's lean to single items, some white, as its task and zero-shot
# set show them.
PRETRAIN_MIX = {"blip": dict(p_items=(0.4, 0.35, 0.25), white_p=0.1),
                "clip": dict(p_items=(0.6, 0.25, 0.15), white_p=0.3)}


def bf16_helps() -> bool:
    """bf16 autocast speeds up CPU training only with native bf16 instructions; without them
    it was 10x slower here, so it is used only when the CPU has avx512_bf16 or AMX."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _val_items(seed: int, n: int):
    """Single items from the *validation* photos at random colour, size and place: the signal the
    schedule is judged on during training (never the test photos)."""
    from ..data.scenes import _photo_pools, single_items

    photos, labels = _photo_pools("val", seed)
    rng = np.random.default_rng([seed, 41])
    pick = rng.permutation(len(labels))[:n]
    return {"images": single_items(photos[pick], labels[pick], rng, white_p=0.0).images, "labels": labels[pick]}


def _train_part(part: str, seed: int, smoke: bool, hp: Recipe, progress: bool) -> dict:
    """Train one model (``"blip"`` or ``"clip"``) and save it under the build folder."""
    import torch
    from transformers import BlipForConditionalGeneration, CLIPModel

    from ..data.scenes import _photo_pools, single_items
    from ..profiling import n_parameters
    from .pretrain import labelled_scenes
    from .tiny import TinyConfig, blip_config, blip_processor, clip_config, clip_image_processor
    from .tokenizer import build_tokenizer
    from .train import pretrain_vision, train_blip, train_clip

    folder = models_root(seed, smoke)
    cpu0 = time.process_time()
    seed_everything(seed)
    torch.set_num_threads(1)
    tok = build_tokenizer(folder / "tokenizer")
    cfg = TinyConfig()
    bf16 = bf16_helps()
    photos, labels = _photo_pools("train", seed)
    val = _val_items(seed, hp.val_images)
    # the pre-training scenes: fresh draws from the train photos (its own random stream per model)
    t_data = time.perf_counter()
    pre = labelled_scenes(photos, labels, hp.pretrain_images, np.random.default_rng([seed, 51, part == "clip"]),
                          progress=progress, **PRETRAIN_MIX[part])
    if part == "blip":
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(blip_config(tok, cfg))
        # captioned scenes for stage 2: the train split's distribution, rendered with their labels
        data = labelled_scenes(photos, labels, hp.blip_scenes, np.random.default_rng([seed, 52]),
                               captions=True, progress=progress)
        t_data = time.perf_counter() - t_data
        heads, log = pretrain_vision(model.vision_model, pre, hp.pretrain(part, seed, bf16, progress), val=val)
        del pre
        log.update(train_blip(model, tok, data, hp.task(part, seed, bf16, progress), heads=heads))
        model.save_pretrained(folder / "blip")
        blip_processor(tok, cfg).save_pretrained(folder / "blip")
    else:
        # single Fashion-MNIST train items at random colour, size and place, one grammar caption each
        rng = np.random.default_rng([seed, 21])
        pick = rng.permutation(len(labels))[: hp.clip_images] if hp.clip_images <= len(labels) \
            else rng.integers(0, len(labels), size=hp.clip_images)
        images, _, caps = single_items(photos[pick], labels[pick], rng)
        t_data = time.perf_counter() - t_data
        torch.manual_seed(seed + 1)
        model = CLIPModel(clip_config(tok, cfg))
        model.set_attn_implementation("eager")  # faster here than sdpa (docs/methods.md §10)
        heads, log = pretrain_vision(model.vision_model, pre, hp.pretrain(part, seed, bf16, progress), val=val)
        del pre
        log.update(train_clip(model, tok, images, labels[pick], caps, hp.task(part, seed, bf16, progress), heads=heads))
        model.set_attn_implementation("sdpa")  # saved with transformers' default, as a downloaded CLIP comes
        model.save_pretrained(folder / "clip")
        clip_image_processor(cfg).save_pretrained(folder / "clip")
        tok.save_pretrained(folder / "clip")
    log["params"] = n_parameters(model)
    log["data_seconds"] = t_data
    # CPU seconds of this trainer: on a busy machine the wall time says little, this is what it cost
    log["cpu_seconds"] = time.process_time() - cpu0
    log["seconds_per_step"] = (log["seconds"] + log["pretrain_seconds"]) / max(1, log["steps"] + log["pretrain_steps"])
    return log


def build(seed: int = 0, smoke: bool = False, force: bool = False, progress: bool = True,
          parallel: bool | None = None, measure: bool = True, **overrides) -> Path:
    """Train both tiny models from nothing (scenes included), save them and measure their quality
    gates (``measure``: into ``build.json``'s ``metrics``); returns the folder.

    ``parallel`` (default: all but smoke builds) trains BLIP and CLIP in two processes at once;
    a smoke build trains in this process (starting two Pythons would cost more than it trains)."""
    from ..data.scenes import build_scenes
    from ..harness.results import git_commit, host_info, write_json
    from .tiny import TinyConfig

    folder = models_root(seed, smoke)
    if is_built(seed, smoke) and not force:
        return folder
    if force and (folder / "build.json").exists():
        (folder / "build.json").unlink()  # an interrupted rebuild must not pass for a complete one
    hp = replace(SMOKE if smoke else FULL, **overrides)
    t0 = time.perf_counter()
    build_scenes(seed, smoke)
    t_data = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hp.json").write_text(json.dumps(asdict(hp)))
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
            "parallel": parallel, "bf16": bf16_helps(), "hyperparameters": asdict(hp), "config": TinyConfig().__dict__,
            "commit": git_commit(), "host": host_info(),
            "blip": logs["blip"], "clip": logs["clip"]}
    if measure:
        # the quality gates on the test data, as notebook 00 measures them, and on the small fixed
        # subset that the tests re-measure on shipped models (vlmid.models.quality)
        from . import quality
        from .bundles import load_tiny_captioner, load_tiny_clip

        t1 = time.perf_counter()
        device = resolve_device("auto")
        cap = load_tiny_captioner(folder / "blip", device)
        clip = load_tiny_clip(folder / "clip", device)
        info["metrics"] = quality.measure(cap, clip, seed, smoke, **(quality.SMOKE if smoke else quality.FULL))
        info["subset_metrics"] = quality.measure(cap, clip, seed, smoke, cider=False,
                                                 **(quality.SMOKE if smoke else quality.SUBSET))
        info["eval_seconds"] = time.perf_counter() - t1
    write_json(folder / "build.json", info)  # last: its presence marks a complete build
    return folder


def build_info(seed: int = 0, smoke: bool = False) -> dict:
    return json.loads((models_root(seed, smoke) / "build.json").read_text())


def training_curves(info: dict):
    """The build record's loss curves as one long table (model, stage, step, loss; the task's steps
    numbered after the pre-training's) and the pre-training's validation accuracy (model, step,
    accuracy): what notebook 00 draws."""
    import pandas as pd

    rows, val = [], []
    for part, name, task in (("blip", "BLIP", "captioning LM"), ("clip", "CLIP", "contrastive")):
        log = info[part]
        offset = log.get("pretrain_steps", 0)
        rows += [{"model": name, "stage": "vision pre-training", "step": s, "loss": l}
                 for _, s, l in log.get("pretrain_curve", [])]
        for point in log["loss_curve"]:
            s, l = point[-2:]  # BLIP logs (step, loss), CLIP (stage, step, loss)
            rows.append({"model": name, "stage": task, "step": offset + s, "loss": l})
        val += [{"model": name, "step": s, "accuracy": a} for s, a in log.get("pretrain_val_accuracy", [])]
    return pd.DataFrame(rows), pd.DataFrame(val, columns=["model", "step", "accuracy"])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train the tiny BLIP and CLIP from nothing and measure their quality.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--publish", action="store_true",
                    help="then ship them: copy into checkpoints/tiny-seed<N>/ with a manifest (maintainers)")
    ap.add_argument("--part", choices=["blip", "clip"], help=argparse.SUPPRESS)  # one model (used by build)
    a = ap.parse_args(argv)
    if a.part:
        from ..harness.results import write_json
        folder = models_root(a.seed, a.smoke)
        hp = Recipe(**json.loads((folder / "hp.json").read_text()))
        write_json(folder / f"{a.part}.json", _train_part(a.part, a.seed, a.smoke, hp, progress=True))
        return
    folder = build(a.seed, a.smoke, force=a.force)
    info = build_info(a.seed, a.smoke)
    print(f"built in {info['build_seconds']:.0f} s -> {folder}")
    for k, v in info.get("metrics", {}).items():
        print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
    if a.publish:
        from .zoo import publish
        print(f"shipped -> {publish(folder, a.seed, info['metrics'])}")


if __name__ == "__main__":
    main()
