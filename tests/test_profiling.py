"""vlmid.profiling: FLOPs, memory accounting and the interleaved timing protocol (no timed asserts)."""
import pytest
import torch
import torch.nn.functional as F

from vlmid.profiling import Variant, count_flops, param_bytes, peak_memory, profile_variants, time_variants


def test_count_flops_linear_and_attention():
    lin = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16)
    assert count_flops(lambda: lin(x)) == 2 * 4 * 16 * 8
    q = torch.randn(2, 3, 10, 4)
    # QK^T and AV: 2 matmuls of B*H*N*N*d multiply-adds each; the CPU kernel must be counted
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 2 * (2 * 2 * 3 * 10 * 10 * 4)
    with torch.inference_mode():
        assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 2 * (2 * 2 * 3 * 10 * 10 * 4)


def test_peak_memory_cpu_counts_live_tensors():
    n = 1 << 18  # floats: 1 MiB each tensor

    def two_at_once():
        a = torch.ones(n)
        b = torch.ones(n)
        return (a + b).sum()     # a, b and a+b live together: 3 MiB

    def one_at_a_time():
        for _ in range(3):
            torch.ones(n).sum()  # each freed before the next: 1 MiB

    peak3, how = peak_memory(two_at_once)
    peak1, _ = peak_memory(one_at_a_time)
    assert "profiler" in how
    assert 3 * 4 * n <= peak3 < 3 * 4 * n + 65536
    assert 4 * n <= peak1 < 4 * n + 65536


def test_time_variants_interleaves_round_robin():
    calls = []
    vs = [Variant(name, run=lambda name=name: calls.append(name)) for name in "abc"]
    times = time_variants(vs, repeats=3, warmup=1, progress=False)
    assert calls[:3] == ["a", "b", "c"]                            # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotated rounds
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    with pytest.raises(ValueError, match="unique"):
        time_variants([vs[0], vs[0]], repeats=1)


def test_context_is_entered_outside_the_timer():
    state = {"on": False, "seen": []}

    class Ctx:
        def __enter__(self):
            state["on"] = True

        def __exit__(self, *exc):
            state["on"] = False

    v = Variant("ctx", run=lambda: state["seen"].append(state["on"]), context=Ctx)
    time_variants([v], repeats=2, warmup=1, progress=False)
    assert state["seen"] == [True, True, True] and state["on"] is False


def test_profile_variants_table():
    lin = torch.nn.Linear(32, 32)
    x = torch.randn(8, 32)
    df = profile_variants([Variant("lin", run=lambda: lin(x))], batch_size=8, repeats=3, warmup=1,
                          threads=1, progress=False)
    row = df.iloc[0]
    assert row["gflops_per_item"] == pytest.approx(2 * 32 * 32 / 1e9)
    assert row["throughput_per_s"] == pytest.approx(8 / (row["latency_ms"] / 1e3))
    assert row["latency_ms_q25"] <= row["latency_ms"] <= row["latency_ms_q75"]
    assert row["threads"] == 1 and row["peak_mem_mib"] >= 8 * 32 * 4 / 2**20
    with pytest.raises(ValueError, match="batch_size"):
        profile_variants([], batch_size=0)


def test_param_bytes_dtype_aware():
    lin = torch.nn.Linear(10, 10)  # 110 parameters
    assert param_bytes(lin) == 440
    assert param_bytes(lin.to(torch.bfloat16)) == 220
