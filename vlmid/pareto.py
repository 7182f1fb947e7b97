"""The Pareto front of a trade-off table: the rows no other row beats on every axis at once.

One definition for the token variants of notebook 03 (speed-up and top-1, both higher is better)
and the compression methods of notebook 05 (size or latency lower, CIDEr-D higher): a row is
dominated when another row is at least as good on every axis and strictly better on one.
Rows with a missing value on an axis are never on the front.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pareto_mask(df, higher: Sequence[str] = (), lower: Sequence[str] = ()) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``df``; ``higher`` / ``lower``: columns to maximise / minimise."""
    if not higher and not lower:
        raise ValueError("pareto_mask needs at least one column in higher= or lower=")
    # every axis as "higher is better"
    values = np.column_stack([df[c].to_numpy(float) for c in higher] + [-df[c].to_numpy(float) for c in lower])
    ok = ~np.isnan(values).any(axis=1)
    front = np.zeros(len(df), dtype=bool)
    for i in np.flatnonzero(ok):
        at_least = (values[ok] >= values[i]).all(axis=1)
        better = (values[ok] > values[i]).any(axis=1)
        front[i] = not (at_least & better).any()
    return front


def pareto_front(df, higher: Sequence[str] = (), lower: Sequence[str] = (), sort_by: str | None = None):
    """The non-dominated rows of ``df``, sorted by ``sort_by`` (default: the first axis)."""
    return df[pareto_mask(df, higher, lower)].sort_values(sort_by or (list(higher) + list(lower))[0])
