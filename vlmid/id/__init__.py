"""Intrinsic dimension: the TwoNN estimator, the hooks that collect layer representations,
and the per-layer IDs notebook 01 writes for the pruning notebook."""
from .twonn import TwoNN, bootstrap_dimension, nearest_two, twonn, twonn_fit, twonn_scaling

__all__ = ["TwoNN", "bootstrap_dimension", "nearest_two", "twonn", "twonn_fit", "twonn_scaling"]
