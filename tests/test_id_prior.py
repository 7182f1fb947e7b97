"""The ID prior as the study's code uses it (raw IDs) and its normalisations."""
from __future__ import annotations

import pytest
import torch

from vlmid.pruning.masks import global_masks
from vlmid.pruning.scores import apply_id_prior, normalised_ids

IDS = {"vision_model.encoder.layers.0.mlp.fc1": 40.0, "vision_model.encoder.layers.1.mlp.fc1": 20.0,
       "text_decoder.bert.encoder.layer.0.intermediate.dense": 8.0,
       "text_decoder.bert.encoder.layer.0.crossattention.self.query": 4.0}


def scores():
    g = torch.Generator().manual_seed(0)
    return {n: torch.rand(16, 8, generator=g) for n in IDS}


def test_dividing_by_the_mean_id_changes_no_mask():
    s = scores()
    raw = global_masks(apply_id_prior(s, IDS), 0.4)
    mean = global_masks(apply_id_prior(s, normalised_ids(IDS, "mean")), 0.4)
    assert all(torch.equal(raw[n], mean[n]) for n in s)


def test_tower_normalisation_removes_the_shift_between_towers():
    t = normalised_ids(IDS, "tower")
    assert t["vision_model.encoder.layers.0.mlp.fc1"] == pytest.approx(40 / 30)
    assert t["text_decoder.bert.encoder.layer.0.intermediate.dense"] == pytest.approx(1.0)   # alone in its tower
    s = scores()
    raw = global_masks(apply_id_prior(s, IDS), 0.4)
    tower = global_masks(apply_id_prior(s, t), 0.4)
    vision = [n for n in IDS if n.startswith("vision")]
    pruned = lambda masks: sum(int((~masks[n]).sum()) for n in vision)   # noqa: E731
    assert pruned(raw) < pruned(tower)   # raw IDs protect the high-ID vision tower; the tower-normalised prior does not


def test_unknown_normalisation_says_what_to_use():
    with pytest.raises(ValueError, match="'mean'"):
        normalised_ids(IDS, "max")
    with pytest.raises(ValueError, match="no IDs"):
        normalised_ids({}, "mean")
