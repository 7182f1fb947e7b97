"""The Flickr8k report's two models and its objective, rebuilt as its text describes them.

What the report did (ECE1512 course project, December 2024; see ``docs/sources.md``): on
Flickr8k at 112 px (16 px patches, 49 tokens; a random 40 % of each split; Adam, 3 epochs,
batch 16) it compared an image-only "baseline" (patch tokens -> projection -> mean pool) with
a "token-pruned multimodal" model (patch tokens -> importance scorer -> top half -> mean,
caption mean-embedding, bilinear alignment). Both were trained with ``1 - cos(output, target)``,
the target being the mean of the caption's word ids copied into every output dimension, and
that same loss was reported as each model's "test loss": 0.0007 vs 0.5050, hence a
"lossy-ness" ``1 - pruned / baseline`` of -704.

Why these replicas exist: notebook 04 compares the two ideas properly elsewhere (one dual
encoder, one contrastive objective: :mod:`.models`, :mod:`.train`). The code here serves
only its failure analysis, to measure where the report's -704 came from: a baseline whose
target is one constant direction, a pruned model whose one-number output gets no gradient
from that loss, a ratio of two unrelated losses, FLOPs counted per batch of 16, and a patch
split that makes each "token" a strip of one colour channel.

- :func:`report_patchify`                      the report's patch split (channels not moved)
- :class:`ReportImageOnly`, :class:`ReportMultimodal`   its baseline and its "optimized" model
- :func:`report_target`, :func:`report_cosine_loss`      its regression target and loss
- :func:`fit_report_model`, :func:`report_test_loss`     its training and its "test loss"
- :data:`FLICKR8K_REPORT`                      the numbers it reported (claims to compare with)
- :func:`report_flops`, :func:`report_mean_flops`, :func:`report_flops_table`   its FLOPs accounting
- :func:`train_report_miniature`, :func:`report_failure_checks`   its setup in miniature, and why -704
- :func:`report_patch_channels`                how many of its "tokens" hold one colour channel
"""
from __future__ import annotations

import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..optim import optimizer_step
from .models import check_keep_ratio, count_flops, keep_top_tokens, n_kept, patchify
from .train import RetrievalSet, lossyness

# the Flickr8k report's numbers: the claims notebook 04 compares with (not results of ours).
# Pairs are (baseline, token-pruned); FLOPs are per batch of 16; epoch times are the baseline's.
FLICKR8K_REPORT = dict(train_s=(714.00, 54.70), test_s=(112.41, 2.97), flops=(83_494_912, 78_807_104),
                       test_loss=(0.0007, 0.5050), lossyness=-704.2842, first_epoch_s=677.93, later_epoch_s=(18.24, 17.83))


# ---------------------------------------------------------------------------------------
# the two models
# ---------------------------------------------------------------------------------------
def report_patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """The report's patch split: unfold twice, then reshape to [B, N, C*p*p] *without* moving the channel axis.

    The unfolded tensor is [B, C, H/p, W/p, p, p]; reshaping it directly makes each "token"
    a run of C*p*p consecutive numbers of that layout - strips of several patches of ONE
    colour channel - not one RGB patch. Kept here only to measure that.
    """
    b = images.shape[0]
    n = (images.shape[2] // patch) * (images.shape[3] // patch)
    return images.unfold(2, patch, patch).unfold(3, patch, patch).reshape(b, n, -1)


class ReportImageOnly(nn.Module):
    """The report's baseline: patch tokens -> projection -> mean pool. It never sees a caption."""

    def __init__(self, image_size: int = 112, patch_size: int = 16, width: int = 64):
        super().__init__()
        self.patch = patch_size
        self.patch_embed = nn.Linear(3 * patch_size ** 2, width)
        self.projector = nn.Linear(width, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projector(self.patch_embed(report_patchify(images, self.patch))).mean(dim=1)


class ReportMultimodal(nn.Module):
    """The report's "optimized" model: scorer -> keep top half -> mean; caption mean-embedding; bilinear score."""

    def __init__(self, vocab_size: int, image_size: int = 112, patch_size: int = 16, width: int = 64,
                 text_width: int = 50, keep_ratio: float = 0.5):
        super().__init__()
        self.patch, self.keep_ratio = patch_size, check_keep_ratio(keep_ratio)
        self.patch_embed = nn.Linear(3 * patch_size ** 2, width)
        self.scorer = nn.Sequential(nn.Linear(width, width // 4), nn.GELU(), nn.Linear(width // 4, 1))
        self.text_embed = nn.Embedding(vocab_size, text_width)
        self.text_proj = nn.Linear(text_width, width)
        self.align = nn.Bilinear(width, width, 1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(report_patchify(images, self.patch))
        kept, _ = keep_top_tokens(x, self.scorer(x).squeeze(-1), n_kept(x.shape[1], self.keep_ratio))
        t = self.text_proj(self.text_embed(ids).mean(dim=1))
        return self.align(kept.mean(dim=1), t)  # [B, 1]: one alignment score per (image, its caption)


# ---------------------------------------------------------------------------------------
# the objective, its training and its "test loss"
# ---------------------------------------------------------------------------------------
def report_target(ids: torch.Tensor, width: int) -> torch.Tensor:
    """The report's regression target: the mean of the caption's word ids, copied to every output dimension."""
    return ids.float().mean(dim=1, keepdim=True).expand(-1, width)


def report_cosine_loss(outputs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """1 - cos(outputs, report_target): what the report trained AND reported as "test loss" for both models."""
    return 1 - F.cosine_similarity(F.normalize(outputs, dim=-1),
                                   F.normalize(report_target(ids, outputs.shape[-1]), dim=-1), dim=-1).mean()


def fit_report_model(model, data: RetrievalSet, epochs: int = 3, batch_size: int = 16, lr: float = 1e-3,
                     seed: int = 0, image_only: bool = True, optimizer=None) -> list[float]:
    """Train one of the report's models on the report's loss (first caption of each image, as the report did).

    Pass the same ``optimizer`` to continue training across calls (Adam keeps its moments).
    """
    first = torch.searchsorted(data.caption_image, torch.arange(len(data)))
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    epoch_loss = []
    model.train()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order, losses = torch.randperm(len(data), generator=gen), []
        for b in range(0, len(data), batch_size):
            idx = order[b: b + batch_size]
            ids = data.text_ids[first[idx]]
            out = model(data.images[idx]) if image_only else model(data.images[idx], ids)
            loss = report_cosine_loss(out, ids)
            optimizer_step(loss, opt)
            losses.append(float(loss.detach()))
        epoch_loss.append(statistics.fmean(losses))
    model.eval()
    return epoch_loss


@torch.no_grad()
def report_test_loss(model, data: RetrievalSet, batch_size: int = 16, image_only: bool = True) -> float:
    """The report's "test loss": the mean over batches of :func:`report_cosine_loss` on each image's first caption."""
    first = torch.searchsorted(data.caption_image, torch.arange(len(data)))
    losses = []
    for b in range(0, len(data), batch_size):
        ids = data.text_ids[first[b: b + batch_size]]
        out = model(data.images[b: b + batch_size]) if image_only else model(data.images[b: b + batch_size], ids)
        losses.append(float(report_cosine_loss(out, ids)))
    return statistics.fmean(losses)


# ---------------------------------------------------------------------------------------
# its FLOPs, as its profiler counted them
# ---------------------------------------------------------------------------------------
REPORT_FLOPS_MODELS = ("report baseline", "report pruned, keep 0.5", "report pruned, keep 1.0")


def report_flops(vocab_size: int, batch_size: int = 16, image_size: int = 112, caption_words: int = 15) -> dict[str, int]:
    """Matmul FLOPs (FlopCounterMode) of the report's models on one batch of ``batch_size`` images (and captions).

    Keys are :data:`REPORT_FLOPS_MODELS`: the baseline, the pruned model at keep 0.5 (the
    report's) and at keep 1.0. Its baseline counts ``2 * 16 * 49 * (768 * 64 + 64 * 64)``: the two
    Linear layers on every token of every image of the batch. Keep 0.5 and keep 1.0 count the
    same: the pruning happens after the only heavy layer. The models are built with the global
    torch RNG (their weights do not change a FLOP count).
    """
    images = torch.zeros(batch_size, 3, image_size, image_size)
    ids = torch.ones(batch_size, caption_words, dtype=torch.long)
    counts = {}
    for name, m, args in ((REPORT_FLOPS_MODELS[0], ReportImageOnly(), (images,)),
                          (REPORT_FLOPS_MODELS[1], ReportMultimodal(vocab_size), (images, ids)),
                          (REPORT_FLOPS_MODELS[2], ReportMultimodal(vocab_size, keep_ratio=1.0), (images, ids))):
        counts[name] = count_flops(lambda: m(*args))
    return counts


def report_mean_flops(batch_size: int = 16, width: int = 64, text_width: int | None = None) -> int:
    """What the report's profiler added on top of the matmuls: one multiply-add (2 FLOPs) per output of each mean.

    Its baseline has one mean, the pool ([B, width] outputs): ``text_width=None``. Its
    multimodal model has two, over the kept tokens ([B, width]) and over the caption's word
    embeddings ([B, text_width]; the report's 50).
    """
    flops = 2 * batch_size * width
    return flops if text_width is None else 2 * (batch_size * width + batch_size * text_width)


def report_flops_table(counts: dict[str, int], batch_size: int = 16, reported=FLICKR8K_REPORT["flops"]):
    """The report's FLOPs reconstructed: matmul FLOPs per batch, plus the means (the report's count), per image.

    ``counts`` as returned by :func:`report_flops`; ``reported`` the report's (baseline, pruned)
    values. Columns: model, matmul_flops_batch16, plus_means (NaN for keep 1.0, which the
    report did not run), report_value, per_image.
    """
    import pandas as pd

    base, pruned, full = REPORT_FLOPS_MODELS
    means_base = report_mean_flops(batch_size, 64)                  # the report's widths: 64, text 50
    means_pruned = report_mean_flops(batch_size, 64, text_width=50)
    table = pd.DataFrame([
        dict(model=base, matmul_flops_batch16=counts[base], plus_means=counts[base] + means_base, report_value=reported[0]),
        dict(model=pruned, matmul_flops_batch16=counts[pruned], plus_means=counts[pruned] + means_pruned,
             report_value=reported[1]),
        dict(model=full, matmul_flops_batch16=counts[full], plus_means=float("nan"), report_value=float("nan")),
    ])
    table["per_image"] = table.matmul_flops_batch16 / batch_size
    return table


def report_patch_channels(image_size: int = 112, patch_size: int = 16) -> dict[str, int]:
    """Probe the report's patch split with an image whose pixel value is its channel index.

    Returns ``n_tokens``, ``single_channel`` (tokens that hold one colour channel only) and
    ``rgb_patches`` (tokens equal to the true RGB patch of :func:`.models.patchify`).
    """
    probe = torch.arange(3.0).view(1, 3, 1, 1).expand(1, 3, image_size, image_size)   # pixel value = channel index
    theirs, ours = report_patchify(probe, patch_size)[0], patchify(probe, patch_size)[0]
    channels_per_token = [len(torch.unique(t)) for t in theirs]
    rgb = sum(c == 3 and torch.equal(t, p) for c, t, p in zip(channels_per_token, theirs, ours))
    return dict(n_tokens=len(channels_per_token), single_channel=sum(c == 1 for c in channels_per_token),
                rgb_patches=int(rgb))


# ---------------------------------------------------------------------------------------
# its setup in miniature, and the measured reasons for its -704
# ---------------------------------------------------------------------------------------
def train_report_miniature(train_set: RetrievalSet, test_set: RetrievalSet, vocab_size: int, image_size: int = 112,
                           patch_size: int = 16, width: int = 64, epochs: int = 3, batch_size: int = 16,
                           lr: float = 1e-3, seed: int = 0):
    """Train the report's two models on its loss, one epoch at a time, and take its "test loss" after each.

    Seeds torch with ``seed``, builds :class:`ReportImageOnly` then :class:`ReportMultimodal`,
    and trains each with Adam (moments kept across epochs), epoch ``e`` on the batch order of
    seed ``seed + e``. Returns ``(table, baseline, pruned)``: one row per epoch with
    baseline_train_loss, pruned_train_loss, baseline_test_loss, pruned_test_loss and
    report_lossyness (``1 - pruned / baseline`` on those test losses, the report's Eq. 6).
    """
    import pandas as pd

    torch.manual_seed(seed)
    base, pruned = ReportImageOnly(image_size, patch_size, width), ReportMultimodal(vocab_size, image_size, patch_size, width)
    opt_b, opt_p = (torch.optim.Adam(m.parameters(), lr=lr) for m in (base, pruned))
    rows = []
    for e in range(epochs):
        lb = fit_report_model(base, train_set, 1, batch_size, lr, seed + e, image_only=True, optimizer=opt_b)
        lp = fit_report_model(pruned, train_set, 1, batch_size, lr, seed + e, image_only=False, optimizer=opt_p)
        tb = report_test_loss(base, test_set, image_only=True)
        tp = report_test_loss(pruned, test_set, image_only=False)
        rows.append(dict(epoch=e + 1, baseline_train_loss=lb[-1], pruned_train_loss=lp[-1],
                         baseline_test_loss=tb, pruned_test_loss=tp, report_lossyness=lossyness(tp, tb)))
    return pd.DataFrame(rows), base, pruned


def report_failure_checks(base: ReportImageOnly, pruned: ReportMultimodal, train_set: RetrievalSet,
                          test_set: RetrievalSet, batch_size: int = 16, pruned_test_loss: float = float("nan")):
    """Measure why the report's losses say nothing: a table of (check, value), six rows in this order.

    0. mean cosine of the baseline's unit outputs with (1,...,1)/sqrt(d) (near 1: a constant direction);
    1. their spread across test images (mean std per dimension; near 0: the image is ignored);
    2. the report's loss of a constant all-ones output (0: no image needed at all);
    3. ``1 - mean(sign(score))`` of the pruned model on the test images (its loss, given a one-number output);
    4. ``pruned_test_loss``, the report's test loss of the pruned model, passed in to sit beside 3;
    5. the total |gradient| of the report's loss over the pruned model's parameters on the first
       training batch (0: it cannot learn). This leaves those gradients in ``pruned``.
    """
    import pandas as pd

    with torch.no_grad():
        yb = F.normalize(base(test_set.images), dim=-1)
        ones = torch.full((1, yb.shape[1]), yb.shape[1] ** -0.5)
        first_cap = test_set.text_ids[torch.searchsorted(test_set.caption_image, torch.arange(len(test_set)))]
        score = pruned(test_set.images, first_cap).squeeze(-1)
    pruned.zero_grad()
    report_cosine_loss(pruned(train_set.images[:batch_size], train_set.text_ids[:batch_size]),
                       train_set.text_ids[:batch_size]).backward()
    grad_norm = sum(float(p.grad.abs().sum()) for p in pruned.parameters() if p.grad is not None)
    return pd.DataFrame([
        dict(check="baseline: mean cos(output, (1,...,1)/sqrt(d)) over test images", value=float((yb @ ones.t()).mean())),
        dict(check="baseline: spread of its unit outputs across test images (mean std per dim)", value=float(yb.std(0).mean())),
        dict(check="baseline: loss of a constant all-ones output (no image at all)",
             value=float(report_cosine_loss(torch.ones(len(first_cap), yb.shape[1]), first_cap))),
        dict(check="pruned: 1 - mean(sign(score)) on the test images", value=float(1 - torch.sign(score).mean())),
        dict(check="pruned: the report's test loss (batches of 16)", value=pruned_test_loss),
        dict(check="pruned: total |gradient| of the report's loss over all parameters", value=grad_norm),
    ])
