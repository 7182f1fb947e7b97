"""The work a notebook is about to do, counted from its parameters, and how long it will take here.

A researcher who starts a paper run on a booked GPU wants to know, before the first hour is gone,
what the run will do and roughly when it ends. Each notebook's parameters dataclass
(:mod:`vlmid.params`) therefore has a ``plan(...)`` method that counts its work in a few units (an
image captioned, an image-caption pair through a model, an optimiser step, a TwoNN fit); the
notebook prints that :class:`Plan` in its first cells, times one small batch of each unit on the
models it has just loaded (:func:`model_rates`, :func:`seconds_per_item`) and prints the estimate,
so the figure holds for a laptop CPU and a GPU alike. The estimate leaves out what it cannot time
ahead (it says which), and a unit timed on one batch is only as good as that batch: it is a plan,
not a measurement. The measured wall time of every notebook is in ``results/manifest.json``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from ..profiling import synchronize

@dataclass(frozen=True)
class Work:
    """``count`` units of kind ``unit`` (a key of the rates :func:`model_rates` measures, "step",
    "twonn fit", or any name that no rate is measured for), and what they are, in words."""
    count: int
    unit: str
    what: str


@dataclass(frozen=True)
class Plan:
    """A notebook's planned work: a tuple of :class:`Work`."""
    notebook: str
    work: tuple[Work, ...]

    def count(self, unit: str) -> int:
        """How many units of kind ``unit`` the plan holds in all."""
        return sum(w.count for w in self.work if w.unit == unit)

    def totals(self) -> dict[str, int]:
        """Unit -> count in all, in the order the units first appear."""
        return {w.unit: self.count(w.unit) for w in self.work}

    def seconds(self, rates: Mapping[str, float]) -> float:
        """Estimated seconds of the work whose unit has a rate (seconds per unit) in ``rates``."""
        return sum(w.count * rates[w.unit] for w in self.work if w.unit in rates)

    def untimed(self, rates: Mapping[str, float]) -> list[Work]:
        """The work that ``rates`` has no rate for (left out of :meth:`seconds`)."""
        return [w for w in self.work if w.unit not in rates]

    def describe(self, rates: Mapping[str, float] | None = None) -> str:
        """The plan, one line per piece of work; with ``rates``, each piece's estimated time and the total."""
        lines = [f"planned work of notebook {self.notebook}:"]
        for w in self.work:
            line = f"  {w.count:>12,d} x {w.unit:<19s} {w.what}"
            if rates is not None:
                line += f"  ~{w.count * rates[w.unit]:,.0f} s" if w.unit in rates else "  (not timed ahead)"
            lines.append(line)
        if rates is not None:
            total = self.seconds(rates)
            timed = ", ".join(f"{u} {s:.3g} s" for u, s in rates.items() if self.count(u))
            when = f"{total:.0f} s" if total < 120 else f"{total / 60:,.1f} min ({total / 3600:.2f} h)"
            lines.append(f"  estimate: about {when} from one timed batch per unit "
                         f"on this machine ({timed})" + ("; plus the work not timed ahead" if self.untimed(rates) else ""))
        return "\n".join(lines)


def seconds_per_item(run: Callable[[], Any], n_items: int, device=None, warmup: int = 1) -> float:
    """Wall seconds per item of one call of ``run()`` that handles ``n_items`` items, after ``warmup``
    untimed calls (CUDA synchronised). Torch's random state is restored afterwards, so timing a
    planned unit never changes what the notebook computes next."""
    if n_items < 1:
        raise ValueError(f"n_items={n_items!r} must be >= 1")
    cuda = device is not None and torch.device(device).type == "cuda"
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        for _ in range(warmup):
            run()
        synchronize(device)
        t0 = time.perf_counter()
        run()
        synchronize(device)
        return (time.perf_counter() - t0) / n_items


def model_rates(images, captions=None, cap=None, clip=None, train: bool = False) -> dict[str, float]:
    """Seconds per unit on this machine, each from one timed call on ``images`` (a small batch, PIL)
    and their ``captions``: ``caption`` and ``blip image`` for a captioner bundle ``cap``, with
    captions also ``blip pass`` (and ``blip train pair`` with ``train``); ``clip image`` for a CLIP
    bundle ``clip``, with captions also ``clip pass`` (:mod:`vlmid.models.bundles`)."""
    images = list(images)
    n, rates = len(images), {}
    with torch.no_grad():
        if cap is not None:
            pv = cap.pixel_values(images)
            rates["caption"] = seconds_per_item(lambda: cap.generate(images), n, cap.device)
            rates["blip image"] = seconds_per_item(lambda: cap.model.vision_model(pixel_values=pv), n, cap.device)
            if captions is not None:
                enc = cap.text_inputs(list(captions))
                text = {k: enc[k] for k in ("input_ids", "attention_mask")}
                rates["blip pass"] = seconds_per_item(lambda: cap.model(pixel_values=pv, **text), n, cap.device)
        if clip is not None:
            pv = clip.pixel_values(images)
            rates["clip image"] = seconds_per_item(lambda: clip.model.get_image_features(pixel_values=pv), n, clip.device)
            if captions is not None:
                text = clip.text_inputs(list(captions))
                rates["clip pass"] = seconds_per_item(lambda: clip.model(pixel_values=pv, **text), n, clip.device)
    if cap is not None and train and captions is not None:
        rates["blip train pair"] = seconds_per_item(lambda: cap.loss(images, list(captions)).backward(), n, cap.device)
        cap.model.zero_grad(set_to_none=True)   # the weights never moved: no optimiser step was taken
    return rates


__all__ = ["Work", "Plan", "seconds_per_item", "model_rates"]
