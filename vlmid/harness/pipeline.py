"""Run the numbered notebooks headless with papermill and record ``results/manifest.json``.

``run_all.sh`` sets up the environment and then calls ``python -m vlmid.harness.pipeline``; you can
call it directly from an activated environment too::

    python -m vlmid.harness.pipeline --profile tiny --seed 0 --only 01
    python -m vlmid.harness.pipeline --builds 0,1,2,3,4   # each build in turn, then notebook 07 pools them
    python -m vlmid.harness.pipeline --resume     # continue an interrupted run where it stopped

A notebook's results folder is replaced only when the notebook completes (:class:`vlmid.harness.results.ResultWriter`
stages it), and its executed copy likewise: a run killed or failing halfway leaves every folder and
executed notebook either complete and new or exactly as before. ``--resume`` skips the notebooks
that already completed for the same code (the same commit, or one that changed only results, docs or
tests), profile, seed, smoke mode and parameters, and runs the
rest from the first one that did not (later notebooks read what earlier ones wrote, so everything
after it runs again). A failed notebook's executed copy, with its traceback, is kept beside the
others as ``<stem>.failed.ipynb``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from ..paths import ACROSS_BUILDS, FIRST_BUILD_ONLY, PROFILES, REPO_ROOT, build_results_dir, parse_builds, run_results_dir
from .results import git_commit, is_complete, package_versions, same_code, write_json

NOTEBOOKS = REPO_ROOT / "notebooks"
# seconds a cell's output may take to arrive once the cell is done (nbclient's default, 4 s, failed a smoke
# run on two cores shared with a model build: the kernel was alive, only slow to answer)
IOPUB_TIMEOUT = 60
WIDGET = "application/vnd.jupyter.widget-view+json"   # what tqdm.auto draws a progress bar as, under ipywidgets


def notebooks(only: str | None = None) -> list[Path]:
    """The numbered notebooks, in order; ``only='01'`` selects one by its number."""
    found = sorted(p for p in Path(os.environ.get("VLMID_NOTEBOOKS") or NOTEBOOKS).glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return found
    if not re.fullmatch(r"\d{1,2}", only):
        raise SystemExit(f"--only takes a notebook number such as 01, not {only!r}")
    picked = [p for p in found if p.name.startswith(f"{int(only):02d}_")]
    if not picked:
        numbers = ", ".join(p.name[:2] for p in found)
        raise SystemExit(f"no notebook numbered {only!r} in notebooks/ (there are: {numbers})")
    return picked


def drop_widgets(path: Path) -> int:
    """Remove the widget outputs (the progress bars tqdm.auto draws when ipywidgets is installed) from
    an executed notebook, and the widget state; return how many. A headless run saves no widget's
    state, so JupyterLab would show each as "model not found" and the book would load the widget
    scripts from the network; the progress of a finished run says nothing anyway."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    dropped = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            kept = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
            dropped += len(cell.outputs) - len(kept)
            cell.outputs = kept
    if dropped or "widgets" in nb.metadata:
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)   # as papermill wrote it
    return dropped


def _failed_cell(exc: Exception) -> str:
    """'cell 7 (ValueError: ...)' from papermill's error, as specific as it allows."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", exc)).strip().splitlines()
    index = getattr(exc, "exec_count", None)
    where = f"cell [{index}]" if index is not None else "a cell"
    return f"{where}: {ename}: " + "\n".join(evalue[:16])   # the message, whole (a list of what is missing)


def completed(entry: dict | None, root: Path, nb: Path, commit: str, params: dict,
              out_root: Path | None = None) -> bool:
    """Whether ``nb`` already completed in ``root`` (a build's results folder) for this code and these
    parameters: its manifest entry says so and its results folder holds a complete run, both of a
    commit with the same code as ``commit`` (one that differs only in results, documentation or tests:
    :func:`~vlmid.harness.results.same_code`, so that committing part of a long run keeps it resumable).
    ``results_dir`` is left out of the comparison (the entry's place in the manifest fixes the folder;
    the absolute path differs between clones). The entry's executed copy is relative to ``out_root``
    (default ``root``)."""
    out_root = root if out_root is None else out_root
    if not entry or entry.get("exit_status") != "ok" or not same_code(entry.get("commit"), commit) \
            or _portable(entry.get("parameters")) != _portable(params) \
            or not (out_root / entry.get("executed", "-")).exists():
        return False
    prov = is_complete(root / nb.stem)
    return prov is not None and same_code(prov.get("commit"), commit)


def _portable(params: dict | None) -> dict | None:
    return None if params is None else {k: v for k, v in params.items() if k != "results_dir"}




def schedule(todo: list[Path], builds: list[int]) -> list[tuple[Path, int | None]]:
    """(notebook, build) in run order: the first build's notebooks, then each further build's, then
    the notebooks that pool the builds (build None)."""
    per_build = [nb for nb in todo if nb.name[:2] not in ACROSS_BUILDS]
    steps = [(nb, b) for i, b in enumerate(builds) for nb in per_build
             if i == 0 or nb.name[:2] not in FIRST_BUILD_ONLY]
    return steps + [(nb, None) for nb in todo if nb.name[:2] in ACROSS_BUILDS]


def step_folder(out_root: Path, builds: list[int], build: int | None) -> Path:
    """Where a step of :func:`schedule` writes: its build's results folder, or ``out_root`` itself for the
    notebooks that pool the builds (build None)."""
    return out_root if build is None else build_results_dir(out_root, builds, build)


def entry_name(out_root: Path, builds: list[int], nb: Path, build: int | None) -> str:
    """The step's key in ``manifest.json``: its results folder relative to ``out_root``."""
    return str((step_folder(out_root, builds, build) / nb.stem).relative_to(out_root))


def run(profile: str, builds: int | list[int], only: str | None = None, results: str | None = None,
        smoke: bool = False, extra_parameters: dict | None = None, resume: bool = False, quick: bool = False) -> int:
    """Run the notebooks on each model build of ``builds`` (seeds; the first writes into the results
    folder itself, the others into ``builds/seed<N>/`` below it), then notebook 07 over all of them.
    ``quick``: every notebook gets ``quick=True`` (each Params' QUICK leaves out the first build's extras)."""
    import papermill as pm

    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    builds = parse_builds(builds)   # one seed, or several
    todo = notebooks(only)
    out_root = run_results_dir(profile, smoke, results)  # results/, results/smoke/ or results/paper/
    manifest_path = out_root / "manifest.json"
    manifest = {}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
    manifest.setdefault("notebooks", {})
    stems = {p.stem for p in notebooks()}   # an entry of a notebook renamed or removed since describes nothing here
    manifest["notebooks"] = {k: v for k, v in manifest["notebooks"].items() if Path(k).name in stems}
    manifest.update(commit=git_commit(), versions=package_versions(), builds=builds)

    steps = schedule(todo, builds)
    status, skipping = 0, resume
    for i, (nb, build) in enumerate(steps, 1):
        root = step_folder(out_root, builds, build)
        params = dict(profile=profile, seed=builds[0] if build is None else build, smoke=smoke,
                      **(extra_parameters or {}))
        if quick:
            params["quick"] = True
        if build is None:
            params["builds"] = ",".join(str(b) for b in builds)
        elif build != builds[0]:
            params["replicate"] = True   # a further build: what the verdicts read (each Params' REPLICATE)
        if results is not None or root != out_root:
            params["results_dir"] = str(root)
        entry = entry_name(out_root, builds, nb, build)
        where = "all builds" if build is None else f"build {build}"
        executed = root / "executed"
        if skipping and completed(manifest["notebooks"].get(entry), root, nb, manifest["commit"], params,
                                  out_root):
            print(f"=== [{i}/{len(steps)}] {nb.name} on {where}: complete for this commit and these parameters, "
                  f"skipped (--resume)", flush=True)
            continue
        skipping = False   # from the first notebook that is not complete on, everything runs
        executed.mkdir(parents=True, exist_ok=True)
        print(f"\n=== [{i}/{len(steps)}] {nb.name} on {where}  (profile={profile}{', smoke' if smoke else ''})",
              flush=True)
        partial, failed = executed / f".{nb.stem}.partial.ipynb", executed / f"{nb.stem}.failed.ipynb"
        t0 = time.perf_counter()
        error = None
        try:
            pm.execute_notebook(str(nb), str(partial), parameters=params,
                                cwd=str(nb.parent), kernel_name="python3", progress_bar=True,
                                log_output=False, iopub_timeout=IOPUB_TIMEOUT)
            drop_widgets(partial)
            os.replace(partial, executed / nb.name)   # the executed copy, too, replaced only when complete
            failed.unlink(missing_ok=True)
        except Exception as exc:  # papermill re-raises the cell's error; report and stop
            error = f"{nb.name} on {where} failed at {_failed_cell(exc)}"
            if partial.exists():
                os.replace(partial, failed)
        wall = round(time.perf_counter() - t0, 1)
        manifest["notebooks"][entry] = {
            "wall_seconds": wall, "exit_status": "failed" if error else "ok", "error": error,
            "profile": profile, "seed": params["seed"], "build": build, "smoke": smoke, "commit": manifest["commit"],
            "parameters": params, "python": manifest["versions"]["python"], "versions": manifest["versions"],
            "executed": str((failed if error else executed / nb.name).relative_to(out_root)),
        }
        manifest["total_wall_seconds"] = round(sum(v["wall_seconds"] for v in manifest["notebooks"].values()), 1)
        write_json(manifest_path, manifest)
        if error:
            print(f"\nFAILED: {error}\n  the executed notebook with the traceback: {failed}",
                  file=sys.stderr, flush=True)
            status = 1
            break
        print(f"    done in {wall:.0f} s", flush=True)
    return status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.pipeline", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="tiny", choices=PROFILES)
    ap.add_argument("--seed", type=int, default=None, help="one model build (the same as --builds N)")
    ap.add_argument("--builds", default=None,
                    help="model builds by seed, comma-separated (default: --seed, else 0); the first writes into "
                         "the results folder, the others into builds/seed<N>/, and notebook 07 pools them")
    ap.add_argument("--only", default=None, help="run one notebook by its number, e.g. 01")
    ap.add_argument("--results", default=None,
                    help="results folder (default: results/; smoke runs results/smoke/, the paper profile results/paper/)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for a quick end-to-end check")
    ap.add_argument("--quick", action="store_true",
                    help="a quick run: each notebook leaves out what a full run adds beyond today's sizes (its QUICK)")
    ap.add_argument("--resume", action="store_true",
                    help="skip the notebooks already complete for this commit and these parameters; run the rest")
    ap.add_argument("--device", default=None,
                    help='every notebook\'s device parameter ("auto", "cpu", "cuda", "cuda:N"; default: the notebooks\' own, "auto")')
    args = ap.parse_args(argv)
    extra = {"device": args.device} if args.device else None
    if args.builds is not None and args.seed is not None:
        raise SystemExit("give --builds or --seed, not both (--seed N is --builds N)")
    try:
        builds = parse_builds(args.builds if args.builds is not None else (args.seed or 0))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return run(args.profile, builds, args.only, args.results, args.smoke, extra_parameters=extra,
               resume=args.resume, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
