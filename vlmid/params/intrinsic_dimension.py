"""Notebook 01's parameters: points, poolings, bootstraps and the TwoNN benchmark."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .base import NotebookParams


# the poolings ``vlmid.id.pool`` knows (vlmid.id.POOLINGS; a test checks they agree): the parameters
# import no science
POOLINGS = ("cls", "mean", "flatten")


@dataclass
class IntrinsicDimensionParams(NotebookParams):
    """``01_intrinsic_dimension``: what is measured, on how many points, and the benchmark sizes."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("blip", "clip", "coco")   # what a paper run reads (vlmid.harness.paper_inputs)
    n_points: int = 1000      # test images (each with its first reference caption): one point per image
    batch_size: int = 100     # images per forward pass while collecting representations
    pooling: str = "mean"     # one vector per input for the profiles and the per-Linear IDs: "cls", "mean", "flatten"
    poolings: list[str] = field(default_factory=lambda: ["cls", "mean", "flatten"])  # compared on one figure
    n_bootstrap: int = 200    # bootstrap resamples of the ratios mu, for the confidence bands
    n_resamples: int = 200    # resamples of the images, shared by all layers: intervals of ID differences
    benchmark_sizes: list[int] = field(default_factory=lambda: [2000, 5000])  # points (x 768 dims), TwoNN vs skdim
    benchmark_repeats: int = 7  # interleaved rounds; medians, and the speed-up's order-statistic interval (98 % at 7)
    threads: int = 1          # torch / BLAS threads (the machine is shared)

    # a run of seconds: few points, one small benchmark
    SMOKE: ClassVar[dict] = {"n_points": lambda n: min(n, 64), "n_bootstrap": lambda n: min(n, 20),
                             "n_resamples": lambda n: min(n, 20),
                             "benchmark_sizes": lambda _: [400], "benchmark_repeats": 2}
    PAPER_SMOKE: ClassVar[dict] = {"n_points": lambda n: min(n, 32)}

    def check(self) -> None:
        pools = POOLINGS
        n_points, batch_size, n_bootstrap = self.n_points, self.batch_size, self.n_bootstrap
        benchmark_sizes, benchmark_repeats, threads = self.benchmark_sizes, self.benchmark_repeats, self.threads
        if not (isinstance(n_points, int) and n_points >= 20):
            raise ValueError(f"n_points={n_points!r} must be a whole number >= 20 (TwoNN needs neighbours to fit)")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size={batch_size!r} must be a whole number >= 1")
        if self.pooling not in pools:
            raise ValueError(f"pooling={self.pooling!r} must be one of {pools}")
        if not (set(self.poolings) <= set(pools)):
            raise ValueError(f"poolings={self.poolings!r} must be a list drawn from {pools}")
        if not (isinstance(n_bootstrap, int) and 0 <= n_bootstrap <= 10_000):
            raise ValueError(f"n_bootstrap={n_bootstrap!r} must be a whole number in [0, 10000]")
        if not (isinstance(self.n_resamples, int) and 20 <= self.n_resamples <= 10_000):
            raise ValueError(f"n_resamples={self.n_resamples!r} must be a whole number in [20, 10000] "
                             "(a 95 % percentile interval needs a few tens of resamples)")
        if not (len(benchmark_sizes) >= 1 and all(isinstance(n, int) and 100 <= n <= 50_000 for n in benchmark_sizes)):
            raise ValueError(f"benchmark_sizes={benchmark_sizes!r} must be whole numbers in [100, 50000]")
        if not (isinstance(benchmark_repeats, int) and 1 <= benchmark_repeats <= 50):
            raise ValueError(f"benchmark_repeats={benchmark_repeats!r} must be a whole number in [1, 50]")
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads={threads!r} must be a whole number >= 1")

    def plan(self, blip_sites: int, clip_sites: int, blip_linears: int):
        """This notebook's work (:class:`vlmid.harness.plan.Plan`), given how many block sites each model has and
        how many Linears BLIP has (:func:`vlmid.id.block_sites`, :func:`vlmid.id.linear_sites`)."""
        from ..harness.plan import Plan, Work

        n_known = 300 if self.smoke else 1000   # the known-dimension sets' points (cell "TwoNN on known dimensions")
        return Plan("01", (
            Work(2 * self.n_points, "blip pass", "image-caption pairs through BLIP with hooks (blocks, then every Linear)"),
            Work(self.n_points, "clip pass", "image-caption pairs through CLIP with hooks"),
            Work((blip_sites + clip_sites) * len(self.poolings), "twonn fit",
                 f"layer IDs: {blip_sites} BLIP + {clip_sites} CLIP sites x {len(self.poolings)} poolings"),
            Work(blip_sites * len(self.poolings), "twonn fit",
                 f"image resamples: neighbour lists of the BLIP sites (then {self.n_resamples} quick refits each)"),
            Work(blip_linears, "twonn fit", "per-Linear IDs of BLIP (the pruning prior of notebook 02)"),
            Work(5 * 2, "twonn fit", "scale analysis: 5 towers, halving subsets (about two full fits each)"),
            Work(len(self.benchmark_sizes) * self.benchmark_repeats * 3, "benchmark fit",
                 f"TwoNN timing benchmark (3 estimators at {self.benchmark_sizes} points; CPU, {self.threads} thread(s))"),
            Work(5, "known-dimension fit", f"TwoNN on data sets of known dimension ({n_known} points each)"),
        ))

    def finish(self) -> None:
        self.poolings = list(dict.fromkeys([self.pooling, *self.poolings]))  # the main pooling is always measured
        if self.profile == "paper" and "flatten" in self.poolings and self.pooling != "flatten":
            # BLIP-base vision blocks flatten to 577 tokens x 768 = 443k numbers per image: ~20 GB for 12 layers
            self.poolings.remove("flatten")
            print("paper profile: 'flatten' pooling left out of the comparison (about 20 GB of activations at 1000 images)")
