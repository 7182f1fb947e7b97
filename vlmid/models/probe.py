"""Linear probes: what does a vision tower's CLS feature encode, the item or its colour?

The shortcut warning of tiny-model training (docs/methods.md §10): a tower trained for minutes can
learn colour perfectly and shape barely. Single Fashion-MNIST items are shown at a random colour,
size and place; a logistic regression on the frozen CLS feature predicts the item class and,
separately, the colour. Chance: 10 % (class) and 1/7 (colour).

The protocol is the standard one of linear-probe evaluation (Kornblith et al., CVPR 2019; CLIP,
Radford et al., ICML 2021, appendix A.3): the probe is fitted on one set of images, its L2 penalty
chosen on held-out images, and it is scored on the test images. Here it is fitted on items from the
*validation* photos (never seen in training), C is chosen on a held-out fifth of them, and the score
is on items from the Fashion-MNIST *test* photos. An earlier protocol fitted on half of 2,000 test
items with a fixed C = 1; it scored below the training head's own accuracy and below CLIP's zero-shot
accuracy, which a linear probe of the same feature should not, because 1,000 items were too few for
128 features: it measured the probe's data more than the tower.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.fashion_mnist import load_fashion_mnist
from ..data.scenes import COLOURS, _photo_pools, single_items

PROTOCOL = 2          # recorded with every probe score: 2 = fit on validation items, C chosen on a held-out fifth
CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)   # the L2 penalties tried, a decade apart (sklearn's C: larger is weaker)


def probe_items(n: int = 2000, seed: int = 0, split: str = "test"):
    """``n`` single items of ``split`` ("test": Fashion-MNIST's test photos; "val": the validation pool
    of its train photos, which no model trained on): PIL images, class labels, colour labels (index
    into COLOURS)."""
    from PIL import Image

    if split not in ("test", "val"):
        raise ValueError(f"split={split!r}: probe items come from 'val' (to fit) or 'test' (to score)")
    photos, labels = load_fashion_mnist("test") if split == "test" else _photo_pools("val", seed)
    rng = np.random.default_rng([seed, 31] if split == "test" else [seed, 32])
    pick = rng.permutation(len(labels))[:n]
    items = single_items(photos[pick], labels[pick], rng, white_p=0.0)
    names = list(COLOURS)
    return ([Image.fromarray(image) for image in items.images], labels[pick].copy(),
            np.array([names.index(colour) for colour in items.colours]))


@torch.no_grad()
def cls_features(vision_model, pixel_values: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The pooled CLS output (after the final layer norm) of a BLIP or CLIP vision tower."""
    out = [vision_model(pixel_values=pixel_values[i:i + batch_size]).pooler_output
           for i in range(0, len(pixel_values), batch_size)]
    return torch.cat(out).float().numpy()


def _fit(features, labels, c):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(features, labels)


def linear_probe(fit_features: np.ndarray, fit_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, seed: int = 0, cs=CS) -> tuple[float, float]:
    """(test accuracy, chosen C) of a logistic regression on standardised features: C is the one of ``cs``
    with the best accuracy on a held-out fifth of the fit rows (ties: the smaller C, the stronger
    penalty), then the probe is refitted on every fit row and scored on the test rows."""
    order = np.random.default_rng(seed).permutation(len(fit_labels))
    held, rest = order[: len(order) // 5], order[len(order) // 5:]
    held_acc = [float((_fit(fit_features[rest], fit_labels[rest], c).predict(fit_features[held])
                       == fit_labels[held]).mean()) for c in cs]
    best = cs[int(np.argmax(held_acc))]
    accuracy = float((_fit(fit_features, fit_labels, best).predict(test_features) == test_labels).mean())
    return accuracy, float(best)


def probe_towers(towers: dict, n_fit: int = 5000, n_test: int = 2000, seed: int = 0):
    """Item-class and colour probes of each tower: ``towers`` maps a name to (vision model, pixels function
    taking PIL images). One table row per tower and target: accuracy on ``n_test`` test items, chosen C,
    sizes and the protocol."""
    import pandas as pd

    fit_images, fit_class, fit_colour = probe_items(n_fit, seed, "val")
    test_images, test_class, test_colour = probe_items(n_test, seed, "test")
    rows = []
    for name, (vision, pixels) in towers.items():
        fit, test = cls_features(vision, pixels(fit_images)), cls_features(vision, pixels(test_images))
        for target, y_fit, y_test, chance in [("item class", fit_class, test_class, 0.10),
                                               ("colour", fit_colour, test_colour, 1 / len(COLOURS))]:
            accuracy, c = linear_probe(fit, y_fit, test, y_test, seed)
            rows.append({"tower": name, "probe target": target, "accuracy": accuracy, "chance": round(chance, 3),
                         "C": c, "n_fit": len(y_fit), "n_test": len(y_test), "protocol": PROTOCOL})
    return pd.DataFrame(rows)


def probe_metrics(table) -> dict:
    """``probe_towers``' table as headline metrics: ``probe_<tower>_class`` / ``probe_<tower>_colour`` (the
    tower's first word, lower case: "BLIP vision" -> ``probe_blip_class``), ``probe_protocol``,
    ``n_probe_fit`` and ``n_probe``. The one mapping of notebook 00 and the build's quality gates."""
    out = {f"probe_{r['tower'].split()[0].lower()}_{'class' if r['probe target'] == 'item class' else 'colour'}":
           float(r["accuracy"]) for r in table.to_dict("records")}
    return out | {"probe_protocol": int(table.protocol.iloc[0]), "n_probe_fit": int(table.n_fit.iloc[0]),
                  "n_probe": int(table.n_test.iloc[0])}
