"""Tests for vlmid.pruning: scores by hand, the global threshold, masks under AdamW, the schedule,
the ID prior, what is never pruned, and the prune-while-fine-tuning loop on a tiny-config BLIP."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vlmid.models.anatomy import module_group
from vlmid.pruning import (METHODS, Masks, MagnitudeScorer, PlatonScorer, PruneConfig, TaylorScorer,
                           WandaScorer, allocate_sparsity, apply_id_prior, cubic_keep_ratio, first_step_below,
                           global_kth_value, global_masks, layer_scores, layer_units, layer_utility,
                           layerwise_masks, load_linear_ids, magnitude_score, make_scorer,
                           module_sparsities, platon_score, platon_update, prunable_linears,
                           prunable_weights, prune_finetune, rowwise_masks, sparsity_report, taylor_score,
                           wanda_masks, wanda_score)


def tiny_blip(layers=2, hidden=32, seed=0):
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipTextConfig, BlipVisionConfig
    torch.manual_seed(seed)
    v = BlipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=2, image_size=32, patch_size=8, initializer_range=0.02)
    t = BlipTextConfig(vocab_size=60, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                       num_attention_heads=2, encoder_hidden_size=hidden, max_position_embeddings=16,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0, sep_token_id=2)
    return BlipForConditionalGeneration(BlipConfig(vision_config=v.to_dict(), text_config=t.to_dict()))


def blip_batches(seed=0, batch=4, length=8):
    g = torch.Generator().manual_seed(seed)
    while True:
        ids = torch.randint(3, 60, (batch, length), generator=g)
        ids[:, 0] = 1
        yield torch.randn(batch, 3, 32, 32, generator=g), ids


def blip_loss(model):
    return lambda b: model(pixel_values=b[0], input_ids=b[1], labels=b[1]).loss


class LinearLoss(nn.Module):
    """loss = sum(W * C): its gradient is C, so every score is known by hand."""
    def __init__(self, w):
        super().__init__()
        self.fc = nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(w)

    def loss(self, c):
        return (self.fc.weight * c).sum()


# -- scores --------------------------------------------------------------------------------
W = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
C = torch.tensor([[0.5, 1.0], [-1.0, 4.0]])


def test_magnitude_and_taylor_by_hand():
    assert torch.equal(magnitude_score(W), torch.tensor([[1.0, 2.0], [3.0, 0.5]]))
    assert torch.equal(taylor_score(W, C), torch.tensor([[0.5, 2.0], [3.0, 2.0]]))
    m = LinearLoss(W)
    scorer = MagnitudeScorer({"fc": m.fc.weight})
    assert torch.equal(scorer.scores()["fc"], W.abs())


def test_taylor_scorer_averages_the_window():
    m = LinearLoss(W)
    scorer = TaylorScorer({"fc": m.fc.weight})
    for c in (C, 3 * C):
        m.fc.weight.grad = None
        m.loss(c).backward()
        scorer.observe()
    # mean over the two steps of |w * c| = 2 |w * C|
    assert torch.allclose(scorer.scores()["fc"], 2 * (W * C).abs())
    with pytest.raises(RuntimeError):  # the window starts afresh
        scorer.scores()


def test_platon_update_by_hand():
    w, g = torch.tensor([2.0]), torch.tensor([1.0])
    i_bar, u_bar = platon_update(torch.zeros(1), torch.zeros(1), w, g, 0.85, 0.95)
    # I = 2; I_bar = 0.15 * 2 = 0.3; U = |2 - 0.3| = 1.7; U_bar = 0.05 * 1.7 = 0.085
    assert i_bar.item() == pytest.approx(0.3) and u_bar.item() == pytest.approx(0.085)
    i_bar, u_bar = platon_update(i_bar, u_bar, w, torch.tensor([0.0]), 0.85, 0.95)
    # I = 0; I_bar = 0.85 * 0.3 = 0.255; U = 0.255; U_bar = 0.95 * 0.085 + 0.05 * 0.255 = 0.0935
    assert i_bar.item() == pytest.approx(0.255) and u_bar.item() == pytest.approx(0.0935)
    assert platon_score(i_bar, u_bar).item() == pytest.approx(0.255 * 0.0935)


def test_platon_scorer_on_a_model():
    m = LinearLoss(W)
    scorer = PlatonScorer({"fc": m.fc.weight})
    m.loss(C).backward()
    scorer.observe()
    sens = (W * C).abs()
    i_bar = 0.15 * sens
    u_bar = 0.05 * (sens - i_bar).abs()
    assert torch.allclose(scorer.scores()["fc"], i_bar * u_bar)
    # the weight with the largest |w g| (3.0, at [1, 0]) is the most important one
    assert scorer.scores()["fc"].argmax().item() == 2
    with pytest.raises(ValueError, match="beta1"):
        PlatonScorer({"fc": m.fc.weight}, beta1=1.0)


# -- the global threshold ------------------------------------------------------------------
def test_global_kth_value_matches_concatenation():
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(50, 40, generator=g).abs() ** 3, torch.rand(300, generator=g), torch.randn(7, 9, generator=g)]
    allv = torch.cat([t.reshape(-1) for t in ts])
    for k in (1, 17, 1000, 2300, allv.numel()):
        # a tiny gather limit forces several rounds of histogram refinement
        got = global_kth_value(ts, k, bins=8, gather_limit=16)
        assert got.item() == allv.kthvalue(k).values.item()
    ties = [torch.randint(0, 3, (100,), generator=g).float() for _ in range(3)]
    allt = torch.cat(ties)
    for k in (1, 100, 150, 300):
        assert global_kth_value(ties, k, bins=4, gather_limit=2).item() == allt.kthvalue(k).values.item()
    with pytest.raises(ValueError, match="k=0"):
        global_kth_value(ts, 0)


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.4, 0.6, 0.8, 0.97])
def test_global_threshold_hits_the_sparsity(sparsity):
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.rand(30, 20, generator=g), "b": 0.5 * torch.rand(64, 8, generator=g),
              "c": torch.rand(10, 10, generator=g) + 0.5,
              "ties": torch.full((12, 12), 0.25)}  # a block of ties right in the middle
    masks = global_masks(scores, sparsity, min_keep=4)
    total = sum(s.numel() for s in scores.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert abs(pruned - round(sparsity * total)) <= len(scores)  # within one weight per matrix
    assert pruned == round(sparsity * total)  # in fact exact
    # one threshold: nothing pruned scores above anything kept (except in matrices held at min_keep)
    free = [n for n in scores if int(masks[n].sum()) > 4]
    kept = torch.cat([scores[n][masks[n]] for n in free] + [torch.tensor([float("inf")])])
    gone = torch.cat([s[~m] for s, m in zip(scores.values(), masks.values())] + [torch.tensor([-1.0])])
    assert gone.max() <= kept.min()
    for m in masks.values():
        assert int(m.sum()) >= 4


def test_min_keep_is_respected_and_paid_for_by_the_others():
    scores = {"small": torch.full((4, 4), 1e-6), "big": torch.rand(20, 20)}
    masks = global_masks(scores, 0.5, min_keep=3)
    assert int(masks["small"].sum()) == 3
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * 416)


def test_layerwise_masks_per_matrix():
    scores = {"a": torch.arange(100.0).reshape(10, 10), "b": torch.arange(50.0)}
    masks = layerwise_masks(scores, {"a": 0.3, "b": 0.9}, min_keep=2)
    assert int((~masks["a"]).sum()) == 30 and bool(masks["a"].reshape(-1)[30:].all())
    assert int((~masks["b"]).sum()) == 45


# -- Wanda: |w| x input norm, compared within rows ----------------------------------------------
WW = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
XW = torch.tensor([[2.4, 0.6], [3.2, 0.8]])  # two tokens; feature L2 norms: sqrt(2.4^2 + 3.2^2) = 4, 1


def test_wanda_score_and_rowwise_masks_by_hand():
    norms = XW.norm(dim=0)
    assert torch.allclose(norms, torch.tensor([4.0, 1.0]))
    sc = wanda_score(WW, norms)
    assert torch.allclose(sc, torch.tensor([[4.0, 2.0], [12.0, 0.5]]))
    # 50 % row by row: every row keeps its column 0 (4 > 2, 12 > 0.5)
    row = rowwise_masks({"fc": sc}, {"fc": 0.5}, min_keep=1)["fc"]
    assert torch.equal(row, torch.tensor([[True, False], [True, False]]))
    assert torch.equal(wanda_masks({"fc": sc}, 0.5, min_keep=1)["fc"], row)
    # global magnitude at 50 % drops the two smallest |w| (1 and 0.5): a different set
    mag = global_masks({"fc": magnitude_score(WW)}, 0.5, min_keep=1)["fc"]
    assert torch.equal(mag, torch.tensor([[False, True], [True, False]]))
    # a 3 x 4 layer where even ONE threshold over the Wanda scores would differ: it empties row 2
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5], [4.0, 1.0, -0.5, 2.0], [0.1, 0.3, 0.1, 0.4]])
    sc = wanda_score(w, torch.tensor([1.0, 2.0, 3.0, 0.5]))
    assert torch.allclose(sc, torch.tensor([[1.0, 4.0, 9.0, 0.25], [4.0, 2.0, 1.5, 1.0], [0.1, 0.6, 0.3, 0.2]]))
    row = rowwise_masks({"fc": sc}, {"fc": 0.5}, min_keep=1)["fc"]
    assert torch.equal(row, torch.tensor([[False, True, True, False], [True, True, False, False],
                                          [False, True, True, False]]))
    one_threshold = global_masks({"fc": sc}, 0.5, min_keep=1)["fc"]
    assert not one_threshold[2].any() and not torch.equal(one_threshold, row)
    mag = global_masks({"fc": w.abs()}, 0.5, min_keep=1)["fc"]  # keeps 4, 3, 2, 2, 1, 1
    assert torch.equal(mag, torch.tensor([[True, True, True, False], [True, True, False, True],
                                          [False, False, False, False]]))
    with pytest.raises(ValueError, match="in_features=2"):
        wanda_score(WW, torch.ones(3))
    with pytest.raises(ValueError, match="nn.Linear weight"):
        wanda_score(torch.ones(4), torch.ones(4))
    with pytest.raises(ValueError, match="negative"):
        wanda_score(WW, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="row-wise"):
        rowwise_masks({"v": torch.ones(4)}, {"v": 0.5})


def test_wanda_scorer_hooks_a_linear():
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        fc.weight.copy_(WW)
    scorer = WandaScorer({"fc": fc})
    assert not scorer.needs_grad and len(fc._forward_pre_hooks) == 1
    with pytest.raises(RuntimeError, match="no forward pass"):
        scorer.scores()
    x2 = torch.tensor([[[0.0, 3.0], [1.0, 1.0], [1.0, 0.0]]])  # (batch 1, 3 tokens, 2 features)
    fc(XW)
    fc(x2)
    scorer.observe()  # a no-op: the hooks saw the inputs
    with scorer.paused():  # an evaluation: not counted
        fc(100 * XW)
    # sum of squares over the 5 tokens: [16 + 2, 1 + 10] -> RMS sqrt([18/5, 11/5])
    rms = torch.tensor([math.sqrt(18 / 5), math.sqrt(11 / 5)])
    assert torch.allclose(scorer.input_rms()["fc"], rms)
    got = scorer.scores()["fc"]
    assert torch.allclose(got, WW * rms)
    # the RMS is the L2 norm / sqrt(tokens): within each row it ranks like Wanda's score
    l2 = torch.cat([XW, x2[0]]).norm(dim=0)
    assert torch.allclose(got, wanda_score(WW, l2) / math.sqrt(5))
    # the window starts afresh after scores()
    with pytest.raises(RuntimeError, match="no forward pass"):
        scorer.scores()
    fc(XW)
    assert torch.allclose(scorer.scores()["fc"], WW * torch.tensor([4.0, 1.0]) / math.sqrt(2))
    scorer.close()
    assert len(fc._forward_pre_hooks) == 0
    fc(XW)  # no hook any more: nothing seen
    with pytest.raises(RuntimeError, match="no forward pass"):
        scorer.scores()
    scorer.close()  # idempotent
    # make_scorer: Wanda needs the modules; the others still take only weights
    with pytest.raises(ValueError, match="modules"):
        make_scorer("wanda", {"fc": fc.weight})
    with make_scorer("wanda", {"fc": fc.weight}, modules={"fc": fc}) as s:
        assert isinstance(s, WandaScorer) and len(fc._forward_pre_hooks) == 1
    assert len(fc._forward_pre_hooks) == 0
    assert isinstance(make_scorer("magnitude", {"fc": fc.weight}), MagnitudeScorer)
    assert make_scorer("platon", {"fc": fc.weight}, beta1=0.5).beta1 == 0.5
    with pytest.raises(TypeError, match="nn.Linear"):
        WandaScorer({"conv": nn.Conv1d(2, 2, 1)})


def test_wanda_masks_with_the_id_prior_shift_the_layer_budget():
    g = torch.Generator().manual_seed(0)
    scores = {"low_id": torch.rand(8, 10, generator=g), "high_id": torch.rand(8, 10, generator=g)}
    ids = {"low_id": 1.0, "high_id": 3.0}
    plain = wanda_masks(scores, 0.5, min_keep=1)
    for m in plain.values():  # uniform: every row of every matrix loses round(0.5 * 10) = 5
        assert ((~m).sum(1) == 5).all()
    prior = wanda_masks(scores, 0.5, ids, min_keep=1)
    budget = global_masks(apply_id_prior(scores, ids), 0.5, min_keep=1)
    lost = {n: int((~m).sum()) for n, m in prior.items()}
    assert lost["high_id"] < 30 < 50 < lost["low_id"]  # the high-ID layer keeps far more
    for n, m in prior.items():
        s = int((~budget[n]).sum()) / m.numel()
        assert s not in (0.0, 0.5, 1.0)
        assert ((~m).sum(1) == round(s * 10)).all()  # row by row inside the matrix
        for r in range(m.shape[0]):  # and inside a row, the lowest scores go
            assert scores[n][r][~m[r]].max() <= scores[n][r][m[r]].min()
    total = sum(lost.values())
    assert abs(total - 80) <= 8  # within half the number of rows of round(0.5 * 160)
    # the ID-weighted global mask itself is not row-wise: its rows lose different counts
    assert len({int(c) for c in (~budget["low_id"]).sum(1)}) > 1
    assert not torch.equal(prior["low_id"], budget["low_id"])
    with pytest.raises(ValueError, match="sparsity"):
        wanda_masks(scores, 1.5)
    with pytest.raises(KeyError, match="no intrinsic dimension"):
        wanda_masks(scores, 0.5, {"low_id": 1.0})
    # min_keep: a fully pruned matrix still keeps ceil(min_keep / rows) per row
    full = rowwise_masks({"m": torch.rand(3, 5, generator=g)}, {"m": 1.0}, min_keep=4)["m"]
    assert (full.sum(1) == 2).all()


# -- masks stay applied --------------------------------------------------------------------
def test_masked_weights_stay_zero_through_adamw():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 4)

    def step():
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    for _ in range(3):  # build up AdamW momentum first
        step()
    weights = prunable_weights(model)
    masks = Masks(weights)
    masks.update(global_masks({n: w.abs() for n, w in weights.items()}, 0.5))
    # without the hooks, AdamW's momentum moves the pruned weights off zero at once
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    step()
    assert any(bool((w[~masks.masks[n]] != 0).any()) for n, w in weights.items())
    model.load_state_dict(snapshot)
    masks.apply()
    masks.attach(opt)
    for _ in range(5):
        step()
        for n, w in weights.items():
            assert bool((w[~masks.masks[n]] == 0).all())
            assert w.grad is None or bool((w.grad[~masks.masks[n]] == 0).all())
    assert sparsity_report(model).overall == pytest.approx(0.5, abs=2 / 192)
    masks.detach()


# -- the cubic schedule --------------------------------------------------------------------
def test_cubic_schedule_ends_and_midpoint():
    T, t_i, t_f, r_T = 110, 5, 5, 0.2
    assert cubic_keep_ratio(0, T, r_T, t_i, t_f) == 1.0
    assert cubic_keep_ratio(t_i, T, r_T, t_i, t_f) == 1.0  # pruning starts from r_0
    assert cubic_keep_ratio(T - t_f, T, r_T, t_i, t_f) == r_T
    assert cubic_keep_ratio(T - 1, T, r_T, t_i, t_f) == r_T
    # midpoint of the pruning span: r_T + (1 - r_T) / 8
    assert cubic_keep_ratio(t_i + 50, T, r_T, t_i, t_f) == pytest.approx(0.2 + 0.8 / 8)
    keeps = [cubic_keep_ratio(t, T, r_T, t_i, t_f) for t in range(T)]
    assert all(a >= b for a, b in zip(keeps, keeps[1:]))
    assert first_step_below(0.6, T, r_T, t_i, t_f) == next(t for t, k in enumerate(keeps) if k <= 0.6)
    with pytest.raises(ValueError, match="final_keep"):
        cubic_keep_ratio(0, T, 1.2)


# -- the ID prior --------------------------------------------------------------------------
def test_id_prior_changes_which_weights_are_pruned():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 10, 10, generator=g)
    scores = {"low_id": w[0], "high_id": w[1]}
    plain = global_masks(scores, 0.5, min_keep=1)
    prior = global_masks(apply_id_prior(scores, {"low_id": 2.0, "high_id": 50.0}), 0.5, min_keep=1)
    # plainly both matrices lose about half; with the prior the low-ID one pays almost everything
    assert 30 < int((~plain["low_id"]).sum()) < 70
    assert int((~prior["low_id"]).sum()) >= 95 and int((~prior["high_id"]).sum()) <= 5
    assert not torch.equal(plain["low_id"], prior["low_id"])
    with pytest.raises(KeyError, match="no intrinsic dimension"):
        apply_id_prior(scores, {"low_id": 2.0})


def test_load_linear_ids(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebook 01 first"):
        load_linear_ids(tmp_path)
    (tmp_path / "01_intrinsic_dimension").mkdir()
    pd.DataFrame(dict(module=["a.b", "c"], id=[12.5, 3.0], n_points=[100, 100], group=["vision", "language"])
                 ).to_csv(tmp_path / "01_intrinsic_dimension" / "linear_ids_blip.csv", index=False)
    assert load_linear_ids(tmp_path) == {"a.b": 12.5, "c": 3.0}


# -- what may be pruned on BLIP ------------------------------------------------------------
def test_blip_embeddings_norms_and_lm_head_never_pruned():
    model = tiny_blip()
    linears = prunable_linears(model)
    assert len(linears) == 2 * 4 + 2 * 10  # 4 per vision block, 10 per text block (6 language + 4 fusion)
    assert not any("cls." in n or "embed" in n for n in linears)
    assert {module_group(n) for n in linears} == {"vision", "language", "fusion"}
    assert sum(module_group(n) == "fusion" for n in linears) == 8
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    weights = {n: m.weight for n, m in linears.items()}
    Masks(weights).update(global_masks({n: w.abs() for n, w in weights.items()}, 0.8))
    pruned_names = {f"{n}.weight" for n in linears}
    for n, p in model.named_parameters():
        if n not in pruned_names:  # embeddings, norms, biases, LM head: untouched
            assert torch.equal(p, before[n]), n
    rep = sparsity_report(model)
    assert rep.overall == pytest.approx(0.8, abs=1e-3)
    assert set(rep.per_group) == {"vision", "language", "fusion"}
    assert 0 < rep.of_all_parameters < rep.overall
    assert len(rep.per_layer) == len(linears)
    only_vision = prunable_linears(model, groups=("vision",))
    assert len(only_vision) == 8
    with pytest.raises(ValueError, match="groups"):
        prunable_linears(model, groups=("audio",))


# -- the layer-level score -----------------------------------------------------------------
def test_layer_units_scores_and_allocation():
    model = tiny_blip()
    linears = prunable_linears(model)
    units = layer_units(linears)
    assert sorted(units) == ["fusion.0", "fusion.1", "language.0", "language.1", "vision.0", "vision.1"]
    assert len(units["language.0"]) == 6 and len(units["fusion.1"]) == 4
    # utility: a fake metric that only "needs" vision block 0
    lin = linears

    def evaluate():
        return 1.0 + float(lin["vision_model.encoder.layers.0.mlp.fc1"].weight.abs().sum() > 0)
    base, drops = layer_utility(linears, units, evaluate, progress=False)
    assert base == 2.0 and drops["vision.0"] == 1.0 and drops["language.1"] == 0.0
    assert lin["vision_model.encoder.layers.0.mlp.fc1"].weight.abs().sum() > 0  # restored
    sizes = {n: m.weight.numel() for n, m in linears.items()}
    ids = {n: 10.0 for n in linears}
    sc = layer_scores(units, ids, sizes, drops, lam=1.0)
    assert max(sc, key=sc.get) == "vision.0"
    unit_sizes = {u: sum(sizes[n] for n in ns) for u, ns in units.items()}
    alloc = allocate_sparsity(sc, unit_sizes, 0.4, spread=0.5)
    mean = sum(alloc[u] * unit_sizes[u] for u in alloc) / sum(unit_sizes.values())
    assert mean == pytest.approx(0.4, abs=1e-6)
    assert alloc["vision.0"] == min(alloc.values()) and alloc["vision.0"] < 0.4
    per_module = module_sparsities(units, alloc)
    assert per_module["vision_model.encoder.layers.0.mlp.fc2"] == alloc["vision.0"]
    with pytest.raises(ValueError, match="lam"):
        layer_scores(units, ids, sizes, drops, lam=-1)


# -- the loop, on a tiny-config BLIP (the paper path uses the same classes) ----------------
@pytest.mark.parametrize("method,id_prior", [("magnitude", False), ("platon", True), ("gradient", False)])
def test_prune_finetune_on_tiny_blip(method, id_prior):
    torch.set_num_threads(1)
    model = tiny_blip()
    ids = {n: float(i % 7 + 1) for i, n in enumerate(prunable_linears(model))}
    seen = []

    def on_checkpoint(sparsity, m):
        seen.append(sparsity)
        assert not m.training
        return {"CIDEr": 1.0 - sparsity}

    cfg = PruneConfig(method=method, id_prior=id_prior, final_sparsity=0.6, total_steps=12, initial_warmup=1,
                      final_warmup=1, delta_t=2, lr=1e-3, checkpoints=(0.2, 0.4), hold_steps=1)
    run = prune_finetune(model, blip_loss(model), blip_batches(), cfg, ids=ids, on_checkpoint=on_checkpoint,
                         progress=False)
    assert seen == [0.2, 0.4]
    assert [c["sparsity"] for c in run.checkpoints] == [0.2, 0.4]
    for c in run.checkpoints:  # counted zeros: at least the target, a hair above when PLATON revives zeros
        assert c["sparsity"] - 1e-3 <= c["actual_sparsity"] <= c["sparsity"] + 0.02
        assert c["CIDEr"] == pytest.approx(1.0 - c["sparsity"])
    assert run.history["loss"].map(math.isfinite).all()
    # stopped after the last checkpoint, and the pruned weights stayed zero in the model
    assert sparsity_report(model).overall >= 0.4 - 1e-3
    assert model.text_decoder.bert.embeddings.word_embeddings.weight.ne(0).all()


@pytest.mark.parametrize("id_prior", [False, True])
def test_prune_finetune_wanda_on_tiny_blip(id_prior):
    torch.set_num_threads(1)
    model = tiny_blip()
    linears = prunable_linears(model)
    ids = {n: float(i % 7 + 1) for i, n in enumerate(linears)}
    rows = []

    def on_checkpoint(sparsity, m):
        # pruned row by row: without the prior every row of a matrix loses round(s * in) weights
        for n, lin in linears.items():
            per_row = {int(c) for c in (lin.weight == 0).sum(1)}
            rows.append((sparsity, n, per_row, lin.in_features))
        m(pixel_values=torch.randn(1, 3, 32, 32), input_ids=torch.ones(1, 4, dtype=torch.long))  # paused
        return {}

    assert "wanda" in METHODS
    cfg = PruneConfig(method="wanda", id_prior=id_prior, final_sparsity=0.6, total_steps=12, initial_warmup=1,
                      final_warmup=1, delta_t=2, lr=1e-3, checkpoints=(0.2, 0.4), hold_steps=1)
    run = prune_finetune(model, blip_loss(model), blip_batches(), cfg, ids=ids, on_checkpoint=on_checkpoint,
                         progress=False)
    assert [c["sparsity"] for c in run.checkpoints] == [0.2, 0.4]
    tol = 0.5 / min(lin.in_features for lin in linears.values()) + 1e-6  # per-row rounding
    for c in run.checkpoints:
        assert abs(c["actual_sparsity"] - c["sparsity"]) <= tol
    if not id_prior:
        for s, n, per_row, n_in in rows:
            assert per_row == {round(s * n_in)}, n
    else:  # the ID moves budget between matrices; still the same count in every row of one matrix
        assert all(len(per_row) == 1 for _, _, per_row, _ in rows)
        assert len({per_row.pop() / n_in for s, _, per_row, n_in in rows if s == 0.4}) > 1
    assert run.history["loss"].map(math.isfinite).all()
    assert all(len(m._forward_pre_hooks) == 0 for m in model.modules())  # the hooks are gone


def test_prune_finetune_layer_method_and_validation():
    torch.set_num_threads(1)
    model = tiny_blip()
    linears = prunable_linears(model)
    units = layer_units(linears)
    sc = {u: (2.0 if u.startswith("vision") else 1.0) for u in units}
    sizes = {u: sum(linears[n].weight.numel() for n in ns) for u, ns in units.items()}
    cfg = PruneConfig(method="layer", final_sparsity=0.5, total_steps=6, initial_warmup=0, final_warmup=1,
                      delta_t=5, lr=1e-3)
    prune_finetune(model, blip_loss(model), blip_batches(), cfg, progress=False,
                   layer_allocation=lambda s: module_sparsities(units, allocate_sparsity(sc, sizes, s)))
    rep = sparsity_report(model)
    assert rep.overall == pytest.approx(0.5, abs=0.01)
    assert rep.per_group["vision"] < rep.per_group["language"]  # asymmetric: high score, fewer pruned
    with pytest.raises(ValueError, match="method"):
        PruneConfig(method="random").validate()
    with pytest.raises(ValueError, match="ids"):
        prune_finetune(model, blip_loss(model), blip_batches(), PruneConfig(id_prior=True), progress=False)
    with pytest.raises(ValueError, match="checkpoint"):
        PruneConfig(final_sparsity=0.4, checkpoints=(0.6,)).validate()


def _prompted_captioner(tmp_path):
    """A tiny-config BLIP with the paper profile's settings (prompt "a picture of ", 3 beams, max 20, min 5)
    and six captioned random images."""
    from PIL import Image
    from transformers import BlipForConditionalGeneration

    from vlmid.data.base import CaptionExample
    from vlmid.models.bundles import Captioner
    from vlmid.models.tiny import TinyConfig, blip_config, blip_processor
    from vlmid.models.tokenizer import build_tokenizer

    words = ["a", "picture", "of", "red", "blue", "bag", "coat", "and"]
    tok = build_tokenizer(tmp_path / "tok", words=words)
    small = TinyConfig(hidden=32, layers=2, heads=2, mlp=64, patch=8, image_size=32, max_text=24)
    torch.manual_seed(0)
    cap = Captioner(model=BlipForConditionalGeneration(blip_config(tok, small)).eval(),
                    processor=blip_processor(tok, small), prompt="a picture of ",
                    generation=dict(num_beams=3, max_length=20, min_length=5), profile="paper")
    rng = np.random.default_rng(0)
    data = [CaptionExample(i, Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)),
                           ["a red bag", "a blue coat", "a red coat and a blue bag", "a bag", "a coat"])
            for i in range(6)]
    return cap, data


def test_paper_path_prune_captioner_with_prompt(tmp_path):
    from vlmid.data import caption_batches
    from vlmid.pruning import fast_cider, prune_captioner

    torch.set_num_threads(1)
    cap, data = _prompted_captioner(tmp_path)
    images, caps = next(caption_batches(data, 3, seed=0))
    assert len(images) == 3 and all(c in data[0].captions for c in caps)
    dense_state = {k: v.clone() for k, v in cap.model.state_dict().items()}
    evaluate = lambda c: {"CIDEr": fast_cider({e.image_id: e.captions for e in data[:2]},
                                              dict(zip([0, 1], c.generate([e.image for e in data[:2]]))))}
    cfg = PruneConfig(method="platon", final_sparsity=0.4, total_steps=4, initial_warmup=0, final_warmup=0,
                      delta_t=2, lr=1e-3, checkpoints=(0.4,))
    run = prune_captioner(cap, data, cfg, dense_state, evaluate, seed=0, batch_size=3, progress=False)
    assert run.checkpoints[0]["method"] == "platon" and "CIDEr" in run.checkpoints[0]
    assert sparsity_report(cap.model).overall == pytest.approx(0.4, abs=0.01)
    cap.model.load_state_dict(dense_state)  # and it starts again from dense
    assert sparsity_report(cap.model).overall < 0.01


def test_runs_in_worker_processes_equal_the_runs_one_after_another(tmp_path):
    """prune_captioners: two workers (forked, one core each) give every run exactly what a single-threaded
    loop gives, in the jobs' order, with an evaluate that is a local closure (never pickled)."""
    from vlmid.pruning import PruneJob, prune_captioners

    torch.set_num_threads(1)
    cap, data = _prompted_captioner(tmp_path)
    dense_state = {k: v.clone() for k, v in cap.model.state_dict().items()}
    ids = {n: float(i % 5 + 1) for i, n in enumerate(prunable_linears(cap.model))}

    def evaluate(c):
        w = [m.weight.detach().double() for m in prunable_linears(c.model).values()]
        return {"checksum": float(sum((x * x).sum() for x in w)), "per_image": np.arange(3.0) * len(w),
                "caption_words": float(len(c.generate([data[0].image])[0].split()))}

    base = dict(final_sparsity=0.6, total_steps=6, initial_warmup=1, final_warmup=0, delta_t=2, lr=1e-3, hold_steps=1)
    jobs = [PruneJob(PruneConfig(method="magnitude", checkpoints=(0.2, 0.4), **base), 0, "magnitude"),
            PruneJob(PruneConfig(method="platon", id_prior=True, checkpoints=(0.4,), **base), 1, "platon + ID"),
            PruneJob(PruneConfig(method="gradient", checkpoints=(0.4,), **base), 2, "gradient"),
            PruneJob(PruneConfig(method="magnitude", id_prior=True, checkpoints=(0.4,), **base), 0, "magnitude + ID",
                     ids={n: 1.0 for n in ids})]
    one = prune_captioners(cap, data, jobs, dense_state, evaluate, batch_size=3, workers=1, ids=ids, progress=False)
    two = prune_captioners(cap, data, jobs, dense_state, evaluate, batch_size=3, workers=2, ids=ids, progress=False)
    assert [r.checkpoints[0]["method"] for r in two] == ["magnitude", "platon + ID", "gradient", "magnitude + ID"]
    assert [r.checkpoints[0]["seed"] for r in two] == [0, 1, 2, 0]
    assert [len(r.checkpoints) for r in two] == [2, 1, 1, 1]
    for a, b in zip(one, two):
        for ca, cb in zip(a.checkpoints, b.checkpoints):
            assert ca.keys() == cb.keys()
            for k in ca:
                assert np.array_equal(ca[k], cb[k]) if isinstance(ca[k], np.ndarray) else ca[k] == cb[k], k
    # a job's own IDs replace the shared ones: all-equal IDs give the masks of no prior
    plain, shared = prune_captioners(
        cap, data, [PruneJob(PruneConfig(method="magnitude", checkpoints=(0.4,), **base), 0, "m"),
                    PruneJob(PruneConfig(method="magnitude", id_prior=True, checkpoints=(0.4,), **base), 0, "m + ID")],
        dense_state, evaluate, batch_size=3, ids=ids, progress=False)
    assert plain.checkpoints[0]["checksum"] == pytest.approx(one[3].checkpoints[0]["checksum"], rel=1e-12)
    assert shared.checkpoints[0]["checksum"] != pytest.approx(one[3].checkpoints[0]["checksum"], rel=1e-6)


def test_fast_cider_ranks_right_over_wrong():
    from vlmid.pruning import fast_cider
    refs = {1: ["a red bag", "a red handbag"], 2: ["a blue coat and a shirt", "a blue jacket and a shirt"],
            3: ["a green dress", "a green dress on the left"]}
    right = fast_cider(refs, {1: "a red bag", 2: "a blue coat and a shirt", 3: "a green dress"})
    wrong = fast_cider(refs, {1: "a blue coat", 2: "a red bag", 3: "a red bag"})
    assert right > 1.0 and wrong < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_global_masks_on_the_gpu_equal_the_cpu_ones():
    g = torch.Generator().manual_seed(0)
    scores = {f"m{i}": torch.rand(300, 70, generator=g) for i in range(4)}
    cpu = global_masks(scores, 0.4, min_keep=4)
    gpu = global_masks({n: s.cuda() for n, s in scores.items()}, 0.4, min_keep=4)
    assert all(gpu[n].is_cuda and torch.equal(gpu[n].cpu(), cpu[n]) for n in scores)
    assert int(global_kth_value([s.cuda() for s in scores.values()], 5000, gather_limit=100).cpu() ==
               global_kth_value(list(scores.values()), 5000, gather_limit=100)) == 1


def test_pruning_plan_counts_notebook_02s_work_by_hand():
    """Tiny defaults: T = 80, holds of 6 at 5 checkpoints, 2 seeds, t_i = 5. The schedule keeps
    0.2 + 0.8 (1 - (t - 5) / 75)^3, first <= 0.6 at t = 21 (t = 20 keeps 0.6096)."""
    from vlmid.params.pruning import PruningParams
    from vlmid.pruning.plan import pruning_plan

    plan = pruning_plan(PruningParams(profile="tiny", device="cpu"), n_methods=9)
    full, short, control = 80 + 5 * 6, 21 + 6, 21 + 2 * 6       # 40 % and 20 % are <= 0.4: two holds
    n_short = 9 * 1 + 3 * 2                                       # second seeds; modality x2 + tower prior, per seed
    assert plan.count("step") == 9 * full + n_short * short + control == 1428
    assert plan.count("caption") == (9 * 5 + n_short + 2) * 1000 == 62 * 1000   # every one of the 1000 test scenes
    assert f"in {9 + n_short + 1} prune-fine-tune runs" in plan.describe()
    assert plan.seconds({"step": 0.5, "caption": 0.01}) == pytest.approx(1428 * 0.5 + 62 * 1000 * 0.01)
    assert "(0.37 h)" in plan.describe({"step": 0.5, "caption": 0.01})
