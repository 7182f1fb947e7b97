"""Intrinsic dimension: the TwoNN estimator, the hooks that collect layer representations,
and the per-layer IDs notebook 01 writes for the pruning notebook.

    from vlmid.id import ImageBootstrap, TwoNN, block_sites, collect, layer_ids, load_linear_ids
    TwoNN(discard_fraction=0.1).fit(X).dimension_
    ImageBootstrap(n_bootstrap=200).fit({site: X, ...}).samples_   # B x sites, one draw of images for all
"""
from .bootstrap import ImageBootstrap, Neighbours, draw_images, image_bootstrap, percentile_effect
from .profiles import LINEAR_IDS_FILE, layer_ids, linear_id_table, linear_ids_path, load_linear_ids, plot_profiles
from .representations import (POOLINGS, LayerRecorder, Site, block_sites, blip_batches, clip_batches, collect,
                              linear_sites, model_family, pool)
from .twonn import TwoNN, bootstrap_dimension, nearest_k, nearest_two, twonn, twonn_fit, twonn_scaling

__all__ = ["TwoNN", "bootstrap_dimension", "nearest_k", "nearest_two", "twonn", "twonn_fit", "twonn_scaling",
           "ImageBootstrap", "Neighbours", "draw_images", "image_bootstrap", "percentile_effect",
           "POOLINGS", "LayerRecorder", "Site", "block_sites", "blip_batches", "clip_batches", "collect",
           "linear_sites", "model_family", "pool",
           "LINEAR_IDS_FILE", "layer_ids", "linear_id_table", "linear_ids_path", "load_linear_ids", "plot_profiles"]
