"""Intrinsic-dimension estimators checked on manifolds whose dimension is known, before any is trusted on
a layer's representations (Schulte and Ruegamer, "Rethinking Intrinsic Dimension Estimation in Neural
Representations", 2026, find that common estimators do not track the ID of neural representations).

    table = validate(estimators(), n=2000, seeds=(0, 1, 2))   # estimator x manifold: mean, sd, error

Each manifold is embedded in ``ambient`` dimensions by a random rotation (distances unchanged), so an
estimator cannot read the dimension off the coordinates. ``d`` is the manifold's dimension, what TwoNN,
GRIDE and the MLE estimate; ``linear`` is the dimension of the smallest subspace holding it, what the
participation ratio measures for an isotropic cloud (a curved sheet's PR lies between ``d`` and ``linear``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Manifold:
    """A manifold of known dimension: ``sample(n, rng)`` draws n points in ``linear`` coordinates."""
    name: str
    d: int
    linear: int
    sample: Callable[[int, np.random.Generator], np.ndarray]

    def points(self, n: int, ambient: int = 50, seed: int = 0) -> np.ndarray:
        """n points rotated into ``ambient`` dimensions (n x ambient)."""
        if ambient < self.linear:
            raise ValueError(f"ambient={ambient} is smaller than the {self.linear} coordinates of {self.name}")
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(ambient, self.linear)))
        return self.sample(n, rng) @ q.T


def _sphere(d: int):
    def sample(n, rng):
        x = rng.normal(size=(n, d + 1))
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    return sample


def _swiss_roll(n, rng):
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    return np.column_stack([t * np.cos(t), 21 * rng.uniform(size=n), t * np.sin(t)])


MANIFOLDS = (
    Manifold("gaussian 2-D", 2, 2, lambda n, rng: rng.normal(size=(n, 2))),
    Manifold("gaussian 5-D", 5, 5, lambda n, rng: rng.normal(size=(n, 5))),
    Manifold("gaussian 10-D", 10, 10, lambda n, rng: rng.normal(size=(n, 10))),
    Manifold("uniform cube 5-D", 5, 5, lambda n, rng: rng.uniform(size=(n, 5))),
    Manifold("sphere 4-D (in 5 coordinates)", 4, 5, _sphere(4)),
    Manifold("swiss roll 2-D (in 3 coordinates)", 2, 3, _swiss_roll),
)


def estimators() -> dict:
    """The study's four estimators at their default settings, by name."""
    from .estimators import GRIDE, LevinaBickel, ParticipationRatio
    from .twonn import TwoNN

    return {"TwoNN": TwoNN(), "GRIDE (n1=4)": GRIDE(n1=4), "MLE (k=20)": LevinaBickel(k=20),
            "participation ratio": ParticipationRatio()}


LINEAR = {"participation ratio"}   # estimators of the linear dimension, checked against ``linear``


def validate(named: dict, manifolds=MANIFOLDS, n: int = 2000, ambient: int = 50, seeds=(0, 1, 2)):
    """Every estimator on every manifold, over ``seeds`` draws of ``n`` points: a DataFrame of estimator,
    manifold, truth (``d``, or ``linear`` for an estimator in :data:`LINEAR`), mean, sd and relative error
    of the mean."""
    import pandas as pd

    rows = []
    for m in manifolds:
        clouds = [m.points(n, ambient, seed) for seed in seeds]
        for name, est in named.items():
            values = [float(est.fit(X).dimension_) for X in clouds]
            truth = m.linear if name in LINEAR else m.d
            rows.append(dict(estimator=name, manifold=m.name, truth=truth, mean=float(np.mean(values)),
                             sd=float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                             rel_error=float(np.mean(values)) / truth - 1, n=n, draws=len(values)))
    return pd.DataFrame(rows)
