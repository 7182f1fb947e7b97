"""ID-allocated layer sparsity (OWL-style allocation at a fixed budget) and its controls, on a tiny-config BLIP."""
import pytest
import torch

from vlmid.models.anatomy import module_group
from vlmid.pruning import PruneConfig, layer_units, method_label, prunable_linears, prune_finetune, sparsity_report
from vlmid.pruning.allocation import allocation_for, id_allocation, unit_ids, uniform_allocation

from test_pruning import blip_batches, blip_loss, tiny_blip


def vision_high_ids(linears):
    """Vision units at ID 12, fusion at 8, language at 4 (a tower contrast with no layer order inside)."""
    from vlmid.models.anatomy import module_group
    return {n: {"vision": 12.0, "fusion": 8.0, "language": 4.0}[module_group(n)] for n in linears}


def test_id_allocation_keeps_the_budget_and_spares_high_id_units():
    linears = prunable_linears(tiny_blip())
    ids = vision_high_ids(linears)
    per_module = id_allocation(linears, ids, spread=0.5)(0.4)
    sizes = {n: m.weight.numel() for n, m in linears.items()}
    assert sum(per_module[n] * sizes[n] for n in linears) / sum(sizes.values()) == pytest.approx(0.4, abs=1e-9)
    by_group = {g: {round(s, 9) for n, s in per_module.items() if n.startswith(p)} for g, p in
                (("vision", "vision_model"),)}
    assert len(by_group["vision"]) == 1                                   # one ID, one sparsity per tower
    vision = next(iter(by_group["vision"]))
    language = [s for n, s in per_module.items() if ".crossattention" not in n and not n.startswith("vision_model")]
    assert vision < 0.4 < min(language) and max(language) - vision == pytest.approx(2 * 0.5 * 0.4, abs=0.02)
    assert uniform_allocation(linears)(0.4) == {n: 0.4 for n in linears}
    units = layer_units(linears)
    assert set(unit_ids(units, ids).values()) == {12.0, 8.0, 4.0}
    with pytest.raises(KeyError, match="no intrinsic dimension"):
        id_allocation(linears, {})(0.4)
    with pytest.raises(ValueError, match="allocation='id' needs ids"):
        allocation_for("id", linears)
    with pytest.raises(ValueError, match="unknown"):
        allocation_for("owl", linears)


@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_an_id_allocated_run_prunes_each_layer_to_its_share(method):
    torch.set_num_threads(1)
    model = tiny_blip()
    linears = prunable_linears(model)
    cfg = PruneConfig(method=method, allocation="id", allocation_spread=0.5, final_sparsity=0.5, total_steps=6,
                      initial_warmup=0, final_warmup=1, delta_t=5, lr=1e-3)
    assert cfg.label == f"{method}, ID-allocated" == method_label(method, allocation="id")
    prune_finetune(model, blip_loss(model), blip_batches(), cfg, ids=vision_high_ids(linears), progress=False)
    rep = sparsity_report(model)
    assert rep.overall == pytest.approx(0.5, abs=0.01)
    assert rep.per_group["vision"] < rep.per_group["fusion"] < rep.per_group["language"]
    if method == "wanda":   # within a layer, Wanda's rule: every row of a matrix loses the same count
        assert all(len({int(c) for c in (m.weight == 0).sum(1)}) == 1 for m in linears.values())


def test_allocation_is_refused_where_it_would_not_be_the_only_place_the_id_acts():
    for bad in (dict(method="magnitude", allocation="id", id_prior=True), dict(method="layer", allocation="id"),
                dict(method="magnitude", allocation="owl")):
        with pytest.raises(ValueError, match="allocation"):
            PruneConfig(**bad).validate()
    model = tiny_blip()
    with pytest.raises(ValueError, match="needs ids"):
        prune_finetune(model, blip_loss(model), blip_batches(), PruneConfig(allocation="id"), progress=False)


# -- the controls of the prior ----------------------------------------------------------------------------
def test_control_ids_keep_what_they_should_and_nothing_else():
    import numpy as np

    from vlmid.pruning.controls import control_ids
    ids = {f"m{i}": float(v) for i, v in enumerate([2.0, 4.0, 8.0, 16.0, 3.0, 5.0])}
    shuffled = control_ids(ids, "shuffled", seed=1)
    assert sorted(shuffled.values()) == sorted(ids.values()) and shuffled != ids
    inverse = control_ids(ids, "inverse")
    assert np.mean(list(inverse.values())) == pytest.approx(np.mean(list(ids.values())))
    assert sorted(ids, key=ids.get) == sorted(ids, key=inverse.get, reverse=True)   # the order reversed
    big = {f"m{i}": float(v) for i, v in enumerate(np.exp(np.random.default_rng(0).normal(2, 0.4, 4000)))}
    rnd = np.log(list(control_ids(big, "random", seed=3).values()))
    assert rnd.std() == pytest.approx(0.4, rel=0.05) and rnd.mean() == pytest.approx(2, abs=0.03)
    assert control_ids(ids, "shuffled", seed=1) == shuffled                            # seeded
    with pytest.raises(ValueError, match="unknown"):
        control_ids(ids, "tower")
    with pytest.raises(ValueError, match="positive"):
        control_ids({"a": 0.0}, "inverse")


def test_tower_matched_masks_copy_the_priors_split_but_not_its_order_inside_a_tower():
    from vlmid.pruning import apply_id_prior, global_masks, magnitude_score
    from vlmid.pruning.controls import tower_matched_masks, tower_split
    model = tiny_blip()
    linears = prunable_linears(model)
    scores = {n: magnitude_score(m.weight) for n, m in linears.items()}
    ids = {n: 3.0 + (i % 5) for i, n in enumerate(linears)}                          # IDs vary inside towers too
    prior = global_masks(apply_id_prior(scores, ids), 0.4)
    matched = tower_matched_masks(scores, ids, 0.4)
    split = tower_split(prior)
    assert tower_split(matched) == pytest.approx(split, abs=1)                    # the same count per tower
    assert tower_split(global_masks(scores, 0.4)) != split                        # which no prior would give
    for tower in split:                                                           # inside a tower: the base score alone
        part = {n: s for n, s in scores.items() if module_group(n) == tower}
        size = sum(s.numel() for s in part.values())
        alone = global_masks(part, split[tower] / size)
        assert all(torch.equal(alone[n], matched[n]) for n in part)
    assert any(not torch.equal(prior[n], matched[n]) for n in scores)             # the prior's inner order differs
    assert PruneConfig(id_prior=True, tower_matched=True).validate().label == "magnitude, ID's tower split"
    with pytest.raises(ValueError, match="tower_matched"):
        PruneConfig(tower_matched=True).validate()
    with pytest.raises(ValueError, match="tower_matched"):
        PruneConfig(method="wanda", id_prior=True, tower_matched=True).validate()


def test_the_mask_rule_of_each_config_is_its_rule():
    from vlmid.pruning import apply_id_prior, global_masks, layerwise_masks, magnitude_score, mask_rule
    from vlmid.pruning.controls import tower_matched_masks
    linears = prunable_linears(tiny_blip())
    scores = {n: magnitude_score(m.weight) for n, m in linears.items()}
    ids = {n: 3.0 + (i % 5) for i, n in enumerate(linears)}
    same = lambda a, b: all(torch.equal(a[n], b[n]) for n in scores)  # noqa: E731
    assert same(mask_rule(PruneConfig(id_prior=True, tower_matched=True), ids)(0.4, scores),
                tower_matched_masks(scores, ids, 0.4))
    assert same(mask_rule(PruneConfig(id_prior=True), ids)(0.4, scores), global_masks(apply_id_prior(scores, ids), 0.4))
    alloc = id_allocation(linears, ids)
    assert same(mask_rule(PruneConfig(allocation="id"), ids, alloc)(0.4, scores), layerwise_masks(scores, alloc(0.4)))


# -- prunability per unit -----------------------------------------------------------------------------------
def test_unit_prunability_prunes_one_unit_by_magnitude_and_restores_it():
    from vlmid.pruning import unit_prunability
    model = tiny_blip()
    linears = prunable_linears(model)
    units = layer_units(linears)
    fc1 = linears["vision_model.encoder.layers.0.mlp.fc1"].weight
    before = {n: m.weight.detach().clone() for n, m in linears.items()}

    smallest = fc1.detach().abs() <= fc1.detach().abs().flatten().kthvalue(fc1.numel() // 2).values

    def evaluate():   # one vision matrix's zero fraction, its zeros outside its smallest half, the total weight mass
        return {"zeros": float((fc1 == 0).float().mean()), "stray": float(((fc1 == 0) & ~smallest).sum()),
                "mass": float(sum(m.weight.abs().sum() for m in linears.values()))}

    t = unit_prunability(linears, units, evaluate, sparsities=(0.5, 1.0), progress=False)
    assert len(t) == 2 * len(units) and set(t.group) == {"vision", "language", "fusion"}
    v0 = t[t.unit == "vision.0"].set_index("sparsity")
    assert v0.zeros.tolist() == pytest.approx([0.5, 1.0], abs=1 / fc1.numel())   # that unit, to each sparsity
    assert (t[t.unit != "vision.0"].zeros == 0).all()                             # no other unit touches it
    assert (t.drop_mass > 0).all() and t.attrs["intact"]["zeros"] == 0
    assert v0.stray[0.5] == 0                                                     # magnitude: the smallest half goes
    assert all(torch.equal(before[n], m.weight) for n, m in linears.items())      # restored
    with pytest.raises(ValueError, match="sparsities"):
        unit_prunability(linears, units, evaluate, sparsities=(0.0,), progress=False)


def test_unit_prunability_keeps_per_item_arrays_for_resampling():
    import numpy as np

    from vlmid.pruning import unit_prunability
    model = tiny_blip()
    linears = prunable_linears(model)
    units = layer_units(linears)
    fc1 = linears["vision_model.encoder.layers.0.mlp.fc1"].weight

    def evaluate():   # a per-item array (two items: zero fraction of fc1 and 1) beside a number, and a None
        zeros = float((fc1 == 0).float().mean())
        return {"zeros": zeros, "per_item": np.array([zeros, 1.0]), "absent": None}

    t = unit_prunability(linears, units, evaluate, sparsities=(0.5,), progress=False)
    assert "per_item" not in t and "absent" not in t
    assert t.attrs["intact_per_item"]["per_item"].tolist() == [0.0, 1.0]
    assert t.attrs["per_item"][("vision.0", 0.5)]["per_item"].tolist() == pytest.approx([0.5, 1.0], abs=0.01)
    assert t.attrs["per_item"][("language.0", 0.5)]["per_item"].tolist() == [0.0, 1.0]


def test_prune_captioners_gives_each_allocated_job_its_own_allocation(monkeypatch):
    """Two jobs, one allocation each: every job reads the rule its config names (a known split by hand: the
    'id' rule below prunes only vision, the 'uniform' rule every Linear alike), and a job without its rule
    is refused."""
    from vlmid.pruning import PruneJob, prune_captioners

    class Cap:   # the least a captioner needs here
        def __init__(self, model):
            self.model = model

        def loss(self, images, captions):
            return self.model(pixel_values=images, input_ids=captions, labels=captions).loss

    model = tiny_blip()
    linears = prunable_linears(model)
    cap, dense = Cap(model), {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    train = [(torch.randn(3, 32, 32, generator=g), torch.randint(3, 60, (8,), generator=g)) for _ in range(8)]
    vision_only = lambda s: {n: (min(1.0, 2 * s) if module_group(n) == "vision" else 0.0) for n in linears}  # noqa: E731
    allocations = {"id": vision_only, "uniform": uniform_allocation(linears)}

    def evaluate(c):
        z = {grp: 0 for grp in ("vision", "language", "fusion")}
        for n, m in prunable_linears(c.model).items():
            z[module_group(n)] += int((m.weight == 0).sum())
        return {f"zeros_{k}": float(v) for k, v in z.items()}

    base = dict(final_sparsity=0.3, total_steps=3, initial_warmup=0, final_warmup=0, delta_t=1, lr=1e-4,
                checkpoints=(0.3,), min_keep=0)
    jobs = [PruneJob(PruneConfig(method="magnitude", allocation=a, **base), 0, a) for a in ("id", "uniform")]
    import vlmid.pruning.finetune as ft
    # the tiny BLIP trains on tensors: batches stack them as they come
    monkeypatch.setattr(ft, "caption_batches", lambda data, size, seed: iter(
        [(torch.stack([d[0] for d in data[i:i + size]]), torch.stack([d[1] for d in data[i:i + size]]))
         for i in range(0, len(data), size)] * 10))
    by_id, uniform = prune_captioners(cap, train, jobs, dense, evaluate, batch_size=4, allocations=allocations,
                                      progress=False)
    assert by_id.checkpoints[0]["zeros_language"] == 0 and by_id.checkpoints[0]["zeros_vision"] > 0
    assert uniform.checkpoints[0]["zeros_language"] > 0
    with pytest.raises(KeyError, match="allocations="):
        prune_captioners(cap, train, jobs[:1], dense, evaluate, batch_size=4, progress=False)
