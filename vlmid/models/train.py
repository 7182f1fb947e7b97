"""Training loops of the tiny BLIP and CLIP, each in two stages as the real models are made:

1. :func:`pretrain_vision`: the vision tower learns the garments (token labels + CLS, see
   :mod:`vlmid.models.pretrain`), as BLIP and CLIP start from a pretrained ViT;
2. :func:`train_blip`: captioning (teacher-forced LM loss) / :func:`train_clip`: CLIP's symmetric
   contrastive loss, with the pre-training loss kept on as an auxiliary term so that the task's
   cheapest signal (the colour words) does not wash the garments out of the tower.

AdamW, warm-up + cosine schedule, gradients clipped to norm 1 (:func:`vlmid.optim.optimizer_step`),
bf16 autocast on CPU only where the CPU has native bf16 (else it is ~10x slower)."""
from __future__ import annotations

from dataclasses import dataclass

import math
import time

import numpy as np
import torch

from ..optim import optimizer_step
from .tiny import to_pixels


@dataclass(frozen=True)
class TrainConfig:
    """One training stage: AdamW with a cosine schedule after a 5 % warm-up, on random batches."""
    steps: int
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    bf16: bool = False           # bf16 autocast (where the CPU has the instructions: vlmid.models.build.bf16_helps)
    aux_weight: float = 0.0      # stage 2: weight of the pre-training heads' loss, kept on beside the task's
    vision_lr_scale: float = 1.0  # stage 2: the vision tower's (and heads') learning rate, as a fraction of lr
    keep_tokens: int | None = None  # stage 1: patch tokens shown per image, garments first (pretrain.TokenDrop); None: all
    all_tokens_last: int = 0     # stage 1 with keep_tokens: its last steps see every token (FLIP's unmasked tuning)
    log_every: int = 10          # loss-curve resolution, in steps
    progress: bool = True


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0: the multiplier of the base learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _optimizer(params, lr, total, warmup, weight_decay=0.05):
    """AdamW over ``params`` (tensors, or parameter groups whose ``lr_scale`` multiplies ``lr``)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**{k: v for k, v in g.items() if k != "lr_scale"}, "lr": lr * g.get("lr_scale", 1.0)}
                  for g in params]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, total, warmup))
    return opt, sched


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def _tokenize(tok, texts, max_len=32):
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def single_item_accuracy(vision_model, heads, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    """Accuracy of the pre-training CLS head on single-item images (a validation signal during training)."""
    was = vision_model.training
    vision_model.eval()
    pred = torch.cat([heads.predict(vision_model(pixel_values=to_pixels(images[i:i + batch])))
                      for i in range(0, len(images), batch)])
    vision_model.train(was)
    return float((pred.numpy() == labels).mean())


def pretrain_vision(vision_model, data: dict, cfg: TrainConfig, val: dict | None = None, val_every: int = 1000,
                    desc: str = "vision pre-training"):
    """Stage 1: supervised garment recognition on ``data`` (from :func:`~vlmid.models.pretrain.labelled_scenes`).

    Returns the trained :class:`~vlmid.models.pretrain.VisionHeads` (kept for stage 2's auxiliary
    loss) and the log. ``val``: single-item validation images and labels (``images``, ``labels``),
    whose accuracy is logged every ``val_every`` steps: what the schedule was chosen on."""
    from tqdm.auto import tqdm

    from contextlib import nullcontext

    from .pretrain import TokenDrop, VisionHeads

    steps, batch, lr, bf16, log_every = cfg.steps, cfg.batch, cfg.lr, cfg.bf16, cfg.log_every
    g = np.random.default_rng([cfg.seed, 13])
    heads = VisionHeads(vision_model.config.hidden_size)
    params = list(vision_model.parameters()) + list(heads.parameters())
    opt, sched = _optimizer(params, lr, steps, max(1, steps // 20))
    patch_labels, present = torch.as_tensor(data["patch_labels"]), torch.as_tensor(data["present"])
    drop = TokenDrop(vision_model, cfg.keep_tokens, cfg.seed) if cfg.keep_tokens else None
    vision_model.train()
    curve, val_curve, t0 = [], [], time.perf_counter()
    for step in tqdm(range(steps), desc=desc, disable=not cfg.progress):
        idx = g.integers(0, len(present), size=batch)
        dropping = drop is not None and step < steps - cfg.all_tokens_last
        with drop.subset(patch_labels[idx]) if dropping else nullcontext(patch_labels[idx]) as labels, _autocast(bf16):
            loss = heads.loss(vision_model(pixel_values=to_pixels(data["images"][idx])), labels, present[idx])
        optimizer_step(loss, opt, sched, clip_norm=1.0)
        if step % log_every == 0 or step == steps - 1:
            curve.append(("pretrain", step, loss.item()))
        if val is not None and (step + 1) % val_every == 0 or (val is not None and step == steps - 1):
            val_curve.append((step + 1, single_item_accuracy(vision_model, heads, val["images"], val["labels"])))
    if drop:
        drop.remove()
    return heads, {"pretrain_steps": steps, "pretrain_batch": batch, "pretrain_lr": lr, "pretrain_images": len(present),
                   "pretrain_keep_tokens": cfg.keep_tokens, "pretrain_all_tokens_last": cfg.all_tokens_last,
                   "pretrain_curve": curve, "pretrain_val_accuracy": val_curve,
                   "pretrain_seconds": time.perf_counter() - t0}


def train_blip(model, tok, data: dict, cfg: TrainConfig, heads=None):
    """Stage 2 of BLIP: teacher-forced captioning of ``data`` (``labelled_scenes(..., captions=True)``),
    each step a random batch of scenes and one of their 5 captions each.

    With the pre-training ``heads``, ``cfg.aux_weight`` times their loss stays on and the vision tower
    learns at ``cfg.vision_lr_scale`` times the rate: the LM loss alone pulls the tower towards
    the colour words, which are most of the caption tokens and can be read off a patch's mean."""
    from tqdm.auto import tqdm

    steps, batch, lr, bf16, log_every = cfg.steps, cfg.batch, cfg.lr, cfg.bf16, cfg.log_every
    aux_weight, vision_lr_scale = cfg.aux_weight, cfg.vision_lr_scale
    g = np.random.default_rng([cfg.seed, 11])
    captions = data["captions"]
    flat = [c for caps in captions for c in caps]
    ids, mask = _tokenize(tok, flat)
    keep = int(mask.sum(1).max())  # trim the padding no caption needs
    ids, mask = ids[:, :keep], mask[:, :keep]
    per = len(captions[0])
    vision = list(model.vision_model.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("vision_model.")]
    groups = [{"params": vision, "lr_scale": vision_lr_scale}, {"params": rest}]
    if heads is not None:
        groups.append({"params": list(heads.parameters()), "lr_scale": vision_lr_scale})
        patch_labels, present = torch.as_tensor(data["patch_labels"]), torch.as_tensor(data["present"])
    opt, sched = _optimizer(groups, lr, steps, max(1, steps // 20))
    model.train()
    curve, t0 = [], time.perf_counter()
    for step in tqdm(range(steps), desc="training BLIP", disable=not cfg.progress):
        idx = g.integers(0, len(captions), size=batch)
        cap = idx * per + g.integers(0, per, size=batch)
        width = int(mask[cap].sum(1).max())  # pad to this batch's longest caption only
        b_ids, b_mask = ids[cap, :width], mask[cap, :width]
        labels = b_ids.masked_fill(b_mask == 0, -100)
        with _autocast(bf16):
            # BlipForConditionalGeneration.forward, unrolled so that the auxiliary heads see the tower
            vis = model.vision_model(pixel_values=to_pixels(data["images"][idx]))
            loss = model.text_decoder(input_ids=b_ids, attention_mask=b_mask, encoder_hidden_states=vis.last_hidden_state,
                                      labels=labels, reduction="mean").loss
            total = loss
            if heads is not None and aux_weight:
                total = loss + aux_weight * heads.loss(vis, patch_labels[idx], present[idx])
        optimizer_step(total, opt, sched, clip_norm=1.0)
        if step % log_every == 0 or step == steps - 1:
            curve.append((step, loss.item()))  # the captioning loss alone
    model.eval()
    return {"steps": steps, "batch": batch, "lr": lr, "bf16": bf16, "loss_curve": curve, "train_scenes": len(captions),
            "aux_weight": aux_weight if heads is not None else 0.0, "vision_lr_scale": vision_lr_scale,
            "seconds": time.perf_counter() - t0}


def train_clip(model, tok, images: np.ndarray, labels: np.ndarray, captions: list[str], cfg: TrainConfig,
               heads=None):
    """Stage 2 of CLIP: the symmetric InfoNCE over single-item image-caption pairs, plus ``cfg.aux_weight``
    times the cross-entropy of the pre-training CLS head on the item's class (the head kept from
    stage 1): the contrastive loss alone can be lowered through colour words, and the garment
    keeps being learned while the text tower catches up."""
    from tqdm.auto import tqdm

    steps, batch, lr, bf16, log_every = cfg.steps, cfg.batch, cfg.lr, cfg.bf16, cfg.log_every
    aux_weight, vision_lr_scale = cfg.aux_weight, cfg.vision_lr_scale
    g = np.random.default_rng([cfg.seed, 12])
    ids, mask = _tokenize(tok, captions)
    keep = int(mask.sum(1).max())
    ids, mask = ids[:, :keep], mask[:, :keep]
    y = torch.as_tensor(labels)
    vision = list(model.vision_model.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("vision_model.")]
    groups = [{"params": vision, "lr_scale": vision_lr_scale}, {"params": rest}]
    if heads is not None:
        groups.append({"params": list(heads.cls.parameters()), "lr_scale": vision_lr_scale})
    opt, sched = _optimizer(groups, lr, steps, max(1, steps // 20))
    model.train()
    curve, t0 = [], time.perf_counter()
    for step in tqdm(range(steps), desc="training CLIP", disable=not cfg.progress):
        idx = g.integers(0, len(images), size=batch)
        with _autocast(bf16):
            out = model(input_ids=ids[idx], attention_mask=mask[idx], pixel_values=to_pixels(images[idx]),
                        return_loss=True)
            loss = total = out.loss
            if heads is not None and aux_weight:
                pooled = out.vision_model_output.pooler_output
                total = loss + aux_weight * torch.nn.functional.cross_entropy(heads.cls(pooled).float(), y[idx])
        optimizer_step(total, opt, sched, clip_norm=1.0)
        if step % log_every == 0 or step == steps - 1:
            curve.append(("clip", step, loss.item()))
    model.eval()
    return {"steps": steps, "batch": batch, "lr": lr, "bf16": bf16, "aux_weight": aux_weight if heads is not None else 0.0,
            "vision_lr_scale": vision_lr_scale, "loss_curve": curve, "seconds": time.perf_counter() - t0}
