"""Linear probes: what does a vision tower's CLS feature encode, the item or its colour?

REFERENCE section 10's shortcut warning: a tower trained for minutes can learn colour
perfectly and shape barely. Here single Fashion-MNIST *test* items are shown at random
colour, size and position; a logistic regression on the frozen CLS feature predicts the
item class and, separately, the colour. Chance: 10 % (class) and 1/7 (colour).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.fashion_mnist import load_fashion_mnist
from ..data.scenes import COLOURS, render, sample_layout


def probe_items(n: int = 2000, seed: int = 0):
    """``n`` single test items: PIL images, class labels, colour labels (index into COLOURS)."""
    from PIL import Image

    photos, labels = load_fashion_mnist("test")
    rng = np.random.default_rng([seed, 31])
    pick = rng.permutation(len(labels))[:n]
    names = list(COLOURS)
    images, colours = [], []
    for j in pick:
        items, _ = sample_layout(1, [int(labels[j])], rng)
        images.append(Image.fromarray(render([photos[j]], items, rng=rng)))
        colours.append(names.index(items[0].colour))
    return images, labels[pick].copy(), np.array(colours)


@torch.no_grad()
def cls_features(vision_model, pixel_values: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The pooled CLS output (after the final layer norm) of a BLIP or CLIP vision tower."""
    out = [vision_model(pixel_values=pixel_values[i:i + batch_size]).pooler_output
           for i in range(0, len(pixel_values), batch_size)]
    return torch.cat(out).float().numpy()


def linear_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0, train_fraction: float = 0.5) -> float:
    """Held-out accuracy of a logistic regression fitted on ``train_fraction`` of the rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(order) * train_fraction)
    tr, te = order[:cut], order[cut:]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    clf.fit(features[tr], labels[tr])
    return float((clf.predict(features[te]) == labels[te]).mean())
