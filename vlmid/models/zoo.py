"""The model zoo: the tiny BLIP and CLIP that this repository ships, ready to use.

Research repositories ship their trained checkpoints so that a reader can rerun the analysis
without first retraining everything. This one does the same for its tiny profile::

    checkpoints/tiny-seed<N>/
        blip/            BlipForConditionalGeneration + BlipProcessor   (save_pretrained, safetensors)
        clip/            CLIPModel + image processor + tokenizer          (save_pretrained, safetensors)
        manifest.json    how they were made, and a SHA-256 for every file above

The folder is committed to git. ``manifest.json`` records the code commit that trained the
models, the hyperparameters and data seed, the CPU seconds, the whole ``build.json`` of the
build (loss curves included, under ``"build"``), the quality metrics measured at build time,
the CPU capability and torch version of the machine that trained them, and the SHA-256 and
size of every file under ``blip/`` and ``clip/``.

Where models come from (:func:`model_source`; ``vlmid.models.tiny_folder`` returns the folder):

- shipped (the default): ``checkpoints/tiny-seed<N>/``, checked against its manifest once per
  process (:func:`verify`). Nothing is trained. A mismatch stops with :class:`CheckpointError`.
- built: ``$VLMID_MODEL_SOURCE=built``, or a seed with no shipped models: trained here into
  ``data/models/tiny-seed<N>/`` (:func:`models_root`; ``python -m vlmid.models.build --seed N``). A
  build from nothing is always announced first, with the time the shipped models' build took
  (:data:`REBUILD_MINUTES`, read from their manifest).
- smoke: the seconds-long test models, always built here and never shipped.

Models trained on another CPU (AVX2 vs AVX512) differ slightly from the shipped ones, and so
do the numbers computed from them; that is why shipping them matters.

A finished build becomes a zoo entry with ``publish(build_folder, seed, metrics)``. Check the
shipped files from a shell with ``python -m vlmid.models.zoo verify [--seed N]``.
Several builds of the same recipe (seeds 0, 1, 2, ...) ship side by side: :func:`shipped_seeds`
lists them all and :func:`build_records` gives the quality each measured when it was built (notebook
00's table of every build).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..paths import REPO_ROOT, data_dir

# The repository's shipped checkpoints; $VLMID_CHECKPOINTS moves them (the tests use that).
CHECKPOINTS = REPO_ROOT / "checkpoints"
MANIFEST = "manifest.json"
PARTS = ("blip", "clip")
SOURCES = ("shipped", "built")  # the values of $VLMID_MODEL_SOURCE
FORMAT = 1  # manifest layout version


def _shipped_build_minutes() -> int:
    """Wall minutes of the build of the shipped seed-0 models (their manifest's ``build_seconds``): how
    long training both tiny models from nothing takes on 2 cores, said wherever a build is announced."""
    try:
        manifest = json.loads((CHECKPOINTS / "tiny-seed0" / MANIFEST).read_text(encoding="utf-8"))
        return round(manifest["build_seconds"] / 60)
    except (OSError, ValueError, KeyError, TypeError):
        return 60  # no shipped build to go by: the repository's target for a build from nothing


REBUILD_MINUTES = _shipped_build_minutes()

FIX = ("restore the shipped files with `git checkout -- checkpoints/`, or train the models from "
       "nothing with `bash run_all.sh --rebuild-models --seed {seed}` (about {minutes} minutes on 2 cores)")


class CheckpointError(RuntimeError):
    """A shipped checkpoint folder does not match its manifest (``problems``: (file, expected, found))."""

    def __init__(self, message: str, problems: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


def checkpoints_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$VLMID_CHECKPOINTS`` or the repository's ``checkpoints/``."""
    return Path(root or os.environ.get("VLMID_CHECKPOINTS") or CHECKPOINTS)


def entry_name(seed: int) -> str:
    return f"tiny-seed{int(seed)}"


def shipped_folder(seed: int = 0, root: str | os.PathLike | None = None) -> Path | None:
    """The shipped folder of ``seed`` (``checkpoints/tiny-seed<N>/``), or None if it ships none.

    Only a folder with a ``manifest.json`` counts: the manifest is written last."""
    folder = checkpoints_root(root) / entry_name(seed)
    return folder if (folder / MANIFEST).is_file() else None


def shipped_seeds(root: str | os.PathLike | None = None) -> list[int]:
    """The seed of every shipped build: each ``tiny-seed<N>/`` under :func:`checkpoints_root` that holds a
    ``manifest.json``, sorted by N as a number (seed 10 after seed 2). None is left out for its quality."""
    folder = checkpoints_root(root)
    if not folder.is_dir():
        return []
    seeds = (re.fullmatch(r"tiny-seed(\d+)", p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in seeds if m and shipped_folder(int(m.group(1)), root) is not None)


def build_records(root: str | os.PathLike | None = None) -> list[dict]:
    """The quality of every shipped build as measured when it was built, one record per seed (sorted).

    Each record: ``seed``, ``cpu_capability`` and ``torch`` of the machine that trained it, ``bf16``,
    ``build_seconds``, ``commit``, then every key of the manifest's ``metrics`` (the gates on the full
    test data: ``blip_garment_f1``, ``clip_zeroshot_top1``, ``probe_blip_class`` ..., and the sizes
    ``n_test``, ``n_zeroshot``, ``n_probe``, ``n_probe_fit``). Read from the manifests alone (no file is
    hashed: the numbers are the manifest's); an unreadable manifest raises :class:`CheckpointError`
    rather than leaving its build out."""
    records = []
    for seed in shipped_seeds(root):
        path = shipped_folder(seed, root) / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            build = manifest.get("build") or {}
            host = manifest.get("host") or build.get("host") or {}
            records.append({"seed": seed, "cpu_capability": host.get("cpu_capability"), "torch": host.get("torch"),
                            "bf16": build.get("bf16"), "build_seconds": manifest.get("build_seconds"),
                            "commit": manifest.get("commit"), **(manifest.get("metrics") or {})})
        except (ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path}: unreadable ({exc}); every shipped build is reported, so it cannot be "
                                  f"skipped. Fix: " + FIX.format(seed=seed, minutes=REBUILD_MINUTES),
                                  [(MANIFEST, "a manifest", "unreadable")]) from exc
    return records


def manifest_sha256(seed: int = 0, root: str | os.PathLike | None = None) -> str | None:
    """SHA-256 of the shipped manifest of ``seed`` (it pins every file through theirs); None if none ships."""
    folder = shipped_folder(seed, root)
    return None if folder is None else _sha256(folder / MANIFEST)


def models_root(seed: int = 0, smoke: bool = False) -> Path:
    """Where the models built here for ``seed`` live: ``data/models/tiny-seed<N>/`` (smoke: ``smoke-seed<N>/``)."""
    return data_dir() / "models" / (f"smoke-seed{seed}" if smoke else f"tiny-seed{seed}")


def is_built(seed: int = 0, smoke: bool = False) -> bool:
    """Whether a complete build is in :func:`models_root` (its ``build.json`` is written last)."""
    return (models_root(seed, smoke) / "build.json").exists()


def requested_source() -> str:
    """``$VLMID_MODEL_SOURCE``: ``"shipped"`` (default, also when unset or empty) or ``"built"``."""
    value = os.environ.get("VLMID_MODEL_SOURCE", "").strip().lower() or "shipped"
    if value not in SOURCES:
        raise ValueError(f"VLMID_MODEL_SOURCE={value!r}: use 'shipped' (the committed checkpoints, "
                         f"default) or 'built' (models trained here, in data/models/)")
    return value


def model_source(seed: int = 0, smoke: bool = False) -> str:
    """Where ``vlmid.models.tiny_folder(seed, smoke)`` takes the tiny models from: ``"shipped"``,
    ``"built"`` or ``"smoke"``.

    smoke: the seconds-long test models, always built here. built: ``$VLMID_MODEL_SOURCE=built``,
    or no shipped models for the seed. shipped: ``checkpoints/tiny-seed<N>/`` (the default)."""
    if smoke:
        return "smoke"
    if requested_source() == "built":
        return "built"
    return "shipped" if shipped_folder(seed) is not None else "built"


def rebuild_notice(seed: int, reason: str | None = None, now: bool = True) -> str:
    """What is printed before the tiny models of ``seed`` are trained from nothing (``now=False``:
    said ahead, e.g. by run_all.sh, of the first notebook that will train them)."""
    reason = reason or f"there are no shipped models for seed {seed} (in {checkpoints_root() / entry_name(seed)})"
    what = ("training the tiny BLIP and CLIP from nothing now" if now else
            "the first notebook that loads them (00) trains the tiny BLIP and CLIP from nothing")
    return (f"{reason}: {what}, about {REBUILD_MINUTES} minutes on 2 cores (done once, cached in "
            f"{models_root(seed)}). To do it ahead of time: python -m vlmid.models.build --seed {seed}")


# -- hashing and verification --------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _model_files(folder: Path) -> list[str]:
    """Every file under ``folder`` except the manifest, as sorted POSIX paths relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(folder).as_posix()
            if rel != MANIFEST:
                out.append(rel)
    return sorted(out)


def _stat_signature(folder: Path, files: list[str]) -> tuple:
    sig = []
    for rel in [MANIFEST, *files]:
        st = (folder / rel).stat()
        sig.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sig)


_VERIFIED: dict[str, tuple[tuple, dict]] = {}  # resolved folder -> (stat signature, manifest)


def verify(folder: str | os.PathLike, use_cache: bool = True) -> dict:
    """Check every file of a zoo entry against its manifest; return the manifest.

    Raises :class:`CheckpointError` naming each missing, changed or unlisted file with the
    expected and found SHA-256, and how to fix it. Hashing is done once per folder per process:
    later calls only compare the files' sizes and modification times with the verified ones.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    seed_hint = folder.name.removeprefix("tiny-seed") if folder.name.startswith("tiny-seed") else "N"
    fix = FIX.format(seed=seed_hint, minutes=REBUILD_MINUTES)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{mpath}: missing, so the models in {folder} cannot be checked. Fix: {fix}",
                              [(MANIFEST, "a manifest", "missing")])
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{mpath}: unreadable ({exc}). Fix: {fix}",
                              [(MANIFEST, "a manifest", "unreadable")]) from exc
    present = _model_files(folder)
    if use_cache and key in _VERIFIED and set(present) == set(listed):
        with contextlib.suppress(OSError):
            if _stat_signature(folder, present) == _VERIFIED[key][0]:
                return _VERIFIED[key][1]
    problems = []
    for rel, want in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append((rel, want["sha256"], "missing"))
            continue
        found = _sha256(path)
        if found != want["sha256"]:
            problems.append((rel, want["sha256"], found))
    for rel in present:
        if rel not in listed:
            problems.append((rel, "not in the manifest", _sha256(folder / rel)))
    if problems:
        lines = []
        for rel, want, found in problems:
            if want == "not in the manifest":
                lines.append(f"  {rel}: not listed in the manifest (an extra file; sha256 {found})")
            else:
                lines.append(f"  {rel}: expected sha256 {want}, found {found}")
        if any(want == "not in the manifest" for _, want, _ in problems):
            fix = "delete the files not listed in the manifest (`git status checkpoints/` shows them); " + fix
        raise CheckpointError(f"the shipped models in {folder} do not match {MANIFEST}:\n" + "\n".join(lines)
                              + f"\nFix: {fix}", problems)
    _VERIFIED[key] = (_stat_signature(folder, present), manifest)
    return manifest


# -- publishing ----------------------------------------------------------------------------
def _host() -> dict[str, Any]:
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count()}


def _fsync_tree(folder: Path) -> None:
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())


def publish(build_folder: str | os.PathLike, seed: int, metrics: dict, dest_root: str | os.PathLike | None = None,
            *, allow_smoke: bool = False) -> Path:
    """Copy a finished build's ``blip/`` and ``clip/`` into ``<dest_root>/tiny-seed<seed>/``; return it.

    Everything but ``metrics`` (the quality measured at build time) comes from
    ``build_folder/build.json``. The entry is assembled in a temporary folder beside its place,
    the manifest written last, and renamed into place: an interrupted publish leaves no entry
    (an older one stays whole). Smoke builds are refused unless ``allow_smoke`` (tests only).
    """
    from ..harness.results import git_commit, write_json

    build_folder = Path(build_folder)
    info_path = build_folder / "build.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} is missing: {build_folder} is not a finished build "
                                f"(python -m vlmid.models.build --seed {seed} writes one)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("seed", seed) != seed:
        raise ValueError(f"{info_path} is the build of seed {info['seed']}, not seed {seed}")
    if info.get("smoke") and not allow_smoke:
        raise ValueError(f"{build_folder} is a smoke build: smoke models are for tests and never shipped")
    for part in PARTS:
        if not (build_folder / part).is_dir():
            raise FileNotFoundError(f"{build_folder / part} is missing: the build is incomplete")
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict of the quality measured at build time, not {type(metrics).__name__}")

    root = checkpoints_root(dest_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / entry_name(seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    old = None
    try:
        for part in PARTS:
            shutil.copytree(build_folder / part, tmp / part)
        files = {}
        for rel in _model_files(tmp):
            path = tmp / rel
            files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
        _fsync_tree(tmp)
        manifest = {
            "format": FORMAT,
            "name": final.name,
            "seed": seed,
            "data_seed": info.get("seed", seed),
            # the commit of the code that trained them: build.json's when it records one, else now
            "commit": info.get("commit") or git_commit(),
            "published_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hyperparameters": info.get("hyperparameters"),
            "cpu_seconds": {part: info.get(part, {}).get("cpu_seconds") for part in PARTS},
            "build_seconds": info.get("build_seconds"),
            "metrics": metrics,
            # the machine that trained them: build.json's when it records one, else this one (publish
            # normally runs at the end of the build, on the same machine)
            "host": info.get("host") or _host(),
            "host_recorded_by": "build" if info.get("host") else "publish",
            "build": info,  # the whole build.json: loss curves, parameter counts, seconds per step
            "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values()),
        }
        write_json(tmp / MANIFEST, manifest)  # last: a folder without it is no entry
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
                old = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _VERIFIED.pop(str(final.resolve()), None)
    return final


# -- which models are used -----------------------------------------------------------------
def tiny_build_info(seed: int = 0, smoke: bool = False) -> dict:
    """The build record (``build.json``) of the folder ``tiny_folder`` resolves to.

    Shipped models: the manifest's copy, with ``"source": "shipped"`` and the manifest's
    ``metrics``, ``commit`` and ``host`` added; built or smoke models: ``build.json`` of their
    folder, with ``"source"``. Never trains: the models must be there (load them first)."""
    source = model_source(seed, smoke)
    if source == "shipped":
        folder = shipped_folder(seed)
        manifest = verify(folder)
        return {**manifest["build"], "source": source, "folder": str(folder), "metrics": manifest.get("metrics"),
                "commit": manifest.get("commit"), "host": manifest.get("host")}
    folder = models_root(seed, smoke)
    if not is_built(seed, smoke):
        raise FileNotFoundError(f"no tiny models in {folder}")
    info = json.loads((folder / "build.json").read_text(encoding="utf-8"))
    return {**info, "source": source, "folder": str(folder)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.models.zoo",
                                 description="The shipped tiny models (checkpoints/tiny-seed<N>/).")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check the shipped files against their manifest (SHA-256)")
    v.add_argument("--seed", type=int, help="one seed (default: every shipped seed)")
    w = sub.add_parser("which", help="say which models the notebooks would use for a seed (never trains)")
    w.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    root = checkpoints_root()

    if a.command == "which":
        try:
            source = model_source(a.seed)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if source == "shipped":
            try:
                verify(shipped_folder(a.seed))
            except CheckpointError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"seed {a.seed}: shipped models in {shipped_folder(a.seed)} (verified)")
        elif is_built(a.seed):
            print(f"seed {a.seed}: models built here, in {models_root(a.seed)}"
                  + (" (VLMID_MODEL_SOURCE=built)" if requested_source() == "built" else
                     f" (no shipped models for seed {a.seed})"))
        elif requested_source() == "built":
            print(f"seed {a.seed}: " + rebuild_notice(a.seed, "VLMID_MODEL_SOURCE=built and no models built here yet",
                                                      now=False))
        else:
            print(f"seed {a.seed}: " + rebuild_notice(a.seed, now=False))
        return 0

    if a.seed is not None:
        folder = shipped_folder(a.seed)
        if folder is None:
            print(f"error: no shipped models for seed {a.seed} in {root / entry_name(a.seed)}", file=sys.stderr)
            return 1
        folders = [folder]
    else:
        folders = [shipped_folder(seed, root) for seed in shipped_seeds(root)]
        if not folders:
            print(f"no shipped models in {root}: nothing to verify")
            return 0
    status = 0
    for folder in folders:
        try:
            manifest = verify(folder, use_cache=False)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"OK {folder}: {len(manifest['files'])} files match {MANIFEST} "
              f"(trained at {manifest.get('commit', 'unknown')}, {manifest.get('host', {}).get('cpu_capability', '?')})")
    return status


if __name__ == "__main__":
    sys.exit(main())
