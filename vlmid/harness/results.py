"""Result files written atomically, each folder with the provenance that produced it.

Every notebook owns one folder ``results/<notebook stem>/``. It writes CSV, JSON and PNG
files through a :class:`ResultWriter`; each write goes to a temporary file in the same
folder and is renamed into place, so an interrupted run never leaves a half-written file.
Beside them, ``provenance.json`` records the git commit, profile, seed, package versions
and wall time, the SHA-256 of ``constraints.txt`` (the pinned environment) and whether the
installed packages match it, and the SHA-256 of every file written.

    out = ResultWriter("01_intrinsic_dimension", profile="tiny", seed=0)
    out.csv(df, "id_profiles.csv")
    out.figure(fig, "id_profiles.png")
    out.metrics(id_vision_max=123.4)
    out.finish()   # the run is complete: what an earlier run left and this one did not write goes

A folder holds one run, and is replaced only when the run completes: the writer fills a hidden
staging folder beside it (``.<notebook stem>.partial/``), and ``finish()`` swaps it in for the
earlier folder. A run that is interrupted or fails therefore leaves every results folder either
complete and new or exactly as it was; the next writer clears what the interrupted one left.
``metrics.json`` carries only the keys this run wrote, and ``provenance.json`` says ``complete``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..paths import REPO_ROOT, check_profile, results_dir, run_results_dir

CONSTRAINTS = REPO_ROOT / "constraints.txt"  # the pinned environment run_all.sh installs
KEY_PACKAGES = ("torch", "transformers", "numpy", "scikit-dimension", "bitsandbytes",
                "pycocoevalcap", "papermill", "pandas")


def atomic_write(path: str | os.PathLike, write: Callable[[io.IOBase], None], binary: bool = False) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    If ``write`` raises, the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _jsonable(x: Any) -> Any:
    """numpy / torch scalars and arrays to plain python; NaN and inf to None (JSON has neither)."""
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        x = x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda f: f.write(text))


def host_info() -> dict:
    """The machine: platform, cores, torch's threads, CPU capability and GPU."""
    import torch

    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            # the vector instructions torch's CPU kernels use (AVX2, AVX512, ...): training on two
            # machines with different ones gives slightly different floats, hence different models
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def git_commit() -> str:
    """The commit of the repository, with ``-dirty`` when tracked files other than results/ differ
    from it (results/ is what the run itself rewrites)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# what no notebook reads: a commit that changes only these leaves every result as it was
NOT_CODE = ("results", "docs", "tests", ".ci", "*.md")


def same_code(a: str | None, b: str | None, cwd: Path | None = None) -> bool:
    """Whether commits ``a`` and ``b`` hold the same code: the same commit, or two that differ only in
    :data:`NOT_CODE` (the results, the documentation and the tests). A dirty or unknown commit is
    the same code as nothing but itself."""
    if not a or not b:
        return False
    if a == b:
        return True
    if a.endswith("-dirty") or b.endswith("-dirty") or "unknown" in (a, b):
        return False
    try:
        return subprocess.run(["git", "diff", "--quiet", a, b, "--", ".", *(f":!{p}" for p in NOT_CODE)],
                              cwd=cwd or REPO_ROOT, capture_output=True).returncode == 0
    except OSError:
        return False


def package_versions(names=KEY_PACKAGES) -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of -_. as one -."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def parse_constraints(text: str) -> dict[str, str]:
    """``name==version`` lines of a constraints file -> {normalized name: version}.

    Comments, blank lines, options (``-c``, ``--index-url``) and anything that is not an exact
    pin are skipped; an environment marker after ``;`` is dropped."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-") or "==" not in line:
            continue
        name, _, version = line.partition("==")
        name = name.split("[", 1)[0].strip()
        if name and version.strip():
            pins[_normalize(name)] = version.strip()
    return pins


def _same_version(pinned: str, installed: str) -> bool:
    """``pinned`` as pip's ``==`` reads it: a pin without a local label (``2.13.0``) matches any
    local build of that version (``2.13.0+cpu``)."""
    try:
        from packaging.version import Version

        p, i = Version(pinned), Version(installed)
        return p == (i if p.local else Version(i.public))
    except Exception:  # no packaging, or a version it cannot parse: compare the text
        return pinned == installed or ("+" not in pinned and installed.split("+", 1)[0] == pinned)


def constraint_mismatches(pins: dict[str, str], installed: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The pinned packages whose installed version differs (or that are not installed); [] if all match.

    ``installed``: {name: version} (default: this environment, from ``importlib.metadata``)."""
    if installed is None:
        from importlib import metadata

        installed = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                installed.setdefault(_normalize(name), dist.version)
    else:
        installed = {_normalize(k): v for k, v in installed.items()}
    out = []
    for name, version in sorted(pins.items()):
        have = installed.get(name)
        if have is None or not _same_version(version, have):
            out.append({"package": name, "pinned": version, "installed": have or "not installed"})
    return out


_CONSTRAINTS_CACHE: dict[tuple, dict[str, Any]] = {}


def constraints_status(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The pinned environment: ``constraints.txt``'s SHA-256 and whether the installed versions
    match it (``mismatches``: [] when they all do). Computed once per process and file version."""
    path = Path(path) if path is not None else CONSTRAINTS
    try:
        st = path.stat()
    except OSError:
        return {"file": str(path.name), "sha256": None, "matches": None, "mismatches": None,
                "note": "no constraints file"}
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _CONSTRAINTS_CACHE:
        data = path.read_bytes()
        mismatches = constraint_mismatches(parse_constraints(data.decode("utf-8", "replace")))
        _CONSTRAINTS_CACHE[key] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                                   "matches": not mismatches, "mismatches": mismatches}
    return json.loads(json.dumps(_CONSTRAINTS_CACHE[key]))  # a copy the caller may change


def provenance(profile: str, seed: int, **extra: Any) -> dict[str, Any]:
    import torch

    return {
        "commit": git_commit(),
        "profile": profile,
        "seed": seed,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": host_info(),
        "versions": package_versions(),
        "constraints": constraints_status(),
        "command": " ".join(sys.argv[:1]),
        **extra,
    }


class ResultWriter:
    """Writes one notebook's results into ``<root>/<name>/`` atomically, with provenance.

    Until :meth:`finish` every file goes to the staging folder ``dir`` (``<root>/.<name>.partial/``);
    ``finish`` swaps it in for ``final`` (``<root>/<name>/``) and points ``dir`` there."""

    def __init__(self, name: str, profile: str, seed: int, root: str | os.PathLike | None = None,
                 smoke: bool = False, **extra: Any):
        check_profile(profile)
        self.name = name
        # smoke and paper runs never overwrite the committed tiny results: results/smoke/, results/paper/
        base = results_dir(root) if root is not None else run_results_dir(profile, smoke)
        self.final = base / name
        recover(base, name)
        self.dir = staging_dir(base, name)
        self.dir.mkdir(parents=True)
        self._t0 = time.perf_counter()
        self._prov = provenance(profile, seed, notebook=name, smoke=smoke, **extra)
        self._files: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, Any] = {}   # this run's headline numbers, never an earlier run's

    def path(self, filename: str) -> Path:
        return self.dir / filename

    # -- writers ---------------------------------------------------------------------
    def csv(self, df, filename: str, **kwargs) -> Path:
        kwargs.setdefault("index", False)
        text = df.to_csv(**kwargs)
        return self._done(atomic_write(self.path(filename), lambda f: f.write(text)))

    def json(self, obj: Any, filename: str) -> Path:
        return self._done(write_json(self.path(filename), obj))

    def text(self, text: str, filename: str) -> Path:
        return self._done(atomic_write(self.path(filename), lambda f: f.write(text)))

    def figure(self, fig, filename: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure (or seaborn grid) as PNG. Metadata carry no date, so reruns are byte-stable."""
        fig = getattr(fig, "figure", fig) if not hasattr(fig, "savefig") else fig
        return self._done(atomic_write(
            self.path(filename),
            lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None}),
            binary=True))

    def metrics(self, values: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
        """Add headline numbers to the flat ``metrics.json`` (name -> number or string).

        Calls within one run add up; keys of an earlier run's file are never carried over."""
        new = {**(values or {}), **more}
        checked = {}
        for k, v in new.items():
            v = _jsonable(v)
            if not (v is None or isinstance(v, (int, float, str, bool))):
                raise TypeError(f"metrics.json is flat: {k!r} must be a number or a string, not {type(v).__name__}")
            checked[k] = v
        self._metrics.update(checked)
        self._metrics.update(profile=self._prov["profile"], seed=self._prov["seed"], commit=self._prov["commit"])
        self._done(write_json(self.path("metrics.json"), self._metrics))
        return dict(self._metrics)

    def finish(self) -> dict[str, int]:
        """The run is complete: mark it so in ``provenance.json``, swap the staging folder in for the
        earlier results, and return {file name: bytes} of the folder's results."""
        if self.dir == self.final:
            raise RuntimeError(f"{self.final} is already finished: a ResultWriter completes once")
        self._prov["complete"] = True
        self._done(None)
        swap_in(self.dir, self.final)
        self.dir = self.final
        return {name: (self.dir / name).stat().st_size for name in sorted(self._files)}

    # -- provenance ------------------------------------------------------------------
    def _done(self, path: Path | None) -> Path | None:
        if path is not None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self._files[path.name] = {"sha256": digest, "commit": self._prov["commit"],
                                      "profile": self._prov["profile"], "seed": self._prov["seed"]}
        record = {**self._prov, "wall_seconds": round(time.perf_counter() - self._t0, 2),
                  "files": dict(sorted(self._files.items()))}
        write_json(self.dir / "provenance.json", record)
        return path


# -- one folder replaced whole ---------------------------------------------------------------
def staging_dir(root: Path, name: str) -> Path:
    """Where a run of ``name`` writes until it completes (hidden: no reader globs it)."""
    return root / f".{name}.partial"


def _retired_dir(root: Path, name: str) -> Path:
    return root / f".{name}.old"


def recover(root: Path, name: str) -> None:
    """Undo what an interrupted run of ``name`` left: its staging folder goes, and an earlier
    folder caught halfway through :func:`swap_in` is put back."""
    root = Path(root)
    shutil.rmtree(staging_dir(root, name), ignore_errors=True)
    old = _retired_dir(root, name)
    if old.exists():
        if (root / name).exists():
            shutil.rmtree(old)
        else:
            os.rename(old, root / name)


def swap_in(staged: Path, final: Path) -> None:
    """Replace folder ``final`` by ``staged`` (two renames; :func:`recover` repairs a stop between them)."""
    old = _retired_dir(final.parent, final.name)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def is_complete(folder: Path) -> dict[str, Any] | None:
    """The provenance of a completed run in ``folder``, else None."""
    try:
        prov = json.loads((Path(folder) / "provenance.json").read_text())
    except (OSError, ValueError):
        return None
    return prov if prov.get("complete") else None
