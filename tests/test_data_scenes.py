"""Fashion-MNIST reader, the captioned scenes and the tiny zero-shot set."""
import gzip
import json

import numpy as np
import pytest

from vlmid.data import fashion_mnist as fm
from vlmid.data import scenes


def write_idx(path, array):
    """An idx file of unsigned bytes, as the Fashion-MNIST distribution ships them."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_fashion_folder(folder, n_train=60, n_test=20, train_value=0, test_value=255):
    """Train photos all ``train_value``, test photos all ``test_value`` (so scenes reveal their source)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.full((n_train, 28, 28), train_value))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.full((n_test, 28, 28), test_value))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n_test) * 3) % 10)
    return folder


def test_reader_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 28, 28))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", [9, 0, 1, 2, 3, 4, 5])
    x, y = fm.load_fashion_mnist("test", root=tmp_path)
    assert x.shape == (7, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, imgs)
    assert y.tolist() == [9, 0, 1, 2, 3, 4, 5]
    assert fm.FASHION_CLASSES[y[0]] == "ankle boot"


def test_reader_uses_env_variable(tmp_path, monkeypatch):
    make_fashion_folder(tmp_path, n_train=12, n_test=3)
    monkeypatch.setenv("VLMID_FASHION_MNIST", str(tmp_path))
    x, y = fm.load_fashion_mnist("train")
    assert x.shape == (12, 28, 28) and y[:3].tolist() == [0, 1, 2]


def test_missing_files_name_package_and_variable(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        fm.load_fashion_mnist("train", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert "dataset-fashion-mnist" in msg and "VLMID_FASHION_MNIST" in msg
    assert "train-images-idx3-ubyte.gz" in msg


def test_bad_magic_is_rejected(tmp_path):
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        fm.read_idx(tmp_path / "x.gz")


def test_test_scenes_use_only_test_photos(tmp_path, monkeypatch):
    # train photos are black, test photos white: a test scene is lit, a train/val scene is dark
    make_fashion_folder(tmp_path / "fm", n_train=200, n_test=30)
    monkeypatch.setenv("VLMID_FASHION_MNIST", str(tmp_path / "fm"))
    test_imgs, _, _ = scenes.generate_split("test", 12, seed=0)
    train_imgs, _, _ = scenes.generate_split("train", 12, seed=0)
    val_imgs, _, _ = scenes.generate_split("val", 6, seed=0)
    assert all(img.max() > 100 for img in test_imgs)
    assert train_imgs.max() == 0 and val_imgs.max() == 0


def test_train_and_val_pools_are_disjoint():
    tr, va = scenes.pool_indices("train", 60000, 0), scenes.pool_indices("val", 60000, 0)
    assert len(tr) == 55000 and len(va) == 5000
    assert not set(tr.tolist()) & set(va.tolist())


def test_scenes_deterministic_and_five_distinct_captions():
    a_img, a_cap, a_items = scenes.generate_split("test", 30, seed=0)
    b_img, b_cap, _ = scenes.generate_split("test", 30, seed=0)
    c_img, _, _ = scenes.generate_split("test", 30, seed=1)
    np.testing.assert_array_equal(a_img, b_img)
    assert a_cap == b_cap
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (30, scenes.CANVAS, scenes.CANVAS, 3)
    for caps, items in zip(a_cap, a_items):
        assert len(caps) == 5 and len(set(caps)) == 5
        # every caption names every item's colour (colours are part of what must be said)
        for it in items:
            assert all(it.colour in c for c in caps)
    assert {len(items) for items in a_items} == {1, 2, 3}


def test_captions_mention_the_item():
    rng = np.random.default_rng(0)
    items = [scenes.Item(label=9, colour="orange", size=30, cx=12, cy=12)]
    caps = scenes.captions_for(items, "single", rng)
    assert all("boot" in c for c in caps)
    assert any("top left" in c for c in caps)
    assert not any("a orange" in c or "a ankle" in c for c in caps)  # articles agree


def test_grammar_words_cover_captions():
    from vlmid.models.tokenizer import build_tokenizer

    _, caps, _ = scenes.generate_split("val", 40, seed=3)
    words = set(scenes.grammar_words())
    import re
    for c in (c for cs in caps for c in cs):
        assert set(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", c)) <= words, c


def test_karpathy_format_on_disk(tmp_path):
    folder = scenes.build_scenes(seed=0, smoke=True, sizes={"train": 6, "val": 2, "test": 4}, root=tmp_path)
    meta = json.loads((folder / "dataset_coco.json").read_text())
    imgs = meta["images"]
    assert [im["split"] for im in imgs].count("test") == 4 and len(imgs) == 12
    assert len({im["cocoid"] for im in imgs}) == 12
    for im in imgs:
        assert (folder / im["filepath"] / im["filename"]).exists()
        assert len(im["sentences"]) == 5
        assert all(set(s) >= {"raw", "tokens"} and s["tokens"] for s in im["sentences"])
    ex = scenes.read_karpathy(folder, "test")
    arrays = np.load(folder / "test.npz")["images"]
    assert len(ex) == 4 and ex[0].image.mode == "RGB" and ex[0].image.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(ex[0].image), arrays[0])  # PNG is lossless
    assert ex[0].captions == [s["raw"] for s in imgs[6 + 2]["sentences"]]
    try:  # the COCO loader of the paper profile reads the same folder
        from vlmid.data.coco import load_coco_karpathy
    except ImportError:
        return
    coco = load_coco_karpathy(folder, "test")
    assert [e.captions for e in coco] == [e.captions for e in ex]


def test_zeroshot_set_is_centred_white_items():
    from vlmid.data import load_zeroshot

    zs = load_zeroshot("tiny", n=20, seed=0)
    assert len(zs) == 20 and len(zs.classnames) == 10 and len(zs.templates) >= 3
    assert all("{}" in t for t in zs.templates)
    a = np.asarray(zs.images[0])
    assert a.shape == (64, 64, 3)
    assert a[:10].max() == 0 and a[-10:].max() == 0  # centred: margins stay black
    lit = a[a.sum(-1) > 60]
    assert np.abs(lit[:, 0].astype(int) - lit[:, 2].astype(int)).max() < 40  # untinted: grey-white
    assert load_zeroshot("tiny", n=20, seed=0).labels.tolist() == zs.labels.tolist()
