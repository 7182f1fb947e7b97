"""Image-text retrieval recall@k with several captions per image (Flickr8k and our scenes: 5).

The similarity matrix ``sim`` is [n_images, n_captions]; ``caption_image[j]`` is the image
caption j describes.

- image -> text: an image is a hit at k if ANY of its captions is among the k captions that
  score highest for it (so with 5 captions, R@k is not "k out of 5").
- text -> image: a caption is a hit at k if its image is among the k images that score highest for it.

Ties count against the model: the rank of the right answer is the number of wrong answers
that score *at least as high*. A model that gives every pair the same score thus gets
recall 0, never a perfect score, and no result depends on how a sort breaks ties.
"""
from __future__ import annotations

import math

import numpy as np
import torch

KS = (1, 5, 10)


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def image_to_text_ranks(sim, caption_image) -> torch.Tensor:
    """For each image: 0-based rank of its best caption (how many wrong captions score >= it)."""
    sim, owner = _as_tensor(sim).float(), _as_tensor(caption_image).long()
    n_img = sim.shape[0]
    mine = owner.unsqueeze(0) == torch.arange(n_img).unsqueeze(1)          # [I, C] True for its own captions
    if not bool(mine.any(1).all()):
        raise ValueError("every image needs at least one caption in caption_image")
    best = sim.masked_fill(~mine, float("-inf")).max(dim=1).values         # score of its best caption
    return ((sim >= best.unsqueeze(1)) & ~mine).sum(dim=1)


def text_to_image_ranks(sim, caption_image) -> torch.Tensor:
    """For each caption: 0-based rank of its image (how many other images score >= it)."""
    sim, owner = _as_tensor(sim).float(), _as_tensor(caption_image).long()
    right = sim.gather(0, owner.unsqueeze(0)).squeeze(0)                   # [C] score of the true image
    wrong = torch.ones_like(sim, dtype=torch.bool)
    wrong[owner, torch.arange(sim.shape[1])] = False
    return ((sim >= right.unsqueeze(0)) & wrong).sum(dim=0)


def recall_at_k(sim, caption_image, ks=KS) -> dict[str, float]:
    """{'i2t_R@1': ..., 't2i_R@1': ..., ...} in [0, 1] for every k in ``ks``."""
    sim, owner = _as_tensor(sim), _as_tensor(caption_image)
    if sim.ndim != 2 or sim.shape[1] != owner.numel():
        raise ValueError(f"sim must be [n_images, n_captions] with n_captions == len(caption_image); "
                         f"got {tuple(sim.shape)} and {owner.numel()}")
    r_i2t, r_t2i = image_to_text_ranks(sim, owner), text_to_image_ranks(sim, owner)
    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = float((r_i2t < k).float().mean())
        out[f"t2i_R@{k}"] = float((r_t2i < k).float().mean())
    return out


def per_image_recall(sim, caption_image, k: int = 5) -> torch.Tensor:
    """[n_images] each test image's share of recall@k averaged over the two directions: the items a
    paired bootstrap resamples (:mod:`vlmid.uncertainty`).

    Image i scores ``(hit_i2t + hits_t2i * I / C) / 2``: its own image -> text hit (0 or 1) and the
    text -> image hits of its captions, weighted so that the mean over images is exactly
    ``(i2t_R@k + t2i_R@k) / 2`` of :func:`recall_at_k` (with 5 captions per image: the mean of its
    five captions' hits).
    """
    sim, owner = _as_tensor(sim), _as_tensor(caption_image).long()
    n_img, n_cap = sim.shape
    i2t = (image_to_text_ranks(sim, owner) < k).double()
    t2i = torch.zeros(n_img, dtype=torch.double).index_add_(0, owner, (text_to_image_ranks(sim, owner) < k).double())
    return (i2t + t2i * n_img / n_cap) / 2


def chance_recall(n_images: int, captions_per_image: int = 5, ks=KS) -> dict[str, float]:
    """Recall@k of random scores: what a model that learned nothing gets.

    i2t: 1 - C(n_wrong, k) / C(n_all, k) (none of the image's captions among k random ones);
    t2i: k / n_images.
    """
    n_all = n_images * captions_per_image
    n_wrong = n_all - captions_per_image
    out = {}
    for k in ks:
        k_c = min(k, n_all)
        out[f"i2t_R@{k}"] = 1.0 - math.comb(n_wrong, k_c) / math.comb(n_all, k_c)
        out[f"t2i_R@{k}"] = min(1.0, k / n_images)
    return out
