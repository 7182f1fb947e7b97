"""vlmid.data.scenes.placed_items: notebook 03's harder zero-shot set, and the labelled render it reads.

Photos are generated (no Fashion-MNIST needed): 28x28 squares of full brightness, so every pixel of an item
is garment and the expected patches can be worked out from the item's square alone.
"""
import numpy as np
import pytest

from vlmid.data import scenes

N = 240


def photos_and_labels(n: int = N, seed: int = 0):
    """Bright squares with a dark one-pixel frame (a garment that fills its photo), classes 0-9 in turn."""
    photos = np.zeros((n, 28, 28), dtype=np.uint8)
    photos[:, 1:-1, 1:-1] = 255
    return photos, np.arange(n) % 10


def draw(p=(1.0,), seed=0, n=N, **kw):
    photos, labels = photos_and_labels(n)
    return scenes.placed_items(photos, labels, np.random.default_rng(seed), p, **kw)


def square(it: scenes.Item):
    x0, y0 = it.cx - it.size // 2, it.cy - it.size // 2
    return x0, y0, x0 + it.size, y0 + it.size


def patch_pixels(a: np.ndarray, patch: int = 8) -> np.ndarray:
    """[C, C] -> [(C / patch)^2, patch^2] in the ViT's row-major patch order."""
    g = a.shape[0] // patch
    return a.reshape(g, patch, g, patch).transpose(0, 2, 1, 3).reshape(g * g, patch * patch)


# ------------------------------------------------------------------------------ the set
def test_the_same_seed_draws_the_same_set_and_another_seed_another():
    a, b, c = draw((0.4, 0.3, 0.3), seed=1), draw((0.4, 0.3, 0.3), seed=1), draw((0.4, 0.3, 0.3), seed=2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.foreground, b.foreground)
    assert a.targets == b.targets and np.array_equal(a.n_items, b.n_items)
    assert not np.array_equal(a.images, c.images)


def test_targets_vary_in_place_size_and_colour_as_single_items_draw_them():
    d = draw(seed=3)
    cells = {(int(t.cx // (64 / 3)), int(t.cy // (64 / 3))) for t in d.targets}
    sizes = [t.size for t in d.targets]
    assert len(cells) == 9                                   # every cell of the 3 x 3 grid, not a fixed centre
    assert min(sizes) == scenes.SIZES[1][0] and max(sizes) == scenes.SIZES[1][1]
    assert len({t.colour for t in d.targets}) == len(scenes.COLOURS)
    assert 0.2 < np.mean([t.colour == "white" for t in d.targets]) < 0.5   # white_p = 0.3, plus white's share of the rest
    assert all(draw(seed=3, white_p=1.0).targets[i].colour == "white" for i in range(10))
    assert np.array_equal(d.labels, np.arange(N) % 10) and (d.n_items == 1).all()
    # the foreground moves with the target: even the middle patches are the target's in at most 3 images of 4
    # (centred items cover them in every image), and the corners' patches are some images' too
    share = d.foreground.mean(0)
    assert share.max() < 0.75 and share[[0, 7, 56, 63]].min() > 0.05


def test_without_distractors_the_foreground_is_the_drawn_garment():
    """A patch is the target's exactly when at least MIN_FOREGROUND of its pixels are brighter than
    FOREGROUND_LEVEL; the image's uint8 pixels floor the float ones, so the bounds are one level apart."""
    d = draw(seed=4)
    for img, fg, t in zip(d.images, d.foreground, d.targets):
        level = patch_pixels(img.max(-1).astype(int))
        assert ((level >= scenes.FOREGROUND_LEVEL).sum(1)[fg] >= scenes.MIN_FOREGROUND).all()
        assert ((level > scenes.FOREGROUND_LEVEL + 1).sum(1)[~fg] < scenes.MIN_FOREGROUND).all()
        x0, y0, x1, y1 = square(t)
        rows, cols = np.divmod(np.flatnonzero(fg), 8)
        assert (cols * 8 < x1).all() and (cols * 8 + 8 > x0).all() and (rows * 8 < y1).all() and (rows * 8 + 8 > y0).all()
        assert fg.sum() >= (t.size // 8 - 1) ** 2          # a full square covers its inner patches


def test_distractors_are_smaller_other_garments_away_from_the_target():
    photos, labels = photos_and_labels()
    rng = np.random.default_rng(5)
    d = scenes.placed_items(photos, labels, rng, (0.2, 0.3, 0.5))
    shares = np.bincount(d.n_items, minlength=4)[1:] / N
    assert np.allclose(shares, [0.2, 0.3, 0.5], atol=0.08)
    # what the foreground would be without the distractors: the target drawn alone in the same place
    for img, fg, t, k in zip(d.images, d.foreground, d.targets, d.n_items):
        alone = scenes.render_labelled([photos[0]], [scenes.Item(t.label, t.colour, t.size, t.cx, t.cy)])[1]
        assert fg.sum() >= (alone == t.label).sum() - 4 * (k - 1)   # a corner distractor may take a patch or so
        lit = patch_pixels(img.max(-1) > scenes.FOREGROUND_LEVEL + 1).sum(1) >= scenes.MIN_FOREGROUND
        assert (lit & ~fg).any() == (k > 1)                          # the distractors' patches are not the target's
    assert set(map(tuple, scenes._distractor_cells(32, 32))) == {(0, 0), (2, 0), (0, 2), (2, 2)}
    assert scenes._distractor_cells(10, 32) == [(2, 0), (2, 1), (2, 2)]   # middle left: the right column
    assert scenes._distractor_cells(10, 54) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]   # bottom left
    assert scenes.DISTRACTOR_SIZE[1] < min(lo for lo, _ in scenes.SIZES.values())


def test_distractors_are_of_another_class_than_the_target(monkeypatch):
    """Draw with a recording render: every distractor's class differs from its target's."""
    photos, labels = photos_and_labels(60)
    seen, real = [], scenes.render_labelled

    def spy(ph, items, *args):
        seen.append(list(items))
        return real(ph, items, *args)

    monkeypatch.setattr(scenes, "render_labelled", spy)
    d = scenes.placed_items(photos, labels, np.random.default_rng(6), (0.0, 0.0, 1.0))
    assert (d.n_items == 3).all() and len(seen) == 60
    for items, lab in zip(seen, d.labels):
        assert items[0].label == lab and all(it.label != lab for it in items[1:])
        assert all(scenes.DISTRACTOR_SIZE[0] <= it.size <= scenes.DISTRACTOR_SIZE[1] for it in items[1:])


@pytest.mark.parametrize("p", [(0.5, 0.6), (1.2, -0.2), (0.25,) * 4, ()])
def test_bad_distractor_probabilities_raise(p):
    with pytest.raises(ValueError, match="p_distractors"):
        draw(p, n=10)


def test_distractors_need_another_class():
    with pytest.raises(ValueError, match="another class"):
        scenes.placed_items(np.zeros((3, 28, 28), np.uint8), np.zeros(3, int), np.random.default_rng(0), (0.0, 1.0))


# ------------------------------------------------------------------------------ the labelled render
def test_render_labelled_draws_what_render_draws():
    photos, labels = photos_and_labels(3)
    items, _ = scenes.sample_layout(3, [0, 1, 2], np.random.default_rng(7))
    img, _ = scenes.render_labelled(list(photos), items, np.random.default_rng(8))
    assert np.array_equal(img, scenes.render(list(photos), items, rng=np.random.default_rng(8)))


def test_render_labelled_is_the_pretraining_rule():
    """One rule labels the pre-training scenes and marks the harder set's foreground."""
    from vlmid.models import pretrain

    assert pretrain.render_labelled is scenes.render_labelled
    assert (pretrain.BACKGROUND, pretrain.MIN_FOREGROUND, pretrain.FOREGROUND_LEVEL) == \
        (scenes.BACKGROUND, scenes.MIN_FOREGROUND, scenes.FOREGROUND_LEVEL) == (pretrain.N_CLASSES, 6, 20)
