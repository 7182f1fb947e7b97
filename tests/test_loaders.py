"""The paper-profile loaders on small fixtures written here in each data set's exact on-disk format."""
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from vlmid.data.base import CaptionExample
from vlmid.data.cifar10 import CIFAR10_TEMPLATES, load_cifar10
from vlmid.data.coco import load_coco_karpathy, references, write_coco_karpathy
from vlmid.data.flickr8k import load_flickr8k, write_flickr8k


def _photo(seed, size=(12, 10)):
    """A smooth, seed-dependent picture (smooth so that JPEG keeps it recognisable)."""
    colour = np.random.default_rng(seed).integers(40, 200, 3)
    ramp = np.linspace(0, 50, size[0])[None, :, None]
    return Image.fromarray((colour + ramp + np.zeros((size[1], 1, 1))).astype(np.uint8))


# ----------------------------------------------------------------------------- COCO Karpathy
@pytest.fixture
def coco(tmp_path):
    """dataset_coco.json as Karpathy ships it, with COCO's train2014/ and val2014/ folders."""
    entries = []
    splits = ["train", "restval", "val", "test", "test", "test"]
    for i, split in enumerate(splits):
        folder = "train2014" if split == "train" else "val2014"
        name = f"COCO_{folder}_{i:012d}.jpg"
        (tmp_path / folder).mkdir(exist_ok=True)
        _photo(i).save(tmp_path / folder / name, quality=95)
        entries.append({"filepath": folder, "filename": name, "split": split, "imgid": i, "cocoid": 1000 + i,
                        "sentences": [{"raw": f"Caption {k} of image {i}.", "tokens": ["caption"]}
                                      for k in range(5)]})
    # test image 4: truncated JPEG (unreadable); test image 5: file missing
    bad = tmp_path / "val2014" / entries[4]["filename"]
    bad.write_bytes(bad.read_bytes()[:40])
    (tmp_path / "val2014" / entries[5]["filename"]).unlink()
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": entries, "dataset": "coco"}))
    return tmp_path


def test_coco_karpathy_splits_and_skips(coco):
    with pytest.warns(UserWarning, match="skipped 2"):
        test = load_coco_karpathy(coco, "test")
    assert [e.image_id for e in test] == [1003] and test.skipped == 2
    assert test[0].captions == [f"Caption {k} of image 3." for k in range(5)]
    assert test[0].image.mode == "RGB" and test[0].image.size == (12, 10)
    assert np.abs(np.asarray(test[0].image, dtype=int) - np.asarray(_photo(3), dtype=int)).mean() < 5
    train = load_coco_karpathy(coco, "train")  # train includes restval, as BLIP trains
    assert [e.image_id for e in train] == [1000, 1001] and train.skipped == 0
    assert [e.image_id for e in load_coco_karpathy(coco, "train", n=1)] == [1000]
    assert references(train) == {1000: train[0].captions, 1001: train[1].captions}


def test_coco_errors(tmp_path, coco):
    with pytest.raises(FileNotFoundError, match="dataset_coco.json"):
        load_coco_karpathy(tmp_path / "nowhere")
    (coco / "dataset_coco.json").write_text('{"images": [{"filename": "x.jpg"')
    with pytest.raises(ValueError, match="dataset_coco.json.*not valid JSON"):
        load_coco_karpathy(coco)
    (coco / "dataset_coco.json").write_text('{"images": [{"filename": "x.jpg", "split": "test"}]}')
    with pytest.raises(ValueError, match=r"images\[0\] is malformed"):
        load_coco_karpathy(coco)
    with pytest.raises(ValueError, match="split"):
        load_coco_karpathy(coco, "validation")


def test_coco_writer_round_trip(tmp_path):
    ex = [CaptionExample(i, _photo(i), [f"a thing number {i}", "Another, caption!"]) for i in range(4)]
    write_coco_karpathy(ex, tmp_path, split_of={0: "train", 1: "val", 2: "test", 3: "test"})
    back = load_coco_karpathy(tmp_path, "test")
    assert [e.image_id for e in back] == [2, 3]
    assert back[0].captions == ex[2].captions
    assert np.array_equal(np.asarray(back[1].image), np.asarray(ex[3].image))  # PNG: lossless
    data = json.loads((tmp_path / "dataset_coco.json").read_text())
    assert data["images"][0]["sentences"][1]["tokens"] == ["another", "caption"]
    # splits written by separate calls
    write_coco_karpathy([CaptionExample(9, _photo(9), ["late"])], tmp_path, split_of="val", append=True)
    assert [e.image_id for e in load_coco_karpathy(tmp_path, "val")] == [1, 9]
    write_coco_karpathy([CaptionExample(9, _photo(9), ["late"])], tmp_path, split_of="val")
    assert [e.image_id for e in load_coco_karpathy(tmp_path, "val")] == [9]


# ----------------------------------------------------------------------------- Flickr8k
@pytest.fixture
def flickr(tmp_path):
    names = [f"{1000 + i}_abc{i}.jpg" for i in range(5)]
    (tmp_path / "Flicker8k_Dataset").mkdir()
    for i, name in enumerate(names):
        _photo(i).save(tmp_path / "Flicker8k_Dataset" / name, quality=95)
    (tmp_path / "Flicker8k_Dataset" / names[3]).write_bytes(b"not a jpeg at all")
    lines = [f"{name}#{k}\tA dog number {i} runs , caption {k} ." for i, name in enumerate(names) for k in range(5)]
    lines.append("2258277193_586949ec62.jpg.1#0\tAn entry of the real file that no split lists .")
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "Flickr_8k.trainImages.txt").write_text(f"{names[0]}\n{names[1]}\n")
    (tmp_path / "Flickr_8k.devImages.txt").write_text(f"{names[2]}\n")
    # test: a good one, an unreadable one, and one whose file is missing
    (tmp_path / "Flickr_8k.testImages.txt").write_text(f"{names[4]}\n{names[3]}\n9999_missing.jpg\n")
    return tmp_path


def test_flickr8k_loads_with_skips(flickr):
    train = load_flickr8k(flickr, "train")
    assert [e.image_id for e in train] == ["1000_abc0", "1001_abc1"]
    assert train[1].captions[0] == "A dog number 1 runs , caption 0 ." and len(train[1].captions) == 5
    assert [e.image_id for e in load_flickr8k(flickr, "dev")] == ["1002_abc2"]
    with pytest.warns(UserWarning, match="skipped 2"):
        test = load_flickr8k(flickr, "test")
    assert [e.image_id for e in test] == ["1004_abc4"] and test.skipped == 2
    assert test.skipped_files == ["1003_abc3.jpg", "9999_missing.jpg"]


def test_flickr8k_images_folder_and_errors(flickr):
    (flickr / "Flicker8k_Dataset").rename(flickr / "Images")
    assert len(load_flickr8k(flickr, "train")) == 2
    (flickr / "Flickr_8k.devImages.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Flickr_8k.devImages.txt"):
        load_flickr8k(flickr, "val")
    (flickr / "Flickr8k.token.txt").write_text("1000_abc0.jpg caption without a tab or index\n")
    with pytest.raises(ValueError, match="Flickr8k.token.txt, line 1"):
        load_flickr8k(flickr, "train")


def test_flickr8k_writer_round_trip(tmp_path):
    ex = [CaptionExample(f"scene{i}", _photo(i), [f"a red bag  number {i}", "two items"]) for i in range(3)]
    write_flickr8k(ex, tmp_path, split_of=lambda e: "train" if e.image_id == "scene0" else "test")
    assert (tmp_path / "Flickr8k.token.txt").read_text().splitlines()[0] == "scene0.jpg#0\ta red bag number 0"
    assert (tmp_path / "Flickr_8k.devImages.txt").read_text() == ""
    back = load_flickr8k(tmp_path, "test")
    assert [e.image_id for e in back] == ["scene1", "scene2"] and back[1].captions[1] == "two items"
    # a second call with append=True adds a split and moves an image that is written again
    more = [CaptionExample("scene2", _photo(2), ["moved"]), CaptionExample("scene9", _photo(9), ["new"])]
    write_flickr8k(more, tmp_path, split_of="val", append=True)
    assert [e.image_id for e in load_flickr8k(tmp_path, "test")] == ["scene1"]
    val = load_flickr8k(tmp_path, "val")
    assert [(e.image_id, e.captions) for e in val] == [("scene2", ["moved"]), ("scene9", ["new"])]
    assert len(load_flickr8k(tmp_path, "train")) == 1


# ----------------------------------------------------------------------------- CIFAR-10
NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _batch(path, n, seed):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"testing batch 1 of 1", b"labels": rng.integers(0, 10, n).tolist(),
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return d


@pytest.fixture
def cifar(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": NAMES, b"num_cases_per_batch": 4, b"num_vis": 3072}, f, protocol=2)
    batches = {name: _batch(folder / name, 4, i) for i, name in
               enumerate(["test_batch"] + [f"data_batch_{k}" for k in range(1, 6)])}
    return tmp_path, batches


def test_cifar10_pixels_labels_names(cifar):
    root, batches = cifar
    zs = load_cifar10(root, "test")
    d = batches["test_batch"]
    assert zs.classnames[1] == "automobile" and zs.templates == CIFAR10_TEMPLATES
    assert zs.labels.tolist() == d[b"labels"] and len(zs) == 4
    # row layout: 1024 red values, then 1024 green, then 1024 blue, each plane row-major
    px = np.asarray(zs.images[2])
    row = d[b"data"][2]
    assert px.shape == (32, 32, 3)
    assert px[0, 5, 0] == row[5] and px[1, 0, 1] == row[1024 + 32] and px[31, 31, 2] == row[3071]
    train = load_cifar10(root / "cifar-10-batches-py", "train", n=10)  # the folder itself also works
    assert len(train) == 10
    assert train.labels.tolist() == batches["data_batch_1"][b"labels"] + batches["data_batch_2"][b"labels"] + \
        batches["data_batch_3"][b"labels"][:2]


def test_cifar10_errors(cifar):
    root, _ = cifar
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_2").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        load_cifar10(root, "train")
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 python pickle"):
        load_cifar10(root, "test")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"uint8 \[N, 3072\]"):
        load_cifar10(root, "test")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, f)
    assert len(load_cifar10(root, "test")) == 2  # the keys we need are enough


def test_cifar10_refuses_code_in_pickles(cifar):
    root, _ = cifar

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_cifar10(root, "test")


# ----------------------------------------------------------------------------- lazy images
def test_real_splits_are_read_lazily_with_bounded_memory(coco, monkeypatch):
    """The paper loaders keep paths, not pixels: each .image decodes its file on use, images_of decodes
    one slice (one batch) at a time, and a file spoiled after listing fails with its name."""
    import vlmid.data.base as base
    from vlmid.data.base import StoredCaptionExample, images_of

    train = load_coco_karpathy(coco, "train")
    assert all(isinstance(e, StoredCaptionExample) and "image" not in vars(e) for e in train)
    eager = load_coco_karpathy(coco, "train", lazy=False)
    assert [type(e) for e in eager] == [CaptionExample, CaptionExample]
    for lazy_e, eager_e in zip(train, eager):
        assert np.array_equal(np.asarray(lazy_e.image), np.asarray(eager_e.image))
    decoded = []
    real = base.read_rgb
    monkeypatch.setattr(base, "read_rgb", lambda path, max_side=None: decoded.append(path) or real(path, max_side))
    images = images_of(train)
    assert len(images) == 2 and decoded == []          # nothing decoded until asked
    assert [im.size for im in images[:1]] == [(12, 10)] and len(decoded) == 1
    monkeypatch.undo()
    spoiled = train[1].path
    spoiled.write_bytes(spoiled.read_bytes()[:300])  # header intact, pixels cut off
    with pytest.raises(OSError, match=spoiled.name):
        train[1].image


def test_flickr8k_is_lazy_too(flickr):
    from vlmid.data.base import StoredCaptionExample

    with pytest.warns(UserWarning):
        test = load_flickr8k(flickr, "test")
    assert test and all(isinstance(e, StoredCaptionExample) for e in test)
    assert test[0].image.mode == "RGB"
