"""vlmid.pareto: one definition of the front, for both "higher is better" and "lower is better" axes."""
import numpy as np
import pandas as pd
import pytest

from vlmid.pareto import pareto_front, pareto_mask


def test_the_front_of_speed_and_accuracy():
    t = pd.DataFrame({"variant": ["baseline", "a", "b", "c", "d"], "speedup": [1.0, 1.2, 1.6, 2.0, 1.5],
                      "top1": [0.80, 0.80, 0.795, 0.30, 0.70]})
    # baseline is beaten by a (same top-1, faster); d by b on both axes
    assert pareto_front(t, higher=["speedup", "top1"])["variant"].tolist() == ["a", "b", "c"]


def test_cost_axes_are_minimised_and_missing_values_are_never_on_the_front():
    t = pd.DataFrame({"MB": [4.0, 2.0, 1.0, 1.0, np.nan], "CIDEr": [1.30, 1.29, 0.50, 0.40, 2.0]})
    assert pareto_mask(t, higher=["CIDEr"], lower=["MB"]).tolist() == [True, True, True, False, False]


def test_equal_rows_do_not_dominate_each_other():
    t = pd.DataFrame({"x": [1.0, 1.0, 0.5], "y": [2.0, 2.0, 1.0]})
    assert pareto_mask(t, higher=["x", "y"]).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="at least one column"):
        pareto_mask(t)
