"""Fashion-MNIST reader, the captioned scenes and the tiny zero-shot set."""
import gzip
import json
import re

import numpy as np
import pytest

from vlmid.data import fashion_mnist as fm
from vlmid.data import scenes
from vlmid.data.coco import load_coco_karpathy


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
    ex = load_coco_karpathy(folder, "test", lazy=False)  # what load_scenes reads them with
    arrays = np.load(folder / "test.npz")["images"]
    assert len(ex) == 4 and ex[0].image.mode == "RGB" and ex[0].image.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(ex[0].image), arrays[0])  # PNG is lossless
    assert ex[0].captions == [s["raw"] for s in imgs[6 + 2]["sentences"]]
    lazy = load_coco_karpathy(folder, "test")  # as the paper profile reads COCO: decoded on use
    assert [e.captions for e in lazy] == [e.captions for e in ex]
    assert np.array_equal(np.asarray(lazy[3].image), arrays[3])


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


# ------------------------------------------------------------------ the vocabulary: one meaning per word
WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")  # BERT's basic tokenisation, as grammar_words() uses it


def _words(text):
    return set(WORD.findall(text.lower()))


def _every_candidate(seeds=range(6)):
    """(items, every caption the grammar offers for them) over all labels, colours, sizes, places,
    arrangements and both synonyms (drawn: several seeds), without sampling k of them."""
    colours = list(scenes.COLOURS)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for lab in range(10):
            for ci, col in enumerate(colours):
                other, col2 = (lab + 1 + ci) % 10, colours[(ci + 3) % len(colours)]
                for size in (26, 38):
                    for cx in (10, 32, 54):
                        for cy in (10, 32, 54):
                            items = [scenes.Item(lab, col, size, cx, cy)]
                            yield items, scenes._single(items, rng)
                for arr in ("vertical", "horizontal"):
                    for lab2 in (lab, other):  # same label: the "two trousers, one red and one blue" template
                        items = [scenes.Item(lab, col, 24, 20, 20), scenes.Item(lab2, col2, 24, 44, 44)]
                        yield items, scenes._pair(items, arr, rng)
                items = [scenes.Item(lab, col, 19, 10, 32), scenes.Item(other, col2, 19, 32, 32),
                         scenes.Item((other + 3) % 10, col, 19, 54, 32)]
                yield items, scenes._triple(items, rng)


def _template_words(monkeypatch):
    """The words of the templates alone: every garment and colour replaced by a placeholder."""
    it = lambda lab, cx=32, cy=32, size=24: scenes.Item(lab, "colourx", size, cx, cy)
    with monkeypatch.context() as m:
        m.setattr(scenes, "NOUNS", [["garmentx"]] * 10)
        m.setattr(scenes, "PLURAL", {})
        rng = np.random.default_rng(0)
        caps = [c for size in (26, 38) for cx in (10, 32, 54) for cy in (10, 32, 54)
                for c in scenes._single([it(0, cx, cy, size)], rng)]
        caps += [c for arr in ("vertical", "horizontal") for lab2 in (0, 1)  # lab2 = 0: the plural template
                 for c in scenes._pair([it(0, 20, 20), it(lab2, 44, 44)], arr, rng)]
        caps += scenes._triple([it(0), it(1), it(2)], rng)
    return set().union(*map(_words, caps)) - {"garmentx", "garmentxs", "colourx"}


def _garment_phrases():
    """Every garment phrase the grammar can write or a parser may meet: synonyms and their plurals."""
    return {(lab, p) for lab, syn in enumerate(scenes.NOUNS) for s in syn
            for p in (s, scenes.PLURAL.get(s, s + "s"))}


def test_tee_swap_changes_only_that_word(monkeypatch):
    # "tee" replaced "top" as the t-shirt's synonym: same random draws, same pixels, only that word differs
    new_img, new_caps, new_items = scenes.generate_split("test", 300, seed=0)
    monkeypatch.setattr(scenes, "NOUNS", [["t-shirt", "top"]] + scenes.NOUNS[1:])
    old_img, old_caps, old_items = scenes.generate_split("test", 300, seed=0)
    np.testing.assert_array_equal(new_img, old_img)
    assert [[(i.label, i.colour, i.size, i.cx, i.cy) for i in s] for s in new_items] == \
           [[(i.label, i.colour, i.size, i.cx, i.cy) for i in s] for s in old_items]
    swapped = 0
    for new, old in zip((c for cs in new_caps for c in cs), (c for cs in old_caps for c in cs)):
        a, b = new.split(), old.split()
        assert len(a) == len(b) and all(x == y or (x.strip(",") == "tee" and y.strip(",") == "top")
                                        for x, y in zip(a, b)), (new, old)
        swapped += a != b
    assert swapped > 20  # the synonym is drawn 40 % of the time


def test_grammar_words_are_exactly_what_the_grammar_writes():
    from vlmid.data.fashion_mnist import FASHION_CLASSES
    from vlmid.data.zeroshot import FASHION_TEMPLATES

    written = set()
    for _, caps in _every_candidate():
        for c in caps:
            written |= _words(c)
    prompts = set().union(*(_words(t.format(c)) for t in FASHION_TEMPLATES for c in FASHION_CLASSES))
    vocab = set(scenes.grammar_words())
    assert written | prompts <= vocab, (written | prompts) - vocab
    # the few vocabulary words no caption writes (the tiny models' vocabulary: kept as it is)
    assert vocab - written - prompts == {".", "item", "photo", "tees", "sweaters", "jackets", "blouses",
                                         "trainers", "handbags"}
    assert {"tee", "t", "-", "shirt", "top"} <= written  # "top": the position word only


def test_vocabulary_has_no_collisions(monkeypatch):
    from vlmid.metrics.grounding import SIZE_WORDS, parse_caption

    templates = _template_words(monkeypatch)
    colours, sizes, counts = set(scenes.COLOURS), set(SIZE_WORDS), {"one", "two", "three"}
    garment_words = set().union(*(_words(p) for _, p in _garment_phrases()))
    assert sizes <= templates and counts <= templates and {"top", "bottom", "left", "right"} <= templates
    assert not colours & templates, colours & templates
    assert not garment_words & templates, garment_words & templates  # e.g. "top": a position, never a garment
    assert not garment_words & colours and not colours & sizes and not garment_words & sizes
    # one phrase, one class; a phrase inside a longer one ("shirt" in "t-shirt", "boot" in "ankle boot")
    # must be resolved longest-first
    phrase_class = {}
    for lab, p in _garment_phrases():
        assert phrase_class.setdefault(p, lab) == lab, p
    for text, want in [("a red t-shirt", [(0, "red")]), ("a red t - shirt", [(0, "red")]),
                       ("a white ankle boot", [(9, "white")]), ("a white boot", [(9, "white")]),
                       ("two ankle boots, one red and one blue", [(9, "red"), (9, "blue")]),
                       ("two t-shirts, one red and one blue", [(0, "red"), (0, "blue")]),
                       ("a red tee at the top", [(0, "red")])]:
        assert parse_caption(text).mentions == want, text


def _check_parses(caption, items):
    from collections import Counter

    from vlmid.metrics.grounding import parse_caption

    want = Counter((it.label, it.colour) for it in items)
    for text in (caption, " ".join(WORD.findall(caption))):  # as written, and BERT-spaced ("t - shirt")
        got = parse_caption(text)
        assert Counter(got.mentions) == want and got.count == len(items), (text, got, items)


def test_every_template_parses_back_to_its_items():
    n = 0
    for items, caps in _every_candidate(seeds=range(2)):
        for c in caps:
            _check_parses(c, items)
            n += 1
    assert n > 10000


def test_2000_generated_scenes_parse_back_to_their_items():
    # the strongest collision test: any word read as the wrong thing shows up as a wrong item or count
    _, caps, items = scenes.generate_split("test", 2000, seed=0)
    for cs, its in zip(caps, items):
        for c in cs:
            _check_parses(c, its)


def test_scene_items_match_the_karpathy_ids_and_captions(tmp_path, monkeypatch):
    from vlmid.metrics.grounding import parse_caption

    folder = scenes.build_scenes(seed=0, smoke=True, sizes={"train": 6, "val": 2, "test": 4}, root=tmp_path)
    for split, first_id, n in (("train", 0, 6), ("val", 6, 2), ("test", 8, 4)):
        items = scenes.read_scene_items(folder, split)
        ex = load_coco_karpathy(folder, split, lazy=False)
        assert list(items) == [e.image_id for e in ex] == list(range(first_id, first_id + n))  # one running counter
        _, _, true = scenes.generate_split(split, n, seed=0)
        assert list(items.values()) == [[(it.label, it.colour) for it in s] for s in true]
        for e in ex:  # every reference caption names exactly these items
            for c in e.captions:
                assert sorted(parse_caption(c).mentions) == sorted(items[e.image_id])
    assert list(scenes.read_scene_items(folder, "test", n=2)) == [8, 9]
    assert all(isinstance(lab, int) and isinstance(col, str) and col for s in items.values() for lab, col in s)
    # scene_items() reads the folder load_scenes() reads
    monkeypatch.setenv("VLMID_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(scenes, "SMOKE_SIZES", {"train": 5, "val": 3, "test": 4})
    got = scenes.scene_items("test", n=3, smoke=True)
    assert list(got) == [e.image_id for e in scenes.load_scenes("test", n=3, smoke=True)] == [8, 9, 10]
    with pytest.raises(ValueError, match="split"):
        scenes.scene_items("testing")


def test_single_items_report_the_colour_they_paint_and_caption():
    """``single_items`` is the one sampler of CLIP's pairs and the probes' items: the colour it reports is
    the one on the canvas and in the caption, and ``white_p`` sets how often it is white."""
    photos = np.full((40, 28, 28), 255, dtype=np.uint8)
    labels = np.arange(40) % 10
    items = scenes.single_items(photos, labels, np.random.default_rng(0), white_p=0.0)
    assert items.images.shape == (40, scenes.CANVAS, scenes.CANVAS, 3) and len(items.colours) == len(items.captions) == 40
    assert len(set(items.colours)) > 3
    for image, colour, caption in zip(items.images, items.colours, items.captions):
        brightest = image.reshape(-1, 3).max(axis=0).astype(float)   # the tint, jittered a little
        nearest = min(scenes.COLOURS, key=lambda c: np.abs(brightest - scenes.COLOURS[c]).sum())
        assert nearest == colour
        assert colour in caption.split()
    assert scenes.single_items(photos, labels, np.random.default_rng(0), white_p=1.0).colours == ["white"] * 40
