"""Run the numbered notebooks headless with papermill and record ``results/manifest.json``.

``run_all.sh`` sets up the environment and then calls ``python -m vlmid.harness.pipeline``; you can
call it directly from an activated environment too::

    python -m vlmid.harness.pipeline --profile tiny --seed 0 --only 01
    python -m vlmid.harness.pipeline --resume     # continue an interrupted run where it stopped

A notebook's results folder is replaced only when the notebook completes (:class:`vlmid.harness.results.ResultWriter`
stages it), and its executed copy likewise: a run killed or failing halfway leaves every folder and
executed notebook either complete and new or exactly as before. ``--resume`` skips the notebooks
that already completed for the same commit, profile, seed, smoke mode and parameters, and runs the
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

from ..paths import PROFILES, REPO_ROOT, run_results_dir
from .results import git_commit, is_complete, package_versions, write_json

NOTEBOOKS = REPO_ROOT / "notebooks"


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


def _failed_cell(exc: Exception) -> str:
    """'cell 7 (ValueError: ...)' from papermill's error, as specific as it allows."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", exc)).strip().splitlines()
    index = getattr(exc, "exec_count", None)
    where = f"cell [{index}]" if index is not None else "a cell"
    return f"{where}: {ename}: " + "\n".join(evalue[:16])   # the message, whole (a list of what is missing)


def completed(entry: dict | None, out_root: Path, nb: Path, commit: str, params: dict) -> bool:
    """Whether ``nb`` already completed in ``out_root`` for this commit and these parameters
    (its manifest entry says so and its results folder holds a complete run of the same commit)."""
    if not entry or entry.get("exit_status") != "ok" or entry.get("commit") != commit \
            or entry.get("parameters") != params or not (out_root / entry.get("executed", "-")).exists():
        return False
    prov = is_complete(out_root / nb.stem)
    return prov is not None and prov.get("commit") == commit


def run(profile: str, seed: int, only: str | None = None, results: str | None = None,
        smoke: bool = False, extra_parameters: dict | None = None, resume: bool = False) -> int:
    import papermill as pm

    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    todo = notebooks(only)
    out_root = run_results_dir(profile, smoke, results)  # results/, results/smoke/ or results/paper/
    executed = out_root / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    manifest_path = out_root / "manifest.json"
    manifest = {}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
    manifest.setdefault("notebooks", {})
    manifest.update(commit=git_commit(), versions=package_versions())

    params = dict(profile=profile, seed=seed, smoke=smoke, **(extra_parameters or {}))
    if results is not None:
        params["results_dir"] = str(out_root)
    status, skipping = 0, resume
    for i, nb in enumerate(todo, 1):
        if skipping and completed(manifest["notebooks"].get(nb.stem), out_root, nb, manifest["commit"], params):
            print(f"=== [{i}/{len(todo)}] {nb.name}: complete for this commit and these parameters, skipped (--resume)",
                  flush=True)
            continue
        skipping = False   # from the first notebook that is not complete on, everything runs
        print(f"\n=== [{i}/{len(todo)}] {nb.name}  (profile={profile}, seed={seed}{', smoke' if smoke else ''})",
              flush=True)
        partial, failed = executed / f".{nb.stem}.partial.ipynb", executed / f"{nb.stem}.failed.ipynb"
        t0 = time.perf_counter()
        error = None
        try:
            pm.execute_notebook(str(nb), str(partial), parameters=params,
                                cwd=str(nb.parent), kernel_name="python3", progress_bar=True,
                                log_output=False)
            os.replace(partial, executed / nb.name)   # the executed copy, too, replaced only when complete
            failed.unlink(missing_ok=True)
        except Exception as exc:  # papermill re-raises the cell's error; report and stop
            error = f"{nb.name} failed at {_failed_cell(exc)}"
            if partial.exists():
                os.replace(partial, failed)
        wall = round(time.perf_counter() - t0, 1)
        manifest["notebooks"][nb.stem] = {
            "wall_seconds": wall, "exit_status": "failed" if error else "ok", "error": error,
            "profile": profile, "seed": seed, "smoke": smoke, "commit": manifest["commit"], "parameters": params,
            "python": manifest["versions"]["python"], "versions": manifest["versions"],
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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="run one notebook by its number, e.g. 01")
    ap.add_argument("--results", default=None,
                    help="results folder (default: results/; smoke runs results/smoke/, the paper profile results/paper/)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for a quick end-to-end check")
    ap.add_argument("--resume", action="store_true",
                    help="skip the notebooks already complete for this commit and these parameters; run the rest")
    ap.add_argument("--device", default=None,
                    help='every notebook\'s device parameter ("auto", "cpu", "cuda", "cuda:N"; default: the notebooks\' own, "auto")')
    args = ap.parse_args(argv)
    extra = {"device": args.device} if args.device else None
    return run(args.profile, args.seed, args.only, args.results, args.smoke, extra_parameters=extra,
               resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
