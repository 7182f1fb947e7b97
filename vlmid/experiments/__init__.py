"""Each notebook's experiment, one module per notebook, named after what it studies.

A module holds the steps its notebook calls, a ``headline(...)`` that turns the notebook's tables
into exactly the keys of its ``metrics.json`` (``KEYS``), and the claims that read them (``CLAIMS``).
The notebook narrates and calls; the module computes, and its headline is unit-tested on small
tables whose answer is known.

    models_and_data      00  the tiny models, their world and their quality gates
    intrinsic_dimension  01  TwoNN per layer of BLIP and CLIP
    pruning              02  magnitude / gradient / PLATON / Wanda with and without the ID prior
    token_pruning        03  CLIP vision-token pruning: the collapse, its cause and its repairs
    flickr8k             04  a baseline against a token-pruned matching model
    compression          05  quantization, layer dropping and low-rank factorization
    id_prunability       06  does a unit's ID predict its prunability; the ID prior against its controls
    across_builds        07  every verdict pooled across the shipped model builds
"""
from __future__ import annotations

from . import (across_builds, compression, flickr8k, id_prunability, intrinsic_dimension, models_and_data, pruning,
               token_pruning)

MODULES = (models_and_data, intrinsic_dimension, pruning, token_pruning, flickr8k, compression, id_prunability,
           across_builds)
BY_NUMBER = {m.NUMBER: m for m in MODULES}
