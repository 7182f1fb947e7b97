"""Training loops of the tiny BLIP (captioning LM loss) and tiny CLIP (supervised warm-start of
the vision tower, then the symmetric contrastive loss). AdamW, warm-up + cosine schedule,
bf16 autocast on CPU only where the CPU has native bf16 (else it is ~10x slower)."""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .tiny import to_pixels


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0: the multiplier of the base learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _optimizer(params, lr, total, warmup, weight_decay=0.05):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, total, warmup))
    return opt, sched


def _update(loss, opt, sched, params):
    """One optimiser step on ``loss``, gradients clipped to norm 1, then the schedule's step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def _tokenize(tok, texts, max_len=32):
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def multi_hot(item_labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Item labels per scene (int [N, k], -1 = empty slot) -> float [N, classes], 1 where the class is present."""
    n_classes = int(item_labels.max()) + 1 if n_classes is None else n_classes
    out = np.zeros((len(item_labels), n_classes), dtype=np.float32)
    rows, cols = np.nonzero(item_labels >= 0)
    out[rows, item_labels[rows, cols]] = 1.0
    return out


def train_blip(model, tok, images: np.ndarray, captions: list[list[str]], steps: int, batch: int = 64,
               lr: float = 1e-3, seed: int = 0, bf16: bool = False, progress: bool = True, log_every: int = 10,
               item_labels: np.ndarray | None = None, aux_weight: float = 1.0):
    """Teacher-forced captioning: each step a random batch of scenes, one of their 5 captions each.

    With ``item_labels`` (int [N, 3], -1 = no item) an auxiliary loss asks a linear head on the
    vision CLS which garments the scene holds (multi-label, binary cross-entropy; the head is
    thrown away). The LM loss alone learned the colour shortcut (probe: colour 1.00, item class
    at chance): colour words are most of the caption tokens and are read off a patch's mean.
    The head needs the *shape* of the items, since colours are drawn independently of them."""
    from tqdm.auto import tqdm

    g = np.random.default_rng([seed, 11])
    flat = [c for caps in captions for c in caps]
    ids, mask = _tokenize(tok, flat)
    keep = int(mask.sum(1).max())  # trim the padding no caption needs
    ids, mask = ids[:, :keep], mask[:, :keep]
    per = len(captions[0])
    params = list(model.parameters())
    head = None
    if item_labels is not None:
        present = torch.as_tensor(multi_hot(item_labels))
        head = torch.nn.Linear(model.config.vision_config.hidden_size, present.shape[1])
        params += list(head.parameters())
    opt, sched = _optimizer(params, lr, steps, max(1, steps // 20))
    model.train()
    curve, t0 = [], time.perf_counter()
    for step in tqdm(range(steps), desc="training BLIP", disable=not progress):
        idx = g.integers(0, len(images), size=batch)
        cap = idx * per + g.integers(0, per, size=batch)
        width = int(mask[cap].sum(1).max())  # pad to this batch's longest caption only
        b_ids, b_mask = ids[cap, :width], mask[cap, :width]
        labels = b_ids.masked_fill(b_mask == 0, -100)
        with _autocast(bf16):
            # BlipForConditionalGeneration.forward, unrolled so that the auxiliary head sees the CLS
            vis = model.vision_model(pixel_values=to_pixels(images[idx]))
            loss = model.text_decoder(input_ids=b_ids, attention_mask=b_mask, encoder_hidden_states=vis.last_hidden_state,
                                      labels=labels, reduction="mean").loss
            total = loss
            if head is not None:
                # summed over the classes (mean over the batch): on the scale of a cross-entropy
                aux = torch.nn.functional.binary_cross_entropy_with_logits(
                    head(vis.pooler_output).float(), present[idx], reduction="sum") / batch
                total = loss + aux_weight * aux
        _update(total, opt, sched, params)
        if step % log_every == 0 or step == steps - 1:
            curve.append((step, loss.item()))  # the captioning loss alone
    model.eval()
    return {"steps": steps, "batch": batch, "lr": lr, "bf16": bf16, "loss_curve": curve,
            "aux_weight": aux_weight if head is not None else 0.0, "seconds": time.perf_counter() - t0}


def train_clip(model, tok, images: np.ndarray, labels: np.ndarray, captions: list[str], warm_steps: int,
               steps: int, batch: int = 128, lr: float = 1e-3, seed: int = 0, bf16: bool = False,
               progress: bool = True, log_every: int = 10, warm_batch: int | None = None, aux_weight: float = 0.0):
    """(1) ``warm_steps`` of supervised item classification on the vision tower (a linear head on
    the pooled CLS, thrown away afterwards): it makes the tower see garments, not just colours;
    (2) ``steps`` of CLIP's symmetric InfoNCE over image-caption pairs, plus ``aux_weight`` times
    the same classification loss (the head kept): the contrastive loss alone can be lowered
    through colour words, and the item keeps being learned while the text tower catches up."""
    from tqdm.auto import tqdm

    g = np.random.default_rng([seed, 12])
    ids, mask = _tokenize(tok, captions)
    keep = int(mask.sum(1).max())
    ids, mask = ids[:, :keep], mask[:, :keep]
    curve, t0 = [], time.perf_counter()
    model.train()
    head = torch.nn.Linear(model.config.vision_config.hidden_size, int(labels.max()) + 1)
    y = torch.as_tensor(labels)
    if warm_steps:
        params = list(model.vision_model.parameters()) + list(head.parameters())
        opt, sched = _optimizer(params, lr, warm_steps, max(1, warm_steps // 20))
        for step in tqdm(range(warm_steps), desc="CLIP vision warm-start", disable=not progress):
            idx = g.integers(0, len(images), size=warm_batch or batch)
            with _autocast(bf16):
                pooled = model.vision_model(pixel_values=to_pixels(images[idx])).pooler_output
                loss = torch.nn.functional.cross_entropy(head(pooled).float(), y[idx])
            _update(loss, opt, sched, params)
            if step % log_every == 0 or step == warm_steps - 1:
                curve.append(("warm", step, loss.item()))
    params = list(model.parameters()) + (list(head.parameters()) if aux_weight else [])
    opt, sched = _optimizer(params, lr, steps, max(1, steps // 20))
    for step in tqdm(range(steps), desc="training CLIP", disable=not progress):
        idx = g.integers(0, len(images), size=batch)
        with _autocast(bf16):
            out = model(input_ids=ids[idx], attention_mask=mask[idx], pixel_values=to_pixels(images[idx]),
                        return_loss=True)
            loss = total = out.loss
            if aux_weight:
                pooled = out.vision_model_output.pooler_output
                total = loss + aux_weight * torch.nn.functional.cross_entropy(head(pooled).float(), y[idx])
        _update(total, opt, sched, params)
        if step % log_every == 0 or step == steps - 1:
            curve.append(("clip", step, loss.item()))
    model.eval()
    return {"warm_steps": warm_steps, "steps": steps, "batch": batch, "lr": lr, "bf16": bf16, "aux_weight": aux_weight,
            "loss_curve": curve, "seconds": time.perf_counter() - t0}
