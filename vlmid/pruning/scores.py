"""Importance scores for unstructured pruning: magnitude, gradient (Taylor), PLATON and Wanda.

Every score is a pure function of tensors (one weight matrix at a time), so it can be
checked by hand on a 2x2 matrix. The *scorers* below only carry the state the paper needs
between optimiser steps (a window of gradients, PLATON's two moving averages, or Wanda's
input norms) for a dict ``{module name: nn.Linear weight}`` (Wanda: ``{module name: nn.Linear}``,
since it hooks the modules' inputs). Every scorer has ``close()``: Wanda's removes its hooks,
the others have nothing to release.

Wanda (Sun et al. ICLR 2024) compares its scores *within each output row*; the masks for that
are :func:`vlmid.pruning.masks.wanda_masks`, not the global threshold.

The ID prior of Wang et al. (ICML 2024) multiplies every weight's score by the intrinsic
dimension of the ``nn.Linear`` it belongs to (measured in notebook 01), so a matrix whose
output lives on a high-dimensional manifold keeps more of its weights under one global
threshold.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import torch
from torch import nn

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


def wanda_score(weight: Tensor, input_norm: Tensor) -> Tensor:
    """|W_ij| * ||X_j||_2 (Wanda, Sun et al. ICLR 2024): a weight matters as much as the input it multiplies.

    ``weight``: an ``nn.Linear`` weight (out_features x in_features); ``input_norm[j]``: the L2 norm,
    over the calibration tokens, of input feature j of that Linear (any positive multiple of it, such
    as the root-mean-square, ranks the same within a row). Returned as float32 on the weight's device.
    """
    if weight.dim() != 2:
        raise ValueError(f"wanda_score: weight has shape {tuple(weight.shape)}; it needs an nn.Linear weight "
                         f"(out_features x in_features)")
    if input_norm.dim() != 1 or input_norm.numel() != weight.shape[1]:
        raise ValueError(f"wanda_score: input_norm has shape {tuple(input_norm.shape)} but the weight has "
                         f"in_features={weight.shape[1]}: give one norm per input feature, shape ({weight.shape[1]},)")
    if bool((input_norm < 0).any()):
        raise ValueError("wanda_score: input_norm has negative entries; pass the norms of the input features "
                         "(e.g. x.norm(dim=0)), not the activations themselves")
    return weight.detach().abs().float() * input_norm.detach().to(weight.device, torch.float32)[None, :]


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

    def close(self) -> None:  # nothing to release
        pass


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

    def close(self) -> None:  # nothing to release
        pass


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

    def close(self) -> None:  # nothing to release
        pass


def _input_sum_sq(x: Tensor, in_features: int, device: torch.device) -> tuple[Tensor, int]:
    """Per-feature sum of squares of ``x`` (..., in_features) over all its tokens, float32, and the token count."""
    if x.shape[-1] != in_features:
        raise ValueError(f"input of shape {tuple(x.shape)} does not end in in_features={in_features}")
    flat = x.detach().reshape(-1, in_features).to(device=device, dtype=torch.float32)
    return flat.square().sum(0), flat.shape[0]


class WandaScorer:
    """Wanda's |W_ij| * ||X_j|| with the input norms of the forward passes since the last :meth:`scores`.

    A forward pre-hook on every ``nn.Linear`` adds the per-input-feature sum of squares of its
    input (shape ``(..., in_features)``, every token of every call; float32, on the weight's
    device) and counts the tokens. :meth:`scores` uses the root-mean-square over those tokens,
    ``sqrt(sum_sq / n_tokens)``: it is Wanda's L2 norm divided by ``sqrt(n_tokens)``, one constant
    per Linear, so within a row (where Wanda compares) it ranks exactly like the L2 norm, and its
    scale does not depend on how many steps the window held. The window then starts afresh, like
    the Taylor scorer's. Needs no gradients: :meth:`observe` does nothing.

    Forward passes inside ``with scorer.paused():`` are not counted (evaluation between mask
    updates). Call :meth:`close` (or use ``with WandaScorer(...) as s:``) to remove the hooks.
    """
    needs_grad = False

    def __init__(self, modules: Mapping[str, nn.Module]):
        bad = [n for n, m in modules.items() if not isinstance(m, nn.Linear)]
        if bad:
            raise TypeError(f"WandaScorer needs nn.Linear modules; not Linear: {bad[:3]} "
                            f"(use vlmid.pruning.prunable_linears(model))")
        self.modules = dict(modules)
        self.weights = {n: m.weight for n, m in self.modules.items()}
        self._sum_sq = {n: torch.zeros(m.in_features, dtype=torch.float32, device=m.weight.device)
                        for n, m in self.modules.items()}
        self._tokens = {n: 0 for n in self.modules}
        self._paused = False
        self._handles = [m.register_forward_pre_hook(self._hook(n), with_kwargs=True)
                         for n, m in self.modules.items()]

    def _hook(self, name: str):
        def hook(module, args, kwargs):
            if self._paused:
                return None
            x = args[0] if args else kwargs["input"]
            sq, n = _input_sum_sq(x, module.in_features, self._sum_sq[name].device)
            self._sum_sq[name] += sq
            self._tokens[name] += n
            return None
        return hook

    def observe(self) -> None:  # the hooks already saw the inputs
        pass

    def input_rms(self) -> dict[str, Tensor]:
        """Root-mean-square of every input feature over the tokens seen since the last :meth:`scores`."""
        unseen = [n for n, c in self._tokens.items() if c == 0]
        if unseen:
            raise RuntimeError(f"WandaScorer: no forward pass seen by {len(unseen)} Linear(s), e.g. {unseen[:3]}, "
                               f"since the last scores(); run the model on some batches first (not inside paused())")
        return {n: (self._sum_sq[n] / self._tokens[n]).sqrt() for n in self.modules}

    def scores(self) -> dict[str, Tensor]:
        rms = self.input_rms()
        out = {n: wanda_score(w, rms[n]) for n, w in self.weights.items()}
        self._sum_sq = {n: torch.zeros_like(s) for n, s in self._sum_sq.items()}
        self._tokens = {n: 0 for n in self._tokens}
        return out

    @contextmanager
    def paused(self) -> Iterator["WandaScorer"]:
        """Forward passes inside this block are not counted (e.g. an evaluation between mask updates)."""
        was, self._paused = self._paused, True
        try:
            yield self
        finally:
            self._paused = was

    def close(self) -> None:
        """Remove the forward hooks (idempotent); the scores seen so far stay readable."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    remove = close

    def __enter__(self) -> "WandaScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SCORERS = {"magnitude": MagnitudeScorer, "gradient": TaylorScorer, "platon": PlatonScorer, "wanda": WandaScorer}


def make_scorer(method: str, weights: Mapping[str, Tensor], modules: Mapping[str, nn.Module] | None = None,
                **kwargs):
    """``magnitude`` | ``gradient`` (Taylor) | ``platon`` | ``wanda`` scorer over ``{module name: weight}``.

    ``kwargs`` go to PLATON (``beta1``, ``beta2``); the other methods ignore them, as before. Wanda hooks the Linear modules' inputs, so it
    needs ``modules={module name: nn.Linear}`` (``prunable_linears(model)``) whose weights are
    ``weights``; the other methods ignore ``modules``. Call ``scorer.close()`` when done.
    """
    if method not in SCORERS:
        raise ValueError(f"method={method!r} is unknown: use one of {sorted(SCORERS)}")
    if method == "platon":
        return PlatonScorer(weights, **kwargs)
    if method != "wanda":
        return SCORERS[method](weights)
    if modules is None:
        raise ValueError("make_scorer('wanda') needs modules={module name: nn.Linear} (prunable_linears(model)): "
                         "it hooks their inputs")
    if set(modules) != set(weights) or any(modules[n].weight is not weights[n] for n in weights):
        raise ValueError("make_scorer('wanda'): modules and weights must name the same Linears "
                         "(weights[n] is modules[n].weight)")
    return WandaScorer(modules)


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


def normalised_ids(ids: Mapping[str, float], how: str = "mean") -> dict[str, float]:
    """The per-Linear IDs rescaled for the prior: ``"mean"`` divides every ID by the mean ID (under one
    global threshold this gives the same masks as the raw IDs: all scores scale alike); ``"tower"``
    divides each ID by the mean ID of its own tower (vision / language / fusion, ``models.anatomy``), which
    keeps the order of layers within a tower and removes the prior's shift of sparsity between towers."""
    from ..models.anatomy import module_group

    if not ids:
        raise ValueError("normalised_ids: no IDs given (notebook 01's linear_ids_blip.csv)")
    if how == "mean":
        mean = sum(ids.values()) / len(ids)
        return {n: float(v) / mean for n, v in ids.items()}
    if how == "tower":
        groups: dict[str, list[float]] = {}
        for n, v in ids.items():
            groups.setdefault(module_group(n), []).append(float(v))
        means = {g: sum(v) / len(v) for g, v in groups.items()}
        return {n: float(v) / means[module_group(n)] for n, v in ids.items()}
    raise ValueError(f"how={how!r} is unknown: use 'mean' (ID / mean ID) or 'tower' (ID / mean ID of its tower)")
