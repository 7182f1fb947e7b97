"""Hooks on tiny-config BLIP / CLIP (random init): right sites, right shapes, right pooling, removed after."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vlmid.id import (LayerRecorder, block_sites, collect, layer_ids, linear_id_table, linear_sites,
                      load_linear_ids, model_family, pool)

torch.set_num_threads(1)
H, N_VISION, N_TEXT, IMG, PATCH = 32, 3, 2, 32, 8
N_TOKENS_IMG = (IMG // PATCH) ** 2 + 1  # patches + CLS


@pytest.fixture(scope="module")
def blip():
    from transformers import BlipConfig, BlipForConditionalGeneration

    torch.manual_seed(0)
    cfg = BlipConfig(
        vision_config=dict(hidden_size=H, intermediate_size=64, num_hidden_layers=N_VISION, num_attention_heads=2,
                           image_size=IMG, patch_size=PATCH, initializer_range=0.02),
        text_config=dict(vocab_size=50, hidden_size=H, intermediate_size=64, num_hidden_layers=N_TEXT,
                         num_attention_heads=2, encoder_hidden_size=H, max_position_embeddings=32,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, sep_token_id=2))
    return BlipForConditionalGeneration(cfg).eval()


@pytest.fixture(scope="module")
def clip():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        vision_config=dict(hidden_size=H, intermediate_size=64, num_hidden_layers=N_VISION, num_attention_heads=2,
                           image_size=IMG, patch_size=PATCH),
        text_config=dict(vocab_size=50, hidden_size=H, intermediate_size=64, num_hidden_layers=N_TEXT,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0),
        projection_dim=16)
    return CLIPModel(cfg).eval()


def make_batches(n=10, batch_size=4, seq=7, seed=0):
    """Images and right-padded token ids (lengths 3..seq, EOS = 2 last), in batches."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(n, 3, IMG, IMG, generator=g)
    lengths = torch.randint(3, seq + 1, (n,), generator=g)
    lengths[0] = seq  # one full-length text, so the padded width is seq
    ids = torch.randint(3, 50, (n, seq), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    ids[torch.arange(n), lengths - 1] = 2
    ids = ids * mask
    ids[:, 0] = 1
    return [dict(pixel_values=pixels[s:s + batch_size], input_ids=ids[s:s + batch_size],
                 attention_mask=mask[s:s + batch_size]) for s in range(0, n, batch_size)]


def hook_count(model):
    # compared before / after: transformers installs hooks of its own (output_hidden_states)
    return sum(len(m._forward_hooks) for m in model.modules())


def test_families_and_block_sites(blip, clip):
    assert model_family(blip) == "blip" and model_family(clip) == "clip"
    with pytest.raises(ValueError, match="BlipForConditionalGeneration or a CLIPModel"):
        model_family(nn.Linear(2, 2))
    b = block_sites(blip)
    assert [s.group for s in b].count("vision") == N_VISION
    assert [s.group for s in b].count("language") == N_TEXT
    assert [s.group for s in b].count("fusion") == N_TEXT
    assert all(s.name.endswith("crossattention") for s in b if s.group == "fusion")
    c = block_sites(clip)
    assert [s.group for s in c] == ["vision"] * N_VISION + ["text"] * N_TEXT
    names = dict(blip.named_modules())
    assert all(s.name in names for s in b)


def test_linear_sites_cover_every_linear_but_the_tied_head(blip, clip):
    sites = linear_sites(blip)
    all_linear = [n for n, m in blip.named_modules() if isinstance(m, nn.Linear)]
    assert [s.name for s in sites] == [n for n in all_linear if not n.startswith("text_decoder.cls.")]
    per_vision, per_text = 4, 10  # qkv, projection, fc1, fc2 | q,k,v,dense x (self, cross) + 2 FFN
    groups = pd.Series([s.group for s in sites]).value_counts()
    assert groups["vision"] == N_VISION * per_vision
    assert groups["fusion"] == N_TEXT * 4 and groups["language"] == N_TEXT * (per_text - 4)
    key = next(s for s in sites if s.name == "text_decoder.bert.encoder.layer.1.crossattention.self.key")
    assert key.stream == "image" and key.layer == 1 and key.group == "fusion"
    csites = linear_sites(clip)
    assert {s.name for s in csites} == {n for n, m in clip.named_modules() if isinstance(m, nn.Linear)}
    proj = next(s for s in csites if s.name == "visual_projection")
    assert proj.group == "vision" and proj.layer == N_VISION


@pytest.mark.parametrize("pooling", ["cls", "mean", "flatten"])
def test_blip_block_shapes_and_hooks_removed(blip, pooling):
    batches = make_batches(n=10, batch_size=4, seq=7)
    sites = block_sites(blip)
    before = hook_count(blip)
    feats = collect(blip, batches, sites, pooling=pooling, progress=False)
    assert hook_count(blip) == before
    assert set(feats) == {s.name for s in sites}
    for s in sites:
        tokens = N_TOKENS_IMG if s.stream == "image" else 7
        width = H * tokens if pooling == "flatten" else H
        assert feats[s.name].shape == (10, width), (s.name, feats[s.name].shape)
        assert torch.isfinite(feats[s.name]).all()


def test_blip_linear_shapes(blip):
    batches = make_batches(n=6, batch_size=3)
    sites = linear_sites(blip)
    before = hook_count(blip)
    feats = collect(blip, batches, sites, pooling="mean", progress=False)
    mods = dict(blip.named_modules())
    for s in sites:
        assert feats[s.name].shape == (6, mods[s.name].out_features)
    assert hook_count(blip) == before


def test_clip_blocks_match_hidden_states(clip):
    # the hook at vision layer i is hidden_states[i + 1]; text "cls" is the last real token
    batches = make_batches(n=5, batch_size=5, seq=6)
    b = batches[0]
    with torch.no_grad():
        vis = clip.vision_model(pixel_values=b["pixel_values"], output_hidden_states=True).hidden_states
        txt = clip.text_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                              output_hidden_states=True).hidden_states
    sites = block_sites(clip)
    before = hook_count(clip)
    cls = collect(clip, batches, sites, pooling="cls", progress=False)
    mean = collect(clip, batches, sites, pooling="mean", progress=False)
    last = b["attention_mask"].sum(1) - 1
    m = b["attention_mask"].unsqueeze(-1).float()
    for i in range(N_VISION):
        torch.testing.assert_close(cls[f"vision_model.encoder.layers.{i}"], vis[i + 1][:, 0])
        torch.testing.assert_close(mean[f"vision_model.encoder.layers.{i}"], vis[i + 1].mean(1))
    for i in range(N_TEXT):
        torch.testing.assert_close(cls[f"text_model.encoder.layers.{i}"], txt[i + 1][torch.arange(5), last])
        torch.testing.assert_close(mean[f"text_model.encoder.layers.{i}"], (txt[i + 1] * m).sum(1) / m.sum(1))
    assert hook_count(clip) == before


def test_padding_does_not_change_pooled_text(blip):
    # the same example alone (no padding) and inside a padded batch: same mean / last-token vector
    batches = make_batches(n=4, batch_size=4, seq=7)
    b = batches[0]
    j = int(torch.argmin(b["attention_mask"].sum(1)))
    L = int(b["attention_mask"][j].sum())
    alone = [dict(pixel_values=b["pixel_values"][j:j + 1], input_ids=b["input_ids"][j:j + 1, :L],
                  attention_mask=b["attention_mask"][j:j + 1, :L])]
    site = [s for s in block_sites(blip) if s.group == "language"][-1:]
    for pooling in ("mean", "cls"):
        batch_feats = collect(blip, batches, site, pooling=pooling, progress=False)[site[0].name][j]
        alone_feats = collect(blip, alone, site, pooling=pooling, progress=False)[site[0].name][0]
        torch.testing.assert_close(batch_feats, alone_feats, rtol=1e-4, atol=1e-5)


def test_hooks_removed_even_on_error(blip):
    sites = block_sites(blip)
    before = hook_count(blip)
    with pytest.raises(RuntimeError, match="boom"):
        with LayerRecorder(blip, sites, "mean"):
            assert hook_count(blip) == before + len(sites)
            raise RuntimeError("boom")
    assert hook_count(blip) == before
    with pytest.raises(ValueError, match="pooling"):
        LayerRecorder(blip, sites, "max")
    with pytest.raises(ValueError, match="pooling"):
        LayerRecorder(blip, sites, [])


def test_pool_masks_padding():
    h = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(pool(h, "mean", mask)[0], h[0, :2].mean(0))
    torch.testing.assert_close(pool(h, "cls", mask), torch.stack([h[0, 1], h[1, 2]]))
    torch.testing.assert_close(pool(h, "cls", None), h[:, 0])
    assert pool(h, "flatten", mask)[0, 4:].abs().sum() == 0
    with pytest.raises(ValueError, match="does not fit"):
        pool(h, "mean", torch.ones(2, 4))


def test_layer_ids_and_the_file_notebook_02_reads(tmp_path):
    from vlmid.id.representations import Site

    rng = np.random.default_rng(0)
    feats = {"a": torch.from_numpy(rng.standard_normal((300, 3)) @ rng.standard_normal((3, 20))),
             "b": torch.from_numpy(rng.standard_normal((300, 8)) @ rng.standard_normal((8, 20)))}
    sites = [Site("a", "vision", 0, "image", "linear"), Site("b", "language", 0, "text", "linear")]
    table = layer_ids(feats, sites, n_bootstrap=20, progress=False)
    assert table.loc[0, "id"] < table.loc[1, "id"]
    assert (table.ci_low < table.id).all() and (table.id < table.ci_high).all()
    with pytest.raises(FileNotFoundError, match="run notebook 01 first"):
        load_linear_ids(tmp_path)
    folder = tmp_path / "01_intrinsic_dimension"
    folder.mkdir()
    linear_id_table(table).to_csv(folder / "linear_ids_blip.csv", index=False)
    ids = load_linear_ids(tmp_path)
    assert ids == {"a": pytest.approx(table.loc[0, "id"]), "b": pytest.approx(table.loc[1, "id"])}
    assert load_linear_ids(folder) == ids == load_linear_ids(folder / "linear_ids_blip.csv")
    assert list(pd.read_csv(folder / "linear_ids_blip.csv").columns[:4]) == ["module", "id", "n_points", "group"]


def test_several_poolings_from_one_pass(clip):
    batches = make_batches(n=6, batch_size=3, seq=6)
    sites = block_sites(clip)
    both = collect(clip, batches, sites, pooling=["mean", "cls"], progress=False)
    assert set(both) == {"mean", "cls"}
    for how in ("mean", "cls"):
        one = collect(clip, batches, sites, pooling=how, progress=False)
        for name in one:
            torch.testing.assert_close(both[how][name], one[name])


def test_the_id_hooks_and_the_pruning_masks_group_every_linear_alike(blip):
    # one rule (vlmid.models.anatomy): notebook 02's ID prior per group must mean what notebook 01 measured
    from vlmid.models.anatomy import module_block, module_group
    from vlmid.pruning import prunable_linears

    sites = {s.name: s for s in linear_sites(blip)}
    prunable = prunable_linears(blip)
    assert prunable and set(prunable) <= set(sites)
    assert {n: module_group(n) for n in prunable} == {n: sites[n].group for n in prunable}
    assert {n: module_block(n) for n in prunable} == {n: sites[n].layer for n in prunable}
    assert module_group("text_decoder.bert.encoder.layer.0.crossattention.output.dense") == "fusion"
    assert module_group("text_decoder.bert.encoder.layer.0.attention.self.query") == "language"
