"""vlmid.retrieval: recall@k with 5 captions per image, token keep, FLOPs, training, the Flickr8k report's pitfalls."""
import math

import pytest
import torch
from PIL import Image

from vlmid.data.base import CaptionExample
from vlmid.retrieval import (ReportImageOnly, RetrievalConfig, baseline_model, build_vocab, chance_recall,
                             contrastive_loss, encode_captions, fit, image_flops, image_to_text_ranks,
                             keep_top_tokens, lossyness, make_set, n_kept, patchify, predicted_image_flops,
                             pruned_model, recall_at_k, report_cosine_loss, report_patchify, text_to_image_ranks,
                             train_step)

CFG = RetrievalConfig(image_size=32, patch_size=8, width=32, depth=2, heads=2, embed_dim=16,
                      vocab_size=20, max_words=8)


# ------------------------------------------------------------------ recall@k
def test_recall_hand_built_five_captions_per_image():
    # 3 images, 5 captions each (captions 0-4 -> image 0, 5-9 -> image 1, 10-14 -> image 2)
    owner = torch.arange(3).repeat_interleave(5)
    sim = torch.zeros(3, 15)
    # image 0: its caption 3 is the best of all 15 -> rank 0
    sim[0] = torch.linspace(0.0, 0.5, 15)
    sim[0, 3] = 0.9
    # image 1: 6 wrong captions score above its best own caption -> rank 6 (a hit at 10, not at 5)
    sim[1, :] = 0.1
    sim[1, 5:10] = 0.5
    sim[1, [0, 1, 2, 10, 11, 12]] = 0.8
    # image 2: one of its captions is tied with a wrong one -> the tie counts against it: rank 1
    sim[2, :] = -1.0
    sim[2, 14] = 0.7
    sim[2, 4] = 0.7
    i2t = image_to_text_ranks(sim, owner)
    assert i2t.tolist() == [0, 6, 1]
    r = recall_at_k(sim, owner)
    assert r["i2t_R@1"] == pytest.approx(1 / 3)
    assert r["i2t_R@5"] == pytest.approx(2 / 3)
    assert r["i2t_R@10"] == pytest.approx(1.0)
    # text -> image: caption j looks down column j for its own image
    t2i = text_to_image_ranks(sim, owner)
    # caption 3: image 0 scores 0.9 against 0.1 and -1 -> rank 0
    assert t2i[3] == 0
    # caption 0 (image 0, score 0.0): image 1 scores 0.8 -> rank 1
    assert t2i[0] == 1
    # caption 14 (image 2, 0.7): image 0 gives linspace[14] = 0.5, image 1 gives 0.1 -> rank 0
    assert t2i[14] == 0
    # caption 5 (image 1, 0.5): image 0 has 0.5*5/14=0.179, image 2 -1 -> rank 0
    assert t2i[5] == 0
    assert r["t2i_R@1"] == pytest.approx(float((t2i < 1).float().mean()))


def test_recall_constant_scores_are_never_rewarded():
    owner = torch.arange(4).repeat_interleave(5)
    r = recall_at_k(torch.zeros(4, 20), owner, ks=(1, 5))
    assert r["i2t_R@1"] == 0.0 and r["t2i_R@1"] == 0.0
    perfect = (owner.unsqueeze(0) == torch.arange(4).unsqueeze(1)).float()
    assert recall_at_k(perfect, owner)["i2t_R@1"] == 1.0 and recall_at_k(perfect, owner)["t2i_R@1"] == 1.0


def test_per_image_recall_is_each_images_share_of_recall_both_ways():
    """Unequal caption counts (2, 3, 1): image i scores (its i2t hit + its captions' t2i hits * I / C) / 2, and the
    mean over images is the mean of the two recalls."""
    from vlmid.retrieval import per_image_recall

    owner = torch.tensor([0, 0, 1, 1, 1, 2])
    sim = torch.tensor([[0.9, 0.1, 0.5, 0.2, 0.0, 0.3],    # image 0: its caption 0 is the best -> i2t hit
                        [0.8, 0.1, 0.7, 0.6, 0.2, 0.1],    # image 1: caption 0 (image 0's) beats its best -> miss
                        [0.1, 0.9, 0.2, 0.3, 0.4, 0.5]])   # image 2: caption 1 beats its only one -> miss
    # text -> image at k=1: captions 0, 2, 3, 5 find their image first; 1 and 4 do not
    assert per_image_recall(sim, owner, k=1).tolist() == pytest.approx([(1 + 1 * 3 / 6) / 2, (0 + 2 * 3 / 6) / 2,
                                                                        (0 + 1 * 3 / 6) / 2])
    r = recall_at_k(sim, owner, ks=(1,))
    assert float(per_image_recall(sim, owner, k=1).mean()) == pytest.approx((r["i2t_R@1"] + r["t2i_R@1"]) / 2)
    g = torch.Generator().manual_seed(2)
    owner, sim = torch.arange(20).repeat_interleave(5), torch.randn(20, 100, generator=g).round(decimals=1)
    r = recall_at_k(sim, owner, ks=(5,))
    assert float(per_image_recall(sim, owner).mean()) == pytest.approx((r["i2t_R@5"] + r["t2i_R@5"]) / 2)


def test_chance_recall():
    c = chance_recall(2, 5, ks=(1, 5))
    assert c["i2t_R@1"] == pytest.approx(0.5) and c["t2i_R@1"] == pytest.approx(0.5)
    # 100 images x 5 captions, k=5: 1 - C(495,5)/C(500,5)
    assert chance_recall(100, 5, ks=(5,))["i2t_R@5"] == pytest.approx(1 - math.comb(495, 5) / math.comb(500, 5))


def test_recall_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="n_captions"):
        recall_at_k(torch.zeros(2, 9), torch.arange(2).repeat_interleave(5))


# ------------------------------------------------------------------ tokens and FLOPs
def test_patchify_is_square_rgb_patches_and_report_split_is_not():
    img = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    p = patchify(img, 8)
    assert p.shape == (2, 4, 3 * 64)
    # token 1 = top-right patch, all three channels
    assert torch.equal(p[1, 1], img[1, :, :8, 8:].reshape(-1))
    s = report_patchify(img, 8)
    assert s.shape == p.shape and not torch.equal(s, p)
    # the report's token 0 holds channel 0 only (three channels would span 0..767 + 256*k)
    assert torch.equal(s[0, 0], img[0, 0].unfold(0, 8, 8).unfold(1, 8, 8).reshape(-1)[:192])


def test_keep_top_tokens():
    x = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1).repeat(2, 1, 3)
    scores = torch.tensor([[0.0, 5.0, 1.0, 4.0, 2.0, 3.0], [9.0, 0.0, 0.0, 0.0, 0.0, 8.0]])
    kept, idx = keep_top_tokens(x, scores, 3)
    assert idx[0].tolist() == [1, 3, 5]                  # back in spatial order, not score order
    assert {0, 5} <= set(idx[1].tolist())
    assert kept[0, :, 0].tolist() == [1.0, 3.0, 5.0]


@pytest.mark.parametrize("bad", [0, 0.0, -0.25, 1.5, float("nan"), True])
def test_bad_keep_ratio_raises(bad):
    with pytest.raises(ValueError, match="keep_ratio"):
        pruned_model(CFG, bad)
    with pytest.raises(ValueError, match="keep_ratio"):
        n_kept(49, bad)


def test_flops_fall_with_keep_ratio_as_predicted():
    torch.manual_seed(0)
    base = image_flops(baseline_model(CFG))
    assert base == predicted_image_flops(CFG)["total"]
    w, n = CFG.width, CFG.n_tokens
    for fuse in (True, False):
        measured = []
        for r in (0.25, 0.5, 0.75, 1.0):
            m = pruned_model(CFG, r, fuse_rest=fuse)
            pred = predicted_image_flops(CFG, r, fuse_rest=fuse)
            assert m.image.n_kept == pred["tokens_kept"] == max(1, int(16 * r))
            assert m.image.n_block_tokens == pred["block_tokens"] == pred["tokens_kept"] + (fuse and r < 1)
            assert image_flops(m) == pred["total"]
            measured.append(image_flops(m))
        assert measured == sorted(measured) and measured[0] < base
        # keep 1.0 keeps every token (nothing to fuse): only the scorer's cost is added to the baseline
        assert measured[-1] - base == 2 * n * (w * (w // 4) + w // 4)
    # the blocks' share falls as the token count predicts: linear in k, plus k^2 attention
    a, b = predicted_image_flops(CFG, 0.25, fuse_rest=False), predicted_image_flops(CFG, 0.5, fuse_rest=False)
    per_tok = CFG.depth * 2 * w * (4 * w + 2 * CFG.mlp_ratio * w)
    assert b["pruned_part"] - a["pruned_part"] == per_tok * (8 - 4) + CFG.depth * 4 * w * (8 ** 2 - 4 ** 2)


def test_report_flops_are_per_batch_of_16():
    # the Flickr8k report gave 83,494,912 FLOPs for its baseline: a batch of 16 images of 49 tokens, the
    # two Linear layers (what FlopCounterMode counts) plus one multiply-add per output of the mean pool
    from vlmid.retrieval import count_flops
    m = ReportImageOnly()
    matmuls = count_flops(lambda: m(torch.zeros(16, 3, 112, 112)))
    assert matmuls == 2 * 16 * 49 * (768 * 64 + 64 * 64)
    assert matmuls + 2 * 16 * 64 == 83_494_912


# ------------------------------------------------------------------ models and training
def _examples(n=6):
    g = torch.Generator().manual_seed(0)
    words = ["red", "blue", "green", "bag", "coat", "shoe"]
    out = []
    for i in range(n):
        arr = (torch.rand(20, 20, 3, generator=g) * 255).to(torch.uint8).numpy()
        caps = [f"a {words[i % 3]} {words[3 + (i + j) % 3]} number {i}" for j in range(5)]
        out.append(CaptionExample(i, Image.fromarray(arr), caps))
    return out


def test_embeddings_are_unit_vectors_of_the_right_shape():
    torch.manual_seed(0)
    ids = torch.randint(2, CFG.vocab_size, (5, 7))
    images = torch.randn(5, 3, 32, 32)
    for m in (baseline_model(CFG), pruned_model(CFG, 0.5)):
        img, txt, scale = m(images, ids)
        assert img.shape == (5, CFG.embed_dim) and txt.shape == (5, CFG.embed_dim)
        assert torch.allclose(img.norm(dim=-1), torch.ones(5), atol=1e-5)
        assert torch.allclose(txt.norm(dim=-1), torch.ones(5), atol=1e-5)
        assert float(scale.detach()) == pytest.approx(1 / 0.07, rel=1e-4)
    # padding does not change a caption's embedding
    m = baseline_model(CFG).eval()
    short = torch.tensor([[3, 4, 5, 0, 0, 0]])
    assert torch.allclose(m.encode_text(short), m.encode_text(short[:, :3]), atol=1e-5)


def test_training_steps_reduce_the_loss_for_both_models():
    torch.manual_seed(0)
    images = torch.randn(8, 3, 32, 32)
    ids = torch.randint(2, CFG.vocab_size, (8, 6))
    for m in (baseline_model(CFG), pruned_model(CFG, 0.5)):
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        first = contrastive_loss(*m(images, ids)).item()
        for _ in range(15):
            train_step(m, opt, images, ids)
        assert contrastive_loss(*m(images, ids)).item() < 0.5 * first


def test_only_the_fused_token_gives_dropped_tokens_a_gradient():
    torch.manual_seed(0)
    images, ids = torch.randn(4, 3, 32, 32), torch.randint(2, 20, (4, 5))
    for fuse in (True, False):
        m = pruned_model(CFG, 0.5, fuse_rest=fuse, explore=False)
        torch.nn.init.normal_(m.image.scorer[-1].weight)
        seen = {}

        def keep_grad(module, inputs, out):
            out.retain_grad()
            seen.setdefault("x", out)   # the first forward: the one the loss is computed from

        m.image.patch_embed.register_forward_hook(keep_grad)
        contrastive_loss(*m(images, ids)).backward()
        _, idx = m.image.tokens(images)
        kept = torch.zeros(4, CFG.n_tokens, dtype=torch.bool).scatter(1, idx, True)
        g = seen["x"].grad.norm(dim=-1)
        assert bool((g[kept] > 0).all())                    # kept tokens always learn
        assert bool((g[~kept] > 0).all()) == fuse           # dropped ones only through the fused token


def test_make_set_and_fit_on_captioned_examples():
    ex = _examples(6)
    vocab = build_vocab(c for e in ex for c in e.captions)
    cfg = RetrievalConfig(**{**CFG.__dict__, "vocab_size": len(vocab)})
    data = make_set(ex, vocab, cfg)
    assert data.images.shape == (6, 3, 32, 32) and float(data.images.min()) >= -1 and float(data.images.max()) <= 1
    assert data.caption_image.tolist() == [i for i in range(6) for _ in range(5)]
    assert data.text_ids[0, :2].tolist() == [vocab["a"], vocab["red"]]
    assert encode_captions(["zebra"], vocab, 4).tolist() == [[1, 0, 0, 0]]  # unknown word -> 1
    torch.manual_seed(0)
    logs = fit({"b": baseline_model(cfg), "p": pruned_model(cfg, 0.5)}, data, epochs=2, batch_size=4, progress=False)
    for log in logs.values():
        assert len(log.epoch_seconds) == 2 and len(log.step_loss) == 4  # 6 images / 4 -> 2 batches per epoch
        assert math.isfinite(log.later_epoch_seconds)


def test_lossyness_sign_and_report_loss_pitfall():
    assert lossyness(0.4, 0.5) == pytest.approx(0.2)      # pruned keeps 80 % of the baseline's recall
    assert lossyness(0.6, 0.5) == pytest.approx(-0.2)     # pruned better: negative
    # the report's Eq. 6 on *losses*: 1 - 0.5050 / 0.0007 ~ -720 (it printed -704 from unrounded losses)
    assert lossyness(0.5050, 0.0007) == pytest.approx(-720.43, abs=0.01)
    # the report's target points the same way for every caption: a constant output has zero loss
    ids = torch.randint(2, 50, (4, 9))
    assert float(report_cosine_loss(torch.ones(4, 64), ids)) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------ one Flickr8k code path for both profiles
def test_paper_profile_reads_real_flickr8k_format(tmp_path, monkeypatch):
    from vlmid.data.flickr8k import write_flickr8k
    from vlmid.retrieval import load_flickr8k_splits

    ex = [CaptionExample(f"img{i}", e.image, e.captions) for i, e in enumerate(_examples(6))]
    write_flickr8k(ex, tmp_path / "flickr8k", split_of=lambda e: "test" if e.image_id in ("img4", "img5") else "train")
    monkeypatch.setenv("VLMID_PAPER_DATA", str(tmp_path))
    splits = load_flickr8k_splits("paper")
    assert [e.image_id for e in splits["test"]] == ["img4", "img5"] and len(splits["train"]) == 4
    assert splits["train"][1].captions == ex[1].captions
    monkeypatch.delenv("VLMID_PAPER_DATA")
    with pytest.raises(FileNotFoundError, match="VLMID_PAPER_DATA"):
        load_flickr8k_splits("paper")


def test_tiny_profile_writes_scenes_in_flickr8k_format_once(tmp_path, monkeypatch):
    import vlmid.data
    from vlmid.retrieval import load_flickr8k_splits

    calls = []

    def fake_load_captions(profile, split="test", n=None, seed=0, smoke=False):
        calls.append(split)
        base = {"train": 0, "val": 100, "test": 200}[split]
        return [CaptionExample(base + i, e.image, e.captions) for i, e in enumerate(_examples(3))]

    monkeypatch.setenv("VLMID_DATA", str(tmp_path))
    monkeypatch.setattr(vlmid.data, "load_captions", fake_load_captions, raising=False)
    splits = load_flickr8k_splits("tiny", seed=3)
    assert (tmp_path / "flickr8k-scenes-seed3" / "Flickr8k.token.txt").is_file()
    assert [e.image_id for e in splits["test"]] == ["200", "201", "202"]
    assert splits["train"][0].captions == _examples(1)[0].captions
    load_flickr8k_splits("tiny", seed=3)
    assert sorted(calls) == ["test", "train", "val"]  # the second call reads what the first wrote


def test_exploration_samples_tokens_in_training_only():
    torch.manual_seed(0)
    m = pruned_model(CFG, 0.5)
    images = torch.randn(2, 3, 32, 32)
    assert m.image.scorer(torch.randn(3, CFG.width)).abs().max().item() == 0.0   # scores start at 0: uniform
    picks = {tuple(m.image.tokens(images)[1][0].tolist()) for _ in range(6)}
    assert len(picks) > 1                                          # training: a different sample each time
    m.eval()
    assert torch.equal(m.image.tokens(images)[1], m.image.tokens(images)[1])   # test: the plain top-k
    report_style = pruned_model(CFG, 0.5, fuse_rest=False, explore=False)
    assert torch.equal(report_style.image.tokens(images)[1], report_style.image.tokens(images)[1])


# ------------------------------------------------------------------ the Flickr8k report's replicas, the data helpers' home
def test_report_pruned_model_gets_no_gradient_from_the_report_loss():
    from vlmid.retrieval import ReportMultimodal, fit_report_model, report_test_loss

    torch.manual_seed(0)
    ex = _examples(6)
    vocab = build_vocab(c for e in ex for c in e.captions)
    data = make_set(ex, vocab, RetrievalConfig(**{**CFG.__dict__, "vocab_size": len(vocab)}))
    m = ReportMultimodal(len(vocab), image_size=32, patch_size=8, width=32)
    ids = data.text_ids[:4]
    report_cosine_loss(m(data.images[:4], ids), ids).backward()   # its output is one number: the loss is 1 - sign
    assert sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None) == pytest.approx(0.0, abs=1e-6)
    before = report_test_loss(m, data, batch_size=4, image_only=False)
    losses = fit_report_model(m, data, epochs=2, batch_size=4, image_only=False)
    assert len(losses) == 2 and report_test_loss(m, data, batch_size=4, image_only=False) == pytest.approx(before)
    base = ReportImageOnly(32, 8, 32)   # the baseline's target is one constant direction: easy to reach
    losses = fit_report_model(base, data, epochs=10, batch_size=4, lr=1e-2)
    assert losses[-1] < 0.05 < losses[0]


def test_flickr8k_helpers_live_in_data_which_does_not_import_retrieval():
    import subprocess
    import sys

    import vlmid.data.flickr8k as F8
    import vlmid.retrieval as R

    assert R.load_flickr8k_splits is F8.load_flickr8k_splits and R.flickr8k_root is F8.flickr8k_root
    assert R.FLICKR8K_SIZES == {"train": 6000, "val": 1000, "test": 1000}
    code = "import sys, vlmid.data.flickr8k; assert 'vlmid.retrieval' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# ------------------------------------------------------------------ notebook 04's computations, in the package
def test_report_flops_accounting_reproduces_the_reported_numbers():
    from vlmid.retrieval import (FLICKR8K_REPORT, report_flops, report_flops_table, report_mean_flops)

    counts = report_flops(vocab_size=30)
    assert counts["report baseline"] == 2 * 16 * 49 * (768 * 64 + 64 * 64)
    # patch embedding + scorer on all 49 tokens, the text projection (the bilinear layer is not a matmul it counts)
    assert counts["report pruned, keep 0.5"] == counts["report pruned, keep 1.0"] == \
        2 * 16 * 49 * (768 * 64 + 64 * 16 + 16) + 2 * 16 * 50 * 64
    assert report_mean_flops(16, 64) == 2 * 16 * 64
    assert report_mean_flops(16, 64, text_width=50) == 2 * (16 * 64 + 16 * 50)
    t = report_flops_table(counts)
    assert list(t.columns) == ["model", "matmul_flops_batch16", "plus_means", "report_value", "per_image"]
    # the report's two FLOPs counts, to the FLOP: matmuls of a batch of 16 plus the means
    assert int(t.plus_means.iloc[0]) == FLICKR8K_REPORT["flops"][0] == 83_494_912
    assert int(t.plus_means.iloc[1]) == FLICKR8K_REPORT["flops"][1] == 78_807_104
    assert math.isnan(t.plus_means.iloc[2]) and t.per_image.iloc[0] == counts["report baseline"] / 16


def test_report_patch_channels():
    from vlmid.retrieval import report_patch_channels

    assert report_patch_channels(112, 16) == dict(n_tokens=49, single_channel=47, rgb_patches=0)


def test_report_miniature_and_failure_checks():
    from vlmid.retrieval import report_failure_checks, train_report_miniature

    ex = _examples(6)
    vocab = build_vocab(c for e in ex for c in e.captions)
    data = make_set(ex, vocab, RetrievalConfig(**{**CFG.__dict__, "vocab_size": len(vocab)}))
    table, base, pruned = train_report_miniature(data, data, len(vocab), 32, 8, 32, epochs=2, batch_size=4, seed=0)
    assert table.epoch.tolist() == [1, 2]
    assert table.report_lossyness.tolist() == [lossyness(r.pruned_test_loss, r.baseline_test_loss) for r in table.itertuples()]
    # the pruned model never trains: its test loss stays where the initial weights put it
    assert table.pruned_test_loss.iloc[0] == pytest.approx(table.pruned_test_loss.iloc[1])
    again, _, _ = train_report_miniature(data, data, len(vocab), 32, 8, 32, epochs=2, batch_size=4, seed=0)
    assert again.equals(table)                                      # seeded: reproducible
    facts = report_failure_checks(base, pruned, data, data, batch_size=4, pruned_test_loss=table.pruned_test_loss.iloc[-1])
    v = facts.value.tolist()
    assert len(v) == 6 and v[2] == pytest.approx(0.0, abs=1e-6)     # a constant output scores 0
    assert v[3] == pytest.approx(v[4], abs=1e-6)                    # its loss is 1 - mean(sign(score))
    assert v[5] == pytest.approx(0.0, abs=1e-6)                     # and it has no gradient


def test_make_models_and_flops_table():
    from vlmid.retrieval import flops_table, make_models, scorer_only_name

    ms = make_models(CFG, [0.25, 0.5], seed=3, default_keep=0.5)
    assert list(ms) == ["baseline", "keep 0.25", "keep 0.5", "keep 0.5, scorer only"] == \
        ["baseline", "keep 0.25", "keep 0.5", scorer_only_name(0.5)]
    so = ms[scorer_only_name(0.5)]
    assert not so.image.fuse_rest and not so.image.explore and ms["keep 0.5"].image.fuse_rest
    # one seed, one initialisation: the patch embedding is the same in every model
    for m in ms.values():
        assert torch.equal(m.image.patch_embed.weight, ms["baseline"].image.patch_embed.weight)
    assert list(make_models(CFG, [0.25], seed=3, scorer_only=False)) == ["baseline", "keep 0.25"]
    t = flops_table(ms, CFG)
    assert (t.flops_measured == t.flops_predicted).all()
    assert t.flops_ratio.iloc[0] == 1.0 and t.tokens_kept.tolist() == [16, 4, 8, 8]
    assert t.token_ratio.tolist() == [1.0, 0.25, 0.5, 0.5]
    assert t.flops_measured.iloc[1] < t.flops_measured.iloc[2] < t.flops_measured.iloc[0]


def test_foreground_and_kept_token_table():
    from vlmid.retrieval import foreground_tokens, kept_token_overlay, kept_token_table

    images = torch.full((2, 3, 32, 32), -1.0)
    images[:, :, :8, :8] = 1.0                                       # token 0 is the only foreground one
    fg = foreground_tokens(images, 8)
    assert fg.shape == (2, 16) and fg.sum().item() == 2 and fg[:, 0].all()
    torch.manual_seed(0)
    base, pr = baseline_model(CFG).eval(), pruned_model(CFG, 0.25).eval()
    runs = [(0, "baseline", base, None), (0, "keep 0.25", pr, None)]
    t = kept_token_table(runs, images, 8)
    assert t.model.tolist() == ["keep 0.25"]                         # the baseline keeps everything: no row
    assert t.foreground_share_of_all_tokens.iloc[0] == pytest.approx(1 / 16)
    shown = kept_token_overlay(pr, images)
    assert shown.shape == (2, 32, 32, 3) and float(shown.min()) >= 0 and float(shown.max()) <= 1
    assert int((shown == 0.55).all(-1).sum()) == 2 * (16 - 4) * 64    # 12 dropped tokens of 8x8 px per image


def test_data_tables_and_shared_captions():
    from vlmid.retrieval import data_table, shared_caption_fraction

    ex = _examples(4)
    ex[1].captions[0] = ex[0].captions[0].upper()                     # the same words for two images
    vocab = build_vocab(c for e in ex for c in e.captions)
    data = make_set(ex, vocab, RetrievalConfig(**{**CFG.__dict__, "vocab_size": len(vocab)}))
    # image 0 has that caption twice (captions 0 and 3): all three copies are ambiguous
    assert shared_caption_fraction(data) == pytest.approx(3 / 20)
    t = data_table({"train": ex * 2}, {"train": data})
    assert t.iloc[0].to_dict() == dict(split="train", images_in_split=8, images_used=4, captions=20,
                                       captions_per_image=5.0, shared_caption_fraction=pytest.approx(0.15))


def test_result_tables_of_notebook_04():
    from vlmid.retrieval import (chance_row, flops_table, paired_lossyness, per_image_table, retrieval_table,
                                 speed_table, training_tables)

    ex = _examples(6)
    vocab = build_vocab(c for e in ex for c in e.captions)
    cfg = RetrievalConfig(**{**CFG.__dict__, "vocab_size": len(vocab)})
    data = make_set(ex, vocab, cfg)
    torch.manual_seed(0)
    ms = {"baseline": baseline_model(cfg), "keep 0.5": pruned_model(cfg, 0.5)}
    logs = fit(ms, data, epochs=2, batch_size=4, progress=False)
    runs = [(0, n, ms[n], logs[n]) for n in ms]
    curves, epochs = training_tables(runs)
    assert curves.step.tolist() == [1, 2, 3, 4] * 2 and curves.loss.tolist() == logs["baseline"].step_loss + logs["keep 0.5"].step_loss
    assert epochs.epoch.tolist() == [1, 2, 1, 2] and epochs.seconds.tolist() == logs["baseline"].epoch_seconds + logs["keep 0.5"].epoch_seconds
    flops = flops_table(ms, cfg)
    q = retrieval_table(runs, data, flops)
    assert q.model.tolist() == ["baseline", "keep 0.5"] and q.recall5.tolist() == ((q["i2t_R@5"] + q["t2i_R@5"]) / 2).tolist()
    assert q.flops_ratio.tolist() == flops.flops_ratio.tolist() and q.train_seconds.iloc[0] == sum(logs["baseline"].epoch_seconds)
    items = per_image_table(runs, data)
    assert items.groupby(["seed", "model"], sort=False).size().tolist() == [6, 6] and items.image.tolist()[:6] == list(range(6))
    assert items.groupby("model", sort=False).recall5.mean().tolist() == pytest.approx(q.recall5.tolist(), abs=1e-6)
    c = chance_row(6, 5)
    assert c["seed"] == -1 and c["t2i_R@5"] == pytest.approx(5 / 6) and math.isnan(c["keep_ratio"])
    q["recall5"] = [0.5, 0.4]
    assert paired_lossyness(q) == pytest.approx([0.0, 0.2])
    sp = speed_table(flops, q, {"baseline": 2e-3, "keep 0.5": 1e-3}, seed=0)
    assert sp.model.tolist() == ["baseline", "keep 0.5"] and sp.encode_ms_per_image.tolist() == pytest.approx([2.0, 1.0])
    assert sp.encode_time_ratio.tolist() == pytest.approx([1.0, 0.5]) and sp.epoch_time_ratio.iloc[0] == 1.0
