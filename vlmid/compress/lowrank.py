"""Low-rank factorization of Linear layers: plain SVD and activation-aware SVD.

A Linear ``y = W x + b`` with ``W`` of shape (out, in) becomes two Linears,
``y = U_r (V_r^T x) + b``, storing ``r (in + out)`` numbers instead of ``in * out``; it
pays only when ``r < in * out / (in + out)``.

Plain SVD (the compression slides) keeps the ``r`` largest singular values of ``W``, choosing ``r`` per
layer as the smallest rank that retains a fraction ``energy`` of the spectrum's energy,

    r(W) = min { r : sum_{i<=r} s_i^2 >= energy * sum_i s_i^2 }.

That is optimal for ``||W - W_r||_F``, but the model cares about ``||(W - W_r) X||`` on the
inputs ``X`` it actually sees. Activation-aware variants factorize ``W S`` instead, where
``S`` comes from calibration activations, and fold ``S^{-1}`` back into the first factor:

- ``"asvd"`` (ASVD, Yuan et al. 2023): ``S = diag(mean|x_j|)^alpha`` (alpha = 0.5), a
  per-input-channel scale that protects channels with large activations;
- ``"whiten"`` (SVD-LLM, Wang et al. 2024): ``S = L`` with ``L L^T = X X^T`` (Cholesky), so
  that truncating ``W L`` is exactly optimal for ``||(W - W_r) X||_F``.

``factorize(model, energy=..., method=...)`` returns the factorized copy and a *plan*
(name -> in, out, rank); ``factorize(..., ranks=plan)`` reuses the ranks of another plan, which
is how plain and activation-aware are compared at equal parameter count. ``save_lowrank`` /
``load_lowrank`` store the factorized weights with the plan as shape metadata and patch an
identical fresh model back into that shape on load.

Measuring a factorization (notebook 05): ``energy_rank_table`` (the rank each energy keeps, per
Linear, against its break-even rank), ``capture_inputs`` (the inputs a module really receives),
``relative_output_errors`` (``||(W - W_r) X|| / ||W X||`` of each method at one rank) and
``token_output_errors`` (the same error split by token type, ``[CLS]`` against patches).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from .quantize import _set_module, linear_names

__all__ = ["LowRankLinear", "retained_energy_rank", "breakeven_rank", "max_saving_rank", "factorize_linear", "collect_input_stats",
           "capture_inputs", "energy_rank_table", "relative_output_errors", "token_output_errors",
           "plan_ranks", "factorize", "plan_params", "save_lowrank", "load_lowrank", "METHODS"]

METHODS = ("plain", "asvd", "whiten")


class LowRankLinear(nn.Module):
    """``up(down(x))``: a rank-``r`` stand-in for ``nn.Linear(in_features, out_features)``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x):
        return self.up(self.down(x))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def retained_energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest ``r`` whose top-``r`` singular values hold ``energy`` of ``sum s_i^2`` (0 < energy <= 1)."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy={energy!r} is out of range: it must lie in (0, 1]")
    e = singular_values.double().pow(2)
    cum = torch.cumsum(e, 0) / e.sum()
    # tolerance so that energy=1.0 is reached despite rounding
    return int(torch.searchsorted(cum, torch.tensor(energy - 1e-12, dtype=cum.dtype, device=cum.device)).item()) + 1


def _scale_matrix(stats: dict, method: str, alpha: float) -> torch.Tensor | None:
    """The right-multiplier S (in x in) of an activation-aware method, or None for plain."""
    if method == "plain":
        return None
    if stats is None:
        raise ValueError(f"method={method!r} needs activation statistics (collect_input_stats)")
    if method == "asvd":
        s = (stats["abs_sum"] / stats["count"]).clamp_min(1e-6).pow(alpha)
        return torch.diag(s.double())
    # whiten: Cholesky of the (slightly damped) input Gram matrix
    gram = stats["gram"].double() / stats["count"]
    damp = 1e-4 * gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    for k in range(6):  # add damping until the Cholesky succeeds (rank-deficient inputs)
        L, info = torch.linalg.cholesky_ex(gram + damp * (10 ** k) * eye)
        if info == 0:
            return L
    raise RuntimeError("input Gram matrix is not positive definite even after damping")


def factorize_linear(linear: nn.Linear, rank: int | None = None, energy: float | None = None,
                     method: str = "plain", stats: dict | None = None, alpha: float = 0.5
                     ) -> LowRankLinear:
    """Factor one Linear by a truncated SVD of ``W S`` (S = identity for plain).

    Give ``rank``, or ``energy`` to pick the rank from the spectrum of the matrix factorized.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: allowed {METHODS}")
    W = linear.weight.data.double()  # on the weight's device: cuSOLVER on a GPU, LAPACK on the CPU
    S = _scale_matrix(stats, method, alpha)
    S = None if S is None else S.to(W.device)
    A = W if S is None else W @ S
    U, s, Vh = torch.linalg.svd(A, full_matrices=False)
    if rank is None:
        if energy is None:
            raise ValueError("give rank or energy")
        rank = retained_energy_rank(s, energy)
    rank = max(1, min(int(rank), s.numel()))
    sq = s[:rank].sqrt()
    down = sq[:, None] * Vh[:rank]                    # (r, in): factor of W S
    if S is not None:                                  # fold S^{-1} back: down @ S^{-1}
        down = torch.linalg.solve_triangular(S.T, down.T, upper=True).T if method == "whiten" \
            else down / S.diagonal()[None, :]
    up = U[:, :rank] * sq[None, :]                    # (out, r)
    dtype, device = linear.weight.dtype, linear.weight.device
    lr = LowRankLinear(linear.in_features, linear.out_features, rank, bias=linear.bias is not None)
    lr.down.weight.data = down.to(dtype=dtype, device=device).contiguous()
    lr.up.weight.data = up.to(dtype=dtype, device=device).contiguous()
    if linear.bias is not None:
        lr.up.bias.data = linear.bias.data.clone()
    return lr.to(device)


def _run_with_input_hooks(model: nn.Module, run: Callable[[], None], names: Iterable[str],
                          record: Callable[[str, torch.Tensor], None]) -> None:
    """Run ``run()`` with a forward pre-hook on each named module calling ``record(name, first_input)``;
    the hooks are removed afterwards, whatever happens."""
    hooks = [model.get_submodule(n).register_forward_pre_hook(lambda mod, args, n=n: record(n, args[0].detach()))
             for n in names]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def collect_input_stats(model: nn.Module, run: Callable[[], None], names: Iterable[str],
                        gram: bool = True) -> dict[str, dict]:
    """Run ``run()`` (forward passes over calibration data) and record, for each named Linear,
    the number of input rows, ``sum |x|`` per channel (ASVD) and ``X^T X`` (whitening)."""
    stats: dict[str, dict] = {}

    def record(name, x):
        x = x.reshape(-1, x.shape[-1]).double()
        st = stats.setdefault(name, {"count": 0, "abs_sum": 0.0, "gram": 0.0})
        st["count"] += x.shape[0]
        st["abs_sum"] = st["abs_sum"] + x.abs().sum(0).cpu()
        if gram:
            st["gram"] = st["gram"] + (x.T @ x).cpu()

    _run_with_input_hooks(model, run, names, record)
    return stats


@torch.no_grad()
def capture_inputs(model: nn.Module, run: Callable[[], None], name: str, flatten: bool = False) -> torch.Tensor:
    """The inputs the module ``name`` of ``model`` receives while ``run()`` runs, concatenated over its calls.

    ``collect_input_stats`` keeps only sums; this keeps the activations themselves, to measure a
    factorized layer on them. ``flatten=True``: one row per token, ``(rows, in_features)``, moved to the
    CPU; ``flatten=False``: the input's own shape and device (e.g. ``(images, 1 + patches, width)`` for a
    vision layer, the token axis kept for ``token_output_errors``)."""
    xs: list[torch.Tensor] = []

    def record(_, x):
        xs.append(x.reshape(-1, x.shape[-1]).cpu() if flatten else x)

    _run_with_input_hooks(model, run, [name], record)
    if not xs:
        raise ValueError(f"module {name!r} received no input while run() ran")
    return torch.cat(xs)


def energy_rank_table(model: nn.Module, energies: Iterable[float], skip: Iterable[str] = ()):
    """One row per (Linear, energy): ``layer``, ``tower`` ("vision" or "text", by
    ``vlmid.models.anatomy.module_group``), ``energy``, the ``rank`` retaining that energy of the plain
    spectrum, and ``rank_over_breakeven`` (above 1: factorizing that layer would grow it). A DataFrame."""
    import pandas as pd

    from ..models.anatomy import module_group

    energies = list(energies)
    rows = []
    for n in linear_names(model, skip):
        W = model.get_submodule(n).weight.detach().double()
        s = torch.linalg.svdvals(W)
        brk = breakeven_rank(W.shape[0], W.shape[1])
        tower = "vision" if module_group(n) == "vision" else "text"
        for e in energies:
            r = retained_energy_rank(s, e)
            rows.append({"layer": n, "tower": tower, "energy": e, "rank": r, "rank_over_breakeven": r / brk})
    return pd.DataFrame(rows, columns=["layer", "tower", "energy", "rank", "rank_over_breakeven"])


@torch.no_grad()
def relative_output_errors(linear: nn.Linear, X: torch.Tensor, rank: int, stats: dict | None = None,
                           methods: Iterable[str] = METHODS) -> list[dict]:
    """``||(W - W_r) X||_F / ||W X||_F`` (bias included on both sides) of each factorization method at one
    ``rank``, on inputs ``X`` (rows: tokens); ``stats``: ``collect_input_stats(..., gram=True)`` of that layer.
    Rows ``{"method", "rank", "relative_output_error"}``, in ``methods`` order."""
    Y = linear(X)
    return [{"method": m, "rank": rank, "relative_output_error": float(
        (factorize_linear(linear, rank=rank, method=m, stats=stats)(X) - Y).norm() / Y.norm())}
        for m in methods]


@torch.no_grad()
def token_output_errors(dense: nn.Module, approx: dict[str, nn.Module], X: torch.Tensor,
                        parts: Iterable[str] = ("query", "key", "value")) -> list[dict]:
    """A layer's relative squared output error split by token type: ``[CLS]`` (token 0) against the rest.

    ``X``: ``(images, 1 + patches, width)`` inputs of the layer (``capture_inputs(..., flatten=False)``);
    ``approx``: variant name -> the factorized stand-in of ``dense``. The output is split into equal
    ``parts`` along its last axis (a fused q/k/v projection: three). One row per variant and part,
    ``{"variant", "part", "CLS", "patches"}``, each ``sum ||y - y_r||^2 / sum ||y||^2`` over those tokens."""
    parts = list(parts)
    Y = dense(X)
    d = Y.shape[-1] // len(parts)
    rows = []
    for variant, layer in approx.items():
        Yr = layer(X)
        for j, part in enumerate(parts):
            err = ((Y - Yr)[..., j * d:(j + 1) * d] ** 2).sum(-1)
            ref = (Y[..., j * d:(j + 1) * d] ** 2).sum(-1)
            rows.append({"variant": variant, "part": part,
                         "CLS": float(err[:, 0].sum() / ref[:, 0].sum()),
                         "patches": float(err[:, 1:].sum() / ref[:, 1:].sum())})
    return rows


def breakeven_rank(out_features: int, in_features: int) -> float:
    """The rank at which two factors (``r (d_in + d_out)`` weights) store as many weights as the dense
    ``d_out x d_in`` matrix; factorizing saves weights only below it."""
    return out_features * in_features / (out_features + in_features)


def max_saving_rank(lin: nn.Linear) -> int:
    """Largest rank at which two factors store fewer weights than the dense matrix (below the break-even)."""
    return (lin.in_features * lin.out_features - 1) // (lin.in_features + lin.out_features)


def plan_ranks(model: nn.Module, energy: float, skip: Iterable[str] = (), only_if_smaller: bool = True) -> dict:
    """name -> {in_features, out_features, rank, bias}: the rank retaining ``energy`` of each
    Linear's plain spectrum; layers where that rank would not save weights are left out."""
    plan = {}
    for n in linear_names(model, skip):
        lin = model.get_submodule(n)
        r = retained_energy_rank(torch.linalg.svdvals(lin.weight.data.double()), energy)
        if only_if_smaller and r > max_saving_rank(lin):
            continue
        plan[n] = {"in_features": lin.in_features, "out_features": lin.out_features,
                   "rank": r, "bias": lin.bias is not None}
    return plan


def factorize(model: nn.Module, energy: float | None = 0.8, skip: Iterable[str] = (),
              method: str = "plain", stats: dict | None = None, ranks: dict | None = None,
              only_if_smaller: bool = True, alpha: float = 0.5) -> tuple[nn.Module, dict]:
    """A copy of ``model`` with its Linear layers factorized, and the plan that describes it.

    - ``energy``: retained spectral energy of the *plain* spectrum of each W, which sets
      its rank (so plain and activation-aware get the same ranks, i.e. equal size);
    - ``ranks``: a plan (from ``plan_ranks`` or an earlier call) to use instead;
    - ``skip``: glob patterns / prefixes of layers to keep dense (e.g. the last layers);
    - ``only_if_smaller``: keep a layer dense when its rank would not save parameters;
    - ``stats``: ``collect_input_stats`` output, needed by ``"asvd"`` and ``"whiten"``.
    """
    plan = ranks if ranks is not None else plan_ranks(model, energy, skip, only_if_smaller)
    m = copy.deepcopy(model)
    out: dict[str, dict] = {}
    for n, p in plan.items():
        lin = m.get_submodule(n)
        new = factorize_linear(lin, rank=p["rank"], method=method,
                               stats=None if stats is None else stats.get(n), alpha=alpha)
        _set_module(m, n, new)
        out[n] = {"in_features": lin.in_features, "out_features": lin.out_features,
                  "rank": new.rank, "bias": lin.bias is not None}
    return m, out


def plan_params(plan: dict) -> tuple[int, int]:
    """(weights stored by the factorized layers, weights of the same layers dense)."""
    fact = sum(p["rank"] * (p["in_features"] + p["out_features"]) for p in plan.values())
    dense = sum(p["in_features"] * p["out_features"] for p in plan.values())
    return fact, dense


def save_lowrank(model: nn.Module, plan: dict, folder: str | Path, **meta) -> Path:
    """Write ``lowrank.json`` (the plan: each layer's shapes and rank) and ``weights.pt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lowrank.json").write_text(json.dumps({"layers": plan, **meta}, indent=2) + "\n")
    torch.save(model.state_dict(), folder / "weights.pt")
    return folder


def patch_to_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Give ``model`` (in place) the factorized shapes of ``plan``, with uninitialised factors."""
    for n, p in plan.items():
        old = model.get_submodule(n)
        new = LowRankLinear(p["in_features"], p["out_features"], p["rank"], bias=p["bias"])
        _set_module(model, n, new.to(device=old.weight.device, dtype=old.weight.dtype))
    return model


def load_lowrank(model: nn.Module, folder: str | Path) -> nn.Module:
    """Patch a fresh model of the original architecture to the saved plan, then load the weights."""
    folder = Path(folder)
    meta = json.loads((folder / "lowrank.json").read_text())
    patch_to_plan(model, meta["layers"])
    state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model
