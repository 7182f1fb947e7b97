"""The statistics of "ID predicts prunability", on unit tables whose answer is known."""
import math

import pandas as pd
import pytest

from vlmid.experiments import id_prunability as exp

UNITS = [(f"{g}.{i}", g) for g in ("vision", "language", "fusion") for i in range(4)]


def prunability(loss_of):
    """A prunability table at two sparsities: the drop is loss_of[unit] at 0.5 and twice that at 0.9."""
    rows = [dict(unit=u, group=g, sparsity=s, CIDEr=1.0 - f * loss_of[u], drop_CIDEr=f * loss_of[u])
            for u, g in UNITS for s, f in ((0.5, 1.0), (0.9, 2.0))]
    return pd.DataFrame(rows)


def test_a_tower_contrast_alone_correlates_overall_but_not_within_towers():
    """IDs and losses both higher in vision, but inside each tower the loss runs against the ID: the overall
    rho is high, and the tower means alone reach it; within towers it is -1."""
    ids = {u: {"vision": 12, "fusion": 8, "language": 4}[g] + i for (u, g), i in zip(UNITS, [0, 1, 2, 3] * 3)}
    loss = {u: {"vision": 10, "fusion": 6, "language": 2}[g] - i for (u, g), i in zip(UNITS, [0, 1, 2, 3] * 3)}
    t = exp.unit_table(prunability(loss), {"TwoNN": ids})
    assert t.loss.tolist() == pytest.approx([1.5 * loss[u] for u, _ in UNITS])       # mean over the sparsities
    r = exp.rank_correlations(t, "id_TwoNN")
    assert r[exp.OVERALL] > 0.7 and r[exp.TOWERS_ONLY] > 0.7
    assert r["vision"] == r["language"] == r["fusion"] == pytest.approx(-1.0)


def test_an_id_that_ranks_units_inside_towers_is_seen_there():
    ids = {u: 5.0 + i for (u, _), i in zip(UNITS, [3, 0, 2, 1] * 3)}
    loss = {u: ids[u] ** 2 for u, _ in UNITS}
    r = exp.rank_correlations(exp.unit_table(prunability(loss), {"GRIDE": ids}), "id_GRIDE")
    assert r["vision"] == r["language"] == r["fusion"] == pytest.approx(1.0)
    assert math.isnan(r[exp.TOWERS_ONLY])                                              # every tower mean the same


def test_pooled_rhos_across_builds_and_bad_input():
    builds = [{exp.OVERALL: 0.8, "vision": 0.4}, {exp.OVERALL: 0.7, "vision": -0.2},
              {exp.OVERALL: 0.9, "vision": math.nan}]
    p = exp.pooled(builds)
    assert p[exp.OVERALL]["rho"] == pytest.approx(0.8) and p[exp.OVERALL]["stability"] == 3
    assert p[exp.OVERALL]["ci_high"] <= 1.0 and p[exp.OVERALL]["ci_low"] > 0.5
    assert p["vision"]["n_builds"] == 2 and p["vision"]["ci_low"] == -1.0               # clipped to rho's range
    with pytest.raises(KeyError, match="drop_garment_f1"):
        exp.unit_table(prunability({u: 1.0 for u, _ in UNITS}), {}, metric="garment_f1")
    with pytest.raises(KeyError, match="no ID for units"):
        exp.unit_table(prunability({u: 1.0 for u, _ in UNITS}), {"TwoNN": {}})
