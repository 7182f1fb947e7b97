"""Data tensors, the contrastive objective, training with per-epoch timing, and evaluation.

Both models of notebook 04 minimise the same symmetric InfoNCE loss (CLIP's): in a batch of
B images and one caption each, with unit embeddings x_i, t_j and temperature s,

    L = 1/2 [ CE(s * X T^T, identity) + CE(s * T X^T, identity) ]

so every image must pick out its own caption among the B in the batch, and vice versa.

Timing is fair by construction: images are decoded and resized once, before any clock
starts (:func:`images_to_tensor`, timed separately), so the first epoch carries no one-off
data cost of the kind that made the Flickr8k report's baseline take 678 s in epoch 1 and 18 s after;
the first epoch is still reported on its own. :func:`fit` trains several models
round-robin, epoch by epoch, on the same batches, so a burst of load from other programs
hits all of them alike.

The report's own objective, training and "test loss" (for the failure analysis) are in
:mod:`.flickr8k_report`; where Flickr8k lives on disk, in :mod:`vlmid.data.flickr8k`.
"""
from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..optim import optimizer_step
from .models import RetrievalConfig, encode_captions, words
from .recall import recall_at_k


# ---------------------------------------------------------------------------------------
# data tensors (the Flickr8k files are read by vlmid.data.flickr8k, for both profiles)
# ---------------------------------------------------------------------------------------
def sample_examples(examples: list, ratio: float, seed: int = 0) -> list:
    """The Flickr8k report's random subsample (ratio 0.4): a fixed-seed random fraction, original order kept."""
    if not (0.0 < ratio <= 1.0):
        raise ValueError(f"sample_ratio={ratio!r} is out of range: it must lie in (0, 1]")
    n = max(1, int(len(examples) * ratio))
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def images_to_tensor(images, size: int) -> torch.Tensor:
    """RGB PIL images -> [N, 3, size, size] floats in [-1, 1] (bilinear resize, the report's normalisation)."""
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


def shared_caption_fraction(data: RetrievalSet) -> float:
    """Fraction of ``data``'s captions whose words (lower-cased, :func:`.models.words`) were also written for
    another image: such a caption cannot single out its image, which caps recall below 1."""
    owners = {}
    for c, i in zip(data.captions, data.caption_image.tolist()):
        owners.setdefault(" ".join(words(c)), set()).add(i)
    return sum(len(owners[" ".join(words(c))]) > 1 for c in data.captions) / len(data.captions)


def data_table(splits: dict, sets: dict):
    """One row per used split: images_in_split (``splits[name]``), images_used, captions, captions_per_image,
    shared_caption_fraction (of the :class:`RetrievalSet` ``sets[name]``), in the order of ``sets``."""
    import pandas as pd

    return pd.DataFrame([dict(split=s, images_in_split=len(splits[s]), images_used=len(d), captions=len(d.captions),
                              captions_per_image=d.captions_per_image, shared_caption_fraction=shared_caption_fraction(d))
                         for s, d in sets.items()])


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
    optimizer_step(loss, optimizer)
    return float(loss.detach())


def step_seconds(model, data: RetrievalSet, batch_size: int) -> float:
    """Seconds of one Adam step of a copy of ``model`` on the first ``batch_size`` images of ``data`` and
    their first captions (notebook 04's time estimate); ``model`` and torch's random state are untouched."""
    import copy

    from ..harness.plan import seconds_per_item

    twin = copy.deepcopy(model)
    optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3)
    n = min(batch_size, len(data))
    first_caption = torch.searchsorted(data.caption_image, torch.arange(n))
    images, ids = data.images[:n], data.text_ids[first_caption]
    return seconds_per_item(lambda: train_step(twin, optimizer, images, ids), 1)


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
    """Train each model (Adam, the Flickr8k report's settings) round-robin one epoch at a time, on identical batches.

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


def training_tables(runs):
    """``runs`` of (seed, name, model, :class:`TrainLog`) -> (curves, epochs) tables.

    curves: seed, model, step (1-based), loss - every training step; epochs: seed, model,
    epoch (1-based), seconds, mean_loss.
    """
    import pandas as pd

    curves = pd.DataFrame([dict(seed=s, model=name, step=i + 1, loss=v)
                           for s, name, _, log in runs for i, v in enumerate(log.step_loss)])
    epochs = pd.DataFrame([dict(seed=s, model=name, epoch=e + 1, seconds=t, mean_loss=l)
                           for s, name, _, log in runs
                           for e, (t, l) in enumerate(zip(log.epoch_seconds, log.epoch_loss))])
    return curves, epochs


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
    """The Flickr8k report's Eq. 6, 1 - pruned / baseline, on a quality where higher is better (here recall@5).

    0: no loss; 0.1: the pruned model keeps 90 % of the baseline's quality; negative: the
    pruned model is *better*. On a loss (lower is better) the sign flips and the value has no
    scale: that is how the report got -704.
    """
    if baseline_quality == 0:
        return float("nan")
    return 1.0 - pruned_quality / baseline_quality



# ---------------------------------------------------------------------------------------
# notebook 04's tables of results
# ---------------------------------------------------------------------------------------
def retrieval_table(runs, data: RetrievalSet, flops):
    """Evaluate every trained model of ``runs`` (seed, name, model, log) on ``data``, in order.

    One row per run: seed, model, keep_ratio, recall@1/5/10 both ways, test_seconds, recall5
    (the mean of the two recall@5), train_seconds, first_epoch_s, later_epoch_s,
    final_train_loss, then flops_measured, flops_ratio and parameters merged from ``flops``
    (:func:`.models.flops_table`) by model name.
    """
    import pandas as pd

    rows = []
    for s, name, m, log in runs:
        r = evaluate(m, data)
        rows.append(dict(seed=s, model=name, keep_ratio=m.keep_ratio, **r, recall5=(r["i2t_R@5"] + r["t2i_R@5"]) / 2,
                         train_seconds=sum(log.epoch_seconds), first_epoch_s=log.first_epoch_seconds,
                         later_epoch_s=log.later_epoch_seconds, final_train_loss=log.epoch_loss[-1]))
    return pd.DataFrame(rows).merge(flops[["model", "flops_measured", "flops_ratio", "parameters"]], on="model")


def per_image_table(runs, data: RetrievalSet, k: int = 5):
    """Every trained model of ``runs`` (seed, name, model, log) scored image by image on ``data``.

    One row per run and test image: seed, model, image (index in ``data``), recall5 (that image's
    share of recall@k averaged over the two directions, :func:`.recall.per_image_recall`; the mean
    of a run's rows is its ``recall5`` in :func:`retrieval_table`). The paired comparisons resample
    these rows.
    """
    import pandas as pd

    from .recall import per_image_recall

    frames = []
    for s, name, m, _ in runs:
        img, txt = embed(m, data)
        score = per_image_recall(img @ txt.t(), data.caption_image, k).numpy()
        frames.append(pd.DataFrame(dict(seed=s, model=name, image=np.arange(len(score)), recall5=score)))
    return pd.concat(frames, ignore_index=True)


def chance_row(n_images: int, captions_per_image: int = 5) -> dict:
    """The row of :func:`retrieval_table` that random scores would earn (:func:`.recall.chance_recall`), seed -1."""
    from .recall import chance_recall

    chance = chance_recall(n_images, captions_per_image)
    return dict(seed=-1, model="chance (random scores)", keep_ratio=float("nan"), **chance,
                recall5=(chance["i2t_R@5"] + chance["t2i_R@5"]) / 2)


def speed_table(flops, quality, per_image: dict, seed: int):
    """Compute against time, per model of seed ``seed``, each time over the baseline's.

    Columns: model, keep_ratio, tokens_kept, token_ratio, flops_ratio (from ``flops``),
    encode_ms_per_image (``per_image`` seconds, :func:`time_image_encoders`), encode_time_ratio,
    epoch_time_ratio (epochs after the first) and test_time_ratio (from ``quality``,
    :func:`retrieval_table`).
    """
    import pandas as pd

    main = quality[quality.seed == seed].set_index("model")
    speed = flops.set_index("model")[["keep_ratio", "tokens_kept", "token_ratio", "flops_ratio"]].copy()
    speed["encode_ms_per_image"] = pd.Series(per_image) * 1e3
    speed["encode_time_ratio"] = speed.encode_ms_per_image / speed.loc["baseline", "encode_ms_per_image"]
    speed["epoch_time_ratio"] = main.later_epoch_s / main.loc["baseline", "later_epoch_s"]
    speed["test_time_ratio"] = main.test_seconds / main.loc["baseline", "test_seconds"]
    return speed.reset_index()


def paired_lossyness(quality) -> list[float]:
    """:func:`lossyness` of recall5 for every row of ``quality``, against the baseline of the same seed."""
    base_r5 = quality[quality.model == "baseline"].set_index("seed").recall5
    return [lossyness(r.recall5, base_r5[r.seed]) for r in quality.itertuples()]
