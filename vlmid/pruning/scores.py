"""Importance scores for unstructured pruning: magnitude, gradient (Taylor) and PLATON.

Every score is a pure function of tensors (one weight matrix at a time), so it can be
checked by hand on a 2x2 matrix. The *scorers* below only carry the state the paper needs
between optimiser steps (a window of gradients, or PLATON's two moving averages) for a
dict ``{module name: nn.Linear weight}``.

The ID prior of Wang et al. (ICML 2024) multiplies every weight's score by the intrinsic
dimension of the ``nn.Linear`` it belongs to (measured in notebook 01), so a matrix whose
output lives on a high-dimensional manifold keeps more of its weights under one global
threshold.
"""
from __future__ import annotations

from typing import Mapping

import torch

Tensor = torch.Tensor


# -- the scores as pure functions ------------------------------------------------------
def magnitude_score(weight: Tensor) -> Tensor:
    """|w|: small weights matter least (Han et al. 2015)."""
    return weight.detach().abs()


def taylor_score(weight: Tensor, grad: Tensor) -> Tensor:
    """|w * dL/dw|: first-order Taylor estimate of the loss change when w is set to 0."""
    return (weight.detach() * grad.detach()).abs()


gradient_score = taylor_score  # the study calls the Taylor score "gradient-based"


def platon_update(i_bar: Tensor, u_bar: Tensor, weight: Tensor, grad: Tensor,
                  beta1: float = 0.85, beta2: float = 0.95) -> tuple[Tensor, Tensor]:
    """One PLATON step (Zhang et al. ICML 2022): new (I_bar, U_bar).

    I = |w * g|; I_bar <- b1 I_bar + (1 - b1) I; U = |I - I_bar| (with the new I_bar);
    U_bar <- b2 U_bar + (1 - b2) U.  The score is I_bar * U_bar.
    """
    sens = taylor_score(weight, grad)
    i_bar = beta1 * i_bar + (1 - beta1) * sens
    u_bar = beta2 * u_bar + (1 - beta2) * (sens - i_bar).abs()
    return i_bar, u_bar


def platon_score(i_bar: Tensor, u_bar: Tensor) -> Tensor:
    """Upper-confidence-bound style importance: smoothed sensitivity times its uncertainty."""
    return i_bar * u_bar


# -- scorers: the state between optimiser steps ----------------------------------------
class MagnitudeScorer:
    """|w| of the current weights; needs no gradients."""
    needs_grad = False

    def __init__(self, weights: Mapping[str, Tensor]):
        self.weights = dict(weights)

    def observe(self) -> None:  # nothing to remember
        pass

    def scores(self) -> dict[str, Tensor]:
        return {n: magnitude_score(w) for n, w in self.weights.items()}


class TaylorScorer:
    """Mean of |w * g| over the steps since the last mask update (one step is very noisy).

    Call :meth:`observe` after ``loss.backward()`` (before the optimiser step), :meth:`scores`
    at a mask update; the window then starts afresh.
    """
    needs_grad = True

    def __init__(self, weights: Mapping[str, Tensor]):
        self.weights = dict(weights)
        self._sum = {n: torch.zeros_like(w, dtype=torch.float32) for n, w in self.weights.items()}
        self._count = 0

    def observe(self) -> None:
        for n, w in self.weights.items():
            if w.grad is not None:
                self._sum[n] += taylor_score(w, w.grad).float()
        self._count += 1

    def scores(self) -> dict[str, Tensor]:
        if self._count == 0:
            raise RuntimeError("TaylorScorer.scores() before any observe(): run a backward pass first")
        out = {n: s / self._count for n, s in self._sum.items()}
        self._sum = {n: torch.zeros_like(s) for n, s in self._sum.items()}
        self._count = 0
        return out


class PlatonScorer:
    """PLATON's moving averages of sensitivity (b1) and uncertainty (b2), updated every step."""
    needs_grad = True

    def __init__(self, weights: Mapping[str, Tensor], beta1: float = 0.85, beta2: float = 0.95):
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name}={b!r} is out of range: it must lie in [0, 1)")
        self.weights = dict(weights)
        self.beta1, self.beta2 = beta1, beta2
        self.i_bar = {n: torch.zeros_like(w, dtype=torch.float32) for n, w in self.weights.items()}
        self.u_bar = {n: torch.zeros_like(w, dtype=torch.float32) for n, w in self.weights.items()}
        self.steps = 0

    def observe(self) -> None:
        for n, w in self.weights.items():
            if w.grad is not None:
                self.i_bar[n], self.u_bar[n] = platon_update(
                    self.i_bar[n], self.u_bar[n], w.float(), w.grad.float(), self.beta1, self.beta2)
        self.steps += 1

    def scores(self) -> dict[str, Tensor]:
        if self.steps == 0:
            raise RuntimeError("PlatonScorer.scores() before any observe(): run a backward pass first")
        return {n: platon_score(self.i_bar[n], self.u_bar[n]) for n in self.weights}


SCORERS = {"magnitude": MagnitudeScorer, "gradient": TaylorScorer, "platon": PlatonScorer}


def make_scorer(method: str, weights: Mapping[str, Tensor], **kwargs):
    """``magnitude`` | ``gradient`` (Taylor) | ``platon`` scorer over ``{module name: weight}``."""
    if method not in SCORERS:
        raise ValueError(f"method={method!r} is unknown: use one of {sorted(SCORERS)}")
    return SCORERS[method](weights, **kwargs) if method == "platon" else SCORERS[method](weights)


# -- the ID prior ----------------------------------------------------------------------
def apply_id_prior(scores: Mapping[str, Tensor], ids: Mapping[str, float]) -> dict[str, Tensor]:
    """Multiply every weight's score by the intrinsic dimension of its ``nn.Linear``.

    ``scores`` and ``ids`` are keyed by module name (``...self_attn.qkv``). A module without
    an ID is an error: silently using 1 would make it look unimportant.
    """
    missing = [n for n in scores if n not in ids]
    if missing:
        raise KeyError(f"no intrinsic dimension for {len(missing)} Linear(s), e.g. {missing[:3]}; "
                       f"is linear_ids_blip.csv from the same model?")
    return {n: s * float(ids[n]) for n, s in scores.items()}
