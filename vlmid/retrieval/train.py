"""Data tensors, the contrastive objective, training with per-epoch timing, and evaluation.

Both models of notebook 04 minimise the same symmetric InfoNCE loss (CLIP's): in a batch of
B images and one caption each, with unit embeddings x_i, t_j and temperature s,

    L = 1/2 [ CE(s * X T^T, identity) + CE(s * T X^T, identity) ]

so every image must pick out its own caption among the B in the batch, and vice versa.

Timing is fair by construction: images are decoded and resized once, before any clock
starts (:func:`images_to_tensor`, timed separately), so the first epoch carries no one-off
data cost of the kind that made seed 003's baseline take 678 s in epoch 1 and 18 s after;
the first epoch is still reported on its own. :func:`fit` trains several models
round-robin, epoch by epoch, on the same batches, so a burst of load from other programs
hits all of them alike.
"""
from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .models import RetrievalConfig, encode_captions
from .recall import recall_at_k


# ---------------------------------------------------------------------------------------
# data: one code path (the Flickr8k on-disk format) for the real set and our scenes
# ---------------------------------------------------------------------------------------
FLICKR8K_SIZES = {"train": 6000, "val": 1000, "test": 1000}  # Flickr8k's official split sizes


def flickr8k_root(profile: str, seed: int = 0, smoke: bool = False) -> Path:
    """paper: ``$VLMID_PAPER_DATA/flickr8k``; tiny: the scenes in Flickr8k format under ``data_dir()``."""
    from ..paths import check_profile, data_dir

    if check_profile(profile) == "paper":
        base = os.environ.get("VLMID_PAPER_DATA")
        if not base:
            raise FileNotFoundError("the paper profile reads Flickr8k from $VLMID_PAPER_DATA/flickr8k: set "
                                    "VLMID_PAPER_DATA to the folder that holds flickr8k/ (Flickr8k_text + "
                                    "Flicker8k_Dataset)")
        return Path(base) / "flickr8k"
    return data_dir() / (f"flickr8k-scenes-smoke-seed{seed}" if smoke else f"flickr8k-scenes-seed{seed}")


def write_scenes_as_flickr8k(seed: int = 0, smoke: bool = False) -> Path:
    """Write the captioned scenes once in Flickr8k's format (its split sizes, at most), return the folder.

    Written to a temporary folder and renamed into place, so a half-written set is never read.
    """
    root = flickr8k_root("tiny", seed, smoke)
    if root.is_dir():
        return root
    from ..data import load_captions
    from ..data.flickr8k import write_flickr8k

    examples, split_of = [], {}
    for split, n in FLICKR8K_SIZES.items():
        part = load_captions("tiny", split=split, n=None if smoke else n, seed=seed, smoke=smoke)
        examples += part
        split_of.update({ex.image_id: split for ex in part})
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_flickr8k(examples, tmp, split_of=split_of)
    os.replace(tmp, root)
    return root


def load_flickr8k_splits(profile: str, seed: int = 0, smoke: bool = False, splits=("train", "test"),
                         max_side: int | None = 224) -> dict:
    """{split: CaptionExamples} read by ``vlmid.data.flickr8k.load_flickr8k`` (tiny: scenes written first).

    ``max_side`` shrinks large photos as they are read (real Flickr8k is ~500 x 375: 6,000 of them
    at full size would take 3 GB of memory; the 64 px scenes are untouched).
    """
    from ..data.flickr8k import load_flickr8k

    root = write_scenes_as_flickr8k(seed, smoke) if profile == "tiny" else flickr8k_root(profile, seed, smoke)
    return {split: load_flickr8k(root, split, max_side=max_side) for split in splits}


def sample_examples(examples: list, ratio: float, seed: int = 0) -> list:
    """Seed 003's random subsample (ratio 0.4): a fixed-seed random fraction, original order kept."""
    if not (0.0 < ratio <= 1.0):
        raise ValueError(f"sample_ratio={ratio!r} is out of range: it must lie in (0, 1]")
    n = max(1, int(len(examples) * ratio))
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def images_to_tensor(images, size: int) -> torch.Tensor:
    """RGB PIL images -> [N, 3, size, size] floats in [-1, 1] (bilinear resize, seed 003's normalisation)."""
    from PIL import Image

    arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
                    for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).div(127.5).sub(1.0).contiguous()


@dataclass
class RetrievalSet:
    """Images as one tensor, every caption as word ids, and which image each caption belongs to."""
    images: torch.Tensor          # [N, 3, S, S]
    text_ids: torch.Tensor        # [M, L]
    caption_image: torch.Tensor   # [M] image index of each caption, sorted (an image's captions are adjacent)
    captions: list[str]
    image_ids: list

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def captions_per_image(self) -> float:
        return len(self.captions) / max(1, len(self))


def make_set(examples: list, vocab: dict[str, int], cfg: RetrievalConfig) -> RetrievalSet:
    """CaptionExamples (image, captions) -> a :class:`RetrievalSet` at ``cfg.image_size``."""
    captions, owner = [], []
    for i, ex in enumerate(examples):
        if not ex.captions:
            raise ValueError(f"image {ex.image_id!r} has no caption")
        captions += list(ex.captions)
        owner += [i] * len(ex.captions)
    return RetrievalSet(images=images_to_tensor([ex.image for ex in examples], cfg.image_size),
                        text_ids=encode_captions(captions, vocab, cfg.max_words),
                        caption_image=torch.tensor(owner), captions=captions,
                        image_ids=[ex.image_id for ex in examples])


def batches(data: RetrievalSet, batch_size: int, generator: torch.Generator):
    """Shuffled batches of (images, one randomly chosen caption of each image); the last partial batch is dropped
    when it has fewer than 2 images (a contrastive batch of one has nothing to contrast)."""
    n = len(data)
    order = torch.randperm(n, generator=generator)
    # a random caption per image: the captions of image i are the positions where caption_image == i
    starts = torch.searchsorted(data.caption_image, torch.arange(n))
    counts = torch.bincount(data.caption_image, minlength=n)
    pick = starts + (torch.rand(n, generator=generator) * counts).long()
    for b in range(0, n, batch_size):
        idx = order[b: b + batch_size]
        if len(idx) < 2:
            break
        yield data.images[idx], data.text_ids[pick[idx]]


# ---------------------------------------------------------------------------------------
# objective and training
# ---------------------------------------------------------------------------------------
def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched (image, caption) unit embeddings."""
    logits = scale * img @ txt.t()
    target = torch.arange(img.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def train_step(model, optimizer, images: torch.Tensor, ids: torch.Tensor) -> float:
    model.train()
    loss = contrastive_loss(*model(images, ids))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@dataclass
class TrainLog:
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)

    @property
    def first_epoch_seconds(self) -> float:
        return self.epoch_seconds[0]

    @property
    def later_epoch_seconds(self) -> float:
        """Mean of epochs 2..n (NaN with a single epoch): the steady-state cost of an epoch."""
        rest = self.epoch_seconds[1:]
        return statistics.fmean(rest) if rest else float("nan")


def fit(models: dict, data: RetrievalSet, epochs: int = 3, batch_size: int = 16, lr: float = 1e-3,
        seed: int = 0, progress: bool = True) -> dict[str, TrainLog]:
    """Train each model (Adam, seed 003's settings) round-robin one epoch at a time, on identical batches.

    Returns name -> :class:`TrainLog` with each epoch's wall time (first epoch separate) and losses.
    """
    from tqdm.auto import tqdm

    if epochs < 1 or batch_size < 2:
        raise ValueError(f"epochs={epochs} must be >= 1 and batch_size={batch_size} >= 2")
    opts = {name: torch.optim.Adam(m.parameters(), lr=lr) for name, m in models.items()}
    logs = {name: TrainLog() for name in models}
    bar = tqdm(total=epochs * len(models), desc="training", disable=not progress)
    for epoch in range(epochs):
        for name, model in models.items():
            gen = torch.Generator().manual_seed(seed * 1000 + epoch)  # same batches for every model
            t0 = time.perf_counter()
            losses = [train_step(model, opts[name], x, t) for x, t in batches(data, batch_size, gen)]
            logs[name].epoch_seconds.append(time.perf_counter() - t0)
            logs[name].epoch_loss.append(statistics.fmean(losses))
            logs[name].step_loss += losses
            bar.set_postfix(model=name, loss=f"{logs[name].epoch_loss[-1]:.3f}")
            bar.update()
    bar.close()
    for m in models.values():
        m.eval()
    return logs


# ---------------------------------------------------------------------------------------
# evaluation and timing
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def embed(model, data: RetrievalSet, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    img = torch.cat([model.encode_image(data.images[i: i + batch_size]) for i in range(0, len(data), batch_size)])
    txt = torch.cat([model.encode_text(data.text_ids[i: i + batch_size])
                     for i in range(0, len(data.text_ids), batch_size)])
    return img, txt


def evaluate(model, data: RetrievalSet, batch_size: int = 256, ks=(1, 5, 10)) -> dict[str, float]:
    """Recall@k both ways on ``data``, plus ``test_seconds``: embedding every image and caption and ranking."""
    embed(model, _head(data, 2), batch_size)  # warm-up, not timed
    t0 = time.perf_counter()
    img, txt = embed(model, data, batch_size)
    out = recall_at_k(img @ txt.t(), data.caption_image, ks)
    out["test_seconds"] = time.perf_counter() - t0
    return out


def _head(data: RetrievalSet, n: int) -> RetrievalSet:
    keep = data.caption_image < n
    return RetrievalSet(data.images[:n], data.text_ids[keep], data.caption_image[keep],
                        [c for c, k in zip(data.captions, keep.tolist()) if k], data.image_ids[:n])


def time_image_encoders(models: dict, images: torch.Tensor, repeats: int = 7, warmup: int = 2,
                        progress: bool = False) -> dict[str, float]:
    """Median seconds per image of each model's image encoder on ``images``.

    Timed with :func:`vlmid.profiling.time_variants`: warmed up, then round-robin (one call of
    each model per round, a different one first each round) so load from other programs falls
    on all models alike; the median discards the rounds it disturbed most.
    """
    from ..profiling import Variant, time_variants

    for m in models.values():
        m.eval()
    variants = [Variant(name, run=lambda m=m: m.encode_image(images)) for name, m in models.items()]
    times = time_variants(variants, repeats=repeats, warmup=warmup, progress=progress)
    return {name: statistics.median(t) / images.shape[0] for name, t in times.items()}


def lossyness(pruned_quality: float, baseline_quality: float) -> float:
    """Seed 003's Eq. 6, 1 - pruned / baseline, on a quality where higher is better (here recall@5).

    0: no loss; 0.1: the pruned model keeps 90 % of the baseline's quality; negative: the
    pruned model is *better*. On a loss (lower is better) the sign flips and the value has no
    scale: that is how seed 003 got -704.
    """
    if baseline_quality == 0:
        return float("nan")
    return 1.0 - pruned_quality / baseline_quality


# ---------------------------------------------------------------------------------------
# seed 003's objective, for the failure analysis
# ---------------------------------------------------------------------------------------
def seed_target(ids: torch.Tensor, width: int) -> torch.Tensor:
    """Seed 003's regression target: the mean of the caption's word ids, copied to every output dimension."""
    return ids.float().mean(dim=1, keepdim=True).expand(-1, width)


def seed_cosine_loss(outputs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """1 - cos(outputs, seed_target): what seed 003 trained AND reported as "test loss" for both models."""
    return 1 - F.cosine_similarity(F.normalize(outputs, dim=-1),
                                   F.normalize(seed_target(ids, outputs.shape[-1]), dim=-1), dim=-1).mean()


def fit_seed_model(model, data: RetrievalSet, epochs: int = 3, batch_size: int = 16, lr: float = 1e-3,
                   seed: int = 0, image_only: bool = True, optimizer=None) -> list[float]:
    """Train one of seed 003's models on seed 003's loss (first caption of each image, as the seed did).

    Pass the same ``optimizer`` to continue training across calls (Adam keeps its moments).
    """
    first = torch.searchsorted(data.caption_image, torch.arange(len(data)))
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    epoch_loss = []
    model.train()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order, losses = torch.randperm(len(data), generator=gen), []
        for b in range(0, len(data), batch_size):
            idx = order[b: b + batch_size]
            ids = data.text_ids[first[idx]]
            out = model(data.images[idx]) if image_only else model(data.images[idx], ids)
            loss = seed_cosine_loss(out, ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        epoch_loss.append(statistics.fmean(losses))
    model.eval()
    return epoch_loss


@torch.no_grad()
def seed_test_loss(model, data: RetrievalSet, batch_size: int = 16, image_only: bool = True) -> float:
    """Seed 003's "test loss": the mean over batches of :func:`seed_cosine_loss` on each image's first caption."""
    first = torch.searchsorted(data.caption_image, torch.arange(len(data)))
    losses = []
    for b in range(0, len(data), batch_size):
        ids = data.text_ids[first[b: b + batch_size]]
        out = model(data.images[b: b + batch_size]) if image_only else model(data.images[b: b + batch_size], ids)
        losses.append(float(seed_cosine_loss(out, ids)))
    return statistics.fmean(losses)
