"""vlmid.tokens: the pure selection/merging functions on hand-built tensors, and the
patch on a tiny random CLIP (keep 1.0 == original, unpatch restores, token counts, CLS at 0).
Notebook 03's tables built on them are tests/test_experiment_token_pruning.py."""
import pytest
import torch
from helpers import random_clip

from vlmid import tokens
from vlmid.tokens import merge as M

N_LAYERS, IMAGE, PATCH = 4, 32, 4           # 8 x 8 = 64 patches + CLS
N_PATCHES = (IMAGE // PATCH) ** 2


@pytest.fixture(scope="module")
def clip():
    return random_clip(IMAGE, PATCH, N_LAYERS)


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(3, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


def image_features(model, px, **kw):
    with torch.no_grad():
        return model.get_image_features(pixel_values=px, **kw).pooler_output


# ---------------------------------------------------------------- pure functions
def test_num_kept_rounding_and_range():
    assert M.num_kept(64, 0.7) == 44            # seed: int(0.7 * 64)
    assert M.num_kept(64, 0.7, "ceil") == 45    # EViT: ceil
    assert M.num_kept(64, 1.0) == 64 and M.num_kept(3, 0.01) == 1
    with pytest.raises(ValueError, match="keep"):
        M.num_kept(64, 1.5)


def test_l2_topk_picks_largest_norms_in_order():
    x = torch.zeros(1, 5, 2)
    x[0, :, 0] = torch.tensor([1.0, 5.0, 2.0, 4.0, 3.0])
    assert M.l2_topk(x, 3, keep_order=False).tolist() == [[1, 3, 4]]   # by score (seed)
    assert M.l2_topk(x, 3, keep_order=True).tolist() == [[1, 3, 4]]
    x[0, 4, 0] = 6.0
    assert M.l2_topk(x, 2, keep_order=False).tolist() == [[4, 1]]
    assert M.l2_topk(x, 2, keep_order=True).tolist() == [[1, 4]]
    assert torch.equal(M.gather_tokens(x, torch.tensor([[4, 1]]))[0, :, 0], torch.tensor([6.0, 5.0]))


def test_summary_token_is_mean():
    x = torch.arange(12.0).view(1, 3, 4)
    assert torch.equal(M.summary_token(x), x.mean(1, keepdim=True))


def test_cls_attention_softmax_mean_over_heads_without_self():
    logits = torch.log(torch.tensor([[[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]]))  # [B=1, H=2, N=3]
    assert torch.allclose(M.cls_attention(logits), torch.tensor([[0.4, 0.3]]))


def test_fuse_rest_weights_dropped_tokens_by_score():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]]])
    scores = torch.tensor([[0.5, 0.1, 0.3, 0.1]])
    fused = M.fuse_rest(x, scores, torch.tensor([[0, 2]]))     # drops tokens 1 and 3, equal weights
    assert torch.allclose(fused, torch.tensor([[[2.0, 0.5]]]))
    fused = M.fuse_rest(x, scores, torch.tensor([[0, 3]]))     # drops 1 (0.1) and 2 (0.3)
    assert torch.allclose(fused, torch.tensor([[[1.5, 1.75]]]))
    assert M.fuse_rest(x, scores, torch.tensor([[0, 1, 2, 3]])) is None


def test_bipartite_matching_merges_most_similar_pair_and_protects_cls():
    # A = tokens 0, 2, 4; B = tokens 1, 3, 5. Token 2 equals token 5; token 0 (CLS) equals token 1.
    metric = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [0.0, 1.0]]])
    match = M.bipartite_soft_matching(metric, r=1, protect_first=True)
    assert match.src.tolist() == [[1]] and match.dst.tolist() == [[2]]  # A[1] = token 2 -> B[2] = token 5
    assert match.keep.tolist() == [[0, 2]]                               # CLS stays first
    unprotected = M.bipartite_soft_matching(metric, r=1, protect_first=False)
    assert unprotected.src.tolist() in ([[0]], [[1]])                   # a tie at cosine 1: either may go
    assert M.bipartite_soft_matching(metric, r=0) is None
    assert M.bipartite_soft_matching(metric, r=99).src.shape[1] == 2     # only 2 non-CLS A tokens


def test_merge_weighted_is_size_weighted_mean():
    x = torch.tensor([[[9.0], [1.0], [3.0], [5.0]]])     # A = 9, 3 ; B = 1, 5
    size = torch.tensor([[[1.0], [1.0], [3.0], [1.0]]])
    match = M.Matching(src=torch.tensor([[1]]), dst=torch.tensor([[0]]), keep=torch.tensor([[0]]))
    out, new_size = M.merge_weighted(x, size, match)     # token 2 (3, size 3) into token 1 (1, size 1)
    assert out[0, :, 0].tolist() == [9.0, (3 * 3 + 1 * 1) / 4, 5.0]
    assert new_size[0, :, 0].tolist() == [1.0, 4.0, 1.0]
    assert new_size.sum() == size.sum()                  # mass is conserved


def test_tome_r_for_keep():
    assert M.tome_r_for_keep(64, 4, 0.5) == 8 and M.tome_r_for_keep(196, 12, 1.0) == 0


# ---------------------------------------------------------------- the patch
@pytest.mark.parametrize("method", ["none", "topk", "evit", "tome"])
def test_keep_one_equals_original(clip, pixels, method):
    ref = image_features(clip, pixels)
    with tokens.patched(clip, method, keep=1.0):
        out = image_features(clip, pixels)
        assert tokens.stats(clip).tokens_per_block == [N_PATCHES + 1] * (N_LAYERS + 1)
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()


def test_naive_differs_even_at_keep_one(clip, pixels):
    ref = image_features(clip, pixels)
    with tokens.patched(clip, "naive", keep=1.0):
        assert not torch.allclose(image_features(clip, pixels), ref, atol=1e-3)


def test_unpatch_restores_exactly(clip, pixels):
    tower = clip.vision_model
    impl = clip.config.vision_config._attn_implementation
    ref = image_features(clip, pixels)
    for method in tokens.PRESETS:
        tokens.patch(clip, method, keep=0.5)
        assert "forward" in tower.__dict__
        tokens.unpatch(clip)
        assert "forward" not in tower.__dict__ and tokens.config(clip) is None
        assert tower.forward.__func__ is type(tower).forward
    assert clip.config.vision_config._attn_implementation == impl
    assert torch.equal(image_features(clip, pixels), ref)


def test_patched_context_restores_previous_patch(clip):
    tokens.patch(clip, "evit", keep=0.7)
    with tokens.patched(clip, "tome", keep=0.5):
        assert tokens.config(clip).name == "tome"
    assert tokens.config(clip).name == "evit" and tokens.config(clip).keep == 0.7
    tokens.unpatch(clip)


def test_one_frozen_config_per_method_and_separate_stats(clip, pixels):
    import dataclasses

    with tokens.patched(clip, "fix_late", keep=0.5):
        cfg = tokens.config(clip)
        assert cfg == tokens.TopKConfig(name="fix_late", keep=0.5, keep_cls=False, positions=False, prenorm=False,
                                        after_block=N_LAYERS // 2)
        assert cfg.method == "topk" and not hasattr(cfg, "tokens_per_block")
        assert tokens.stats(clip).tokens_per_block == []            # no forward yet
        image_features(clip, pixels)
        assert tokens.stats(clip).tokens_per_block == [64, 64, 33, 33, 33]
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.keep = 0.9
    with tokens.patched(clip, "evit", keep=0.7):
        assert tokens.config(clip) == tokens.EViTConfig(name="evit", keep=0.7, blocks=(1, 2, 3), fuse=True)
    with tokens.patched(clip, "tome", keep=0.5, r=3, prop_attn=False):
        assert tokens.config(clip) == tokens.ToMeConfig(name="tome", keep=0.5, r=3, prop_attn=False)
    with tokens.patched(clip, "none"):
        assert type(tokens.config(clip)) is tokens.NoneConfig and tokens.config(clip).method == "none"
    assert tokens.config(clip) is None and tokens.stats(clip) is None
    assert tokens.EViTConfig.options() == ("blocks", "fuse") and tokens.ToMeConfig.options() == ("r", "prop_attn")
    assert tokens.TopKConfig.options() == ("keep_cls", "positions", "prenorm", "after_block")
    assert tokens.EViTConfig(name="evit", keep=0.5, blocks=(1,)).as_dict() == dict(
        name="evit", method="evit", keep=0.5, blocks=(1,), fuse=True)


def test_options_of_another_method_are_rejected(clip):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['r'\].*'evit'.*\['blocks', 'fuse'\]"):
        tokens.patch(clip, "evit", keep=0.5, r=4)
    with pytest.raises(ValueError, match=r"\['after_block', 'fuse'\].*'tome'"):
        tokens.patch(clip, "tome", keep=0.5, fuse=False, after_block=1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['tokens_per_block'\]"):
        tokens.patch(clip, "topk", keep=0.5, tokens_per_block=[])
    with pytest.raises(ValueError, match="unknown option"):
        tokens.patch(clip, "none", keep=1.0, blocks=(1,))
    assert tokens.config(clip) is None


def test_works_on_vision_model_alone(clip, pixels):
    tower = clip.vision_model
    with torch.no_grad():
        ref = tower(pixel_values=pixels).pooler_output
        with tokens.patched(tower, "evit", keep=1.0):
            out = tower(pixel_values=pixels).pooler_output
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("method,keep,expected", [
    ("naive", 0.5, [33] * 5),                       # summary + int(0.5*64), from the first block on
    ("fix_late", 0.5, [64, 64, 33, 33, 33]),        # no class token until selection after block 2
    ("topk", 0.7, [65, 65, 45, 45, 45]),            # CLS + int(0.7*64) after block 2
    ("evit", 0.5, [65, 65, 34, 19, 11]),            # blocks 1,2,3: CLS + ceil(0.5 n) + fused token
    ("tome", 0.5, [65, 57, 49, 41, 33]),            # r = 8 per block
])
def test_token_counts_per_block(clip, pixels, method, keep, expected):
    with tokens.patched(clip, method, keep=keep):
        image_features(clip, pixels)
        assert tokens.stats(clip).tokens_per_block == expected


def test_evit_blocks_and_tome_r_options(clip, pixels):
    with tokens.patched(clip, "evit", keep=0.5, blocks=(2,), fuse=False):
        image_features(clip, pixels)
        assert tokens.stats(clip).tokens_per_block == [65, 65, 65, 33, 33]
    with tokens.patched(clip, "tome", r=4):
        image_features(clip, pixels)
        assert tokens.stats(clip).tokens_per_block == [65, 61, 57, 53, 49]


@pytest.mark.parametrize("method", ["fix_cls", "topk", "evit", "tome"])
def test_cls_stays_at_index_zero(clip, pixels, method):
    """Mark the class token with a huge first channel: after every block it must sit at index 0."""
    cls = clip.vision_model.embeddings.class_embedding
    old = cls.data.clone()
    try:
        cls.data[0] = 1e4
        with tokens.patched(clip, method, keep=0.5), torch.no_grad():
            states = clip.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
    finally:
        cls.data.copy_(old)
    assert len(states) == N_LAYERS
    assert states[-1].shape[1] < N_PATCHES + 1          # tokens really were removed
    for h in states:
        assert (h[:, :, 0].argmax(dim=1) == 0).all()


def test_interpolated_positions_match_original(clip):
    px = torch.randn(2, 3, IMAGE + 16, IMAGE + 16, generator=torch.Generator().manual_seed(2))
    ref = image_features(clip, px, interpolate_pos_encoding=True)
    with tokens.patched(clip, "evit", keep=1.0):
        assert torch.allclose(image_features(clip, px, interpolate_pos_encoding=True), ref, atol=1e-5)
        assert tokens.stats(clip).tokens_per_block[0] == (IMAGE // PATCH + 4) ** 2 + 1
    with tokens.patched(clip, "evit", keep=1.0), pytest.raises(ValueError, match="interpolate_pos_encoding"):
        image_features(clip, px)


def test_bad_arguments_fail_before_patching(clip):
    with pytest.raises(ValueError, match="method"):
        tokens.patch(clip, "magic")
    with pytest.raises(ValueError, match="keep"):
        tokens.patch(clip, "evit", keep=0.0)
    with pytest.raises(ValueError, match="after_block"):
        tokens.patch(clip, "topk", keep=0.5, after_block=N_LAYERS)
    with pytest.raises(ValueError, match="blocks"):
        tokens.patch(clip, "evit", keep=0.5, blocks=(7,))
    assert tokens.config(clip) is None
    with pytest.raises(TypeError):
        tokens.patch(torch.nn.Linear(2, 2), "evit")


def test_pruning_cuts_flops(clip, pixels):
    from vlmid.profiling import count_flops

    base = count_flops(lambda: image_features(clip, pixels))
    with tokens.patched(clip, "topk", keep=0.5, after_block=0):
        half = count_flops(lambda: image_features(clip, pixels))
    # every per-token cost halves (33 of 65 tokens) and attention falls by about 4x
    assert 0.4 * base < half < 0.55 * base


@pytest.mark.parametrize("n_layers, blocks", [(1, (0,)), (2, (1,)), (3, (1, 2)), (4, (1, 2, 3)), (12, (3, 6, 9))])
def test_evit_default_blocks_lie_inside_any_depth(n_layers, blocks):
    """EViT's default blocks (a quarter, half and three quarters in; 4, 7, 10 of 12 counted from 1)
    never fall off a shallow tower, e.g. the paper stand-ins' two layers."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=n_layers,
                                             num_attention_heads=2, image_size=16, patch_size=8))
    with tokens.patched(tower, "evit", keep=0.5):
        assert tokens.config(tower).blocks == blocks
