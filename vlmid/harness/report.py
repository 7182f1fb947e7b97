"""results/REPORT.md and the README's results table, generated from results/ (never by hand).

For every notebook the report states the claims of the study it tests (and this
repository's own targets), our measured value read from ``results/<notebook>/metrics.json``,
the literature's value where one exists (`docs/methods.md`), and the verdict of
:mod:`vlmid.claims`, where each claim and its rule are defined once (the notebooks' "What we
found" show the same verdicts). A notebook without results says "not run yet"; nothing is
ever filled in by hand.

    python -m vlmid.harness.report                  # writes results/REPORT.md and the README section
    write_report(results_dir=None, readme=None)

The README's section between ``<!-- results:start -->`` and ``<!-- results:end -->`` is
replaced by :func:`readme_section`, which uses the same :func:`headline_table` as the report.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..claims import CLAIMS, ORDER, rule_text, table_cell, verdict
from ..paths import REPO_ROOT, results_dir as default_results_dir

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"

@dataclass(frozen=True)
class Notebook:
    number: str
    stem: str
    title: str
    key_figures: tuple[str, ...] = ()  # shown first, in this order; the other PNGs follow
    key_tables: tuple[str, ...] = ()   # CSVs whose first rows the report shows


NOTEBOOKS = (
    Notebook("00", "00_build_models_and_data", "Models and data built offline",
             ("sample_scenes.png", "zeroshot_per_class.png", "linear_probes.png"), ("caption_quality.csv",)),
    Notebook("01", "01_intrinsic_dimension", "Intrinsic dimension per layer",
             ("id_profiles.png", "benchmark.png", "linear_ids_blip.png"), ("benchmark.csv",)),
    Notebook("02", "02_pruning_blip", "Pruning BLIP: magnitude, gradient, PLATON, with and without the ID prior",
             ("cider_vs_sparsity.png", "group_sparsity_at_40.png", "modality_sensitivity.png"), ("summary_at_40.csv",)),
    Notebook("03", "03_clip_token_pruning", "CLIP vision-token pruning",
             ("failure_analysis.png", "pareto.png", "scaling.png"), ("report_table.csv",)),
    Notebook("04", "04_flickr8k_token_pruned", "Flickr8k-style baseline vs token-pruned model",
             ("quality_vs_flops.png", "training_curves.png"), ("lossyness.csv",)),
    Notebook("05", "05_quantization_lowrank", "Quantization, layer dropping and low rank",
             ("svd_plain_vs_aware.png",), ("compression_table.csv",)),
    Notebook("06", "06_id_and_prunability", "Does ID predict prunability? The prior against its controls",
             ("id_vs_prunability.png", "comparisons.png", "controls_vs_sparsity.png"), ("id_vs_prunability.csv",)),
    Notebook("07", "07_verdicts_across_builds", "Verdicts across model builds",
             ("effects_across_builds.png",), ("verdicts_across_builds.csv",)),
)
ACROSS = "07"   # the notebook that pools the builds: its pooled headlines decide every other notebook's claims


# -- reading results/ ----------------------------------------------------------------------------
def notebook_dir(root: Path, nb: Notebook) -> Path | None:
    """results/<stem>/, or the one folder named <number>_* if the stem changed."""
    if (root / nb.stem / "metrics.json").exists():
        return root / nb.stem
    found = sorted(p for p in root.glob(f"{nb.number}_*") if (p / "metrics.json").exists())
    return found[0] if len(found) == 1 else None


def load_metrics(root: Path, nb: Notebook) -> dict | None:
    """The notebook's metrics.json, or None when it has not run (or only a smoke run wrote it)."""
    folder = notebook_dir(root, nb)
    if folder is None:
        return None
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    try:
        if json.loads((folder / "provenance.json").read_text()).get("smoke"):
            return None  # smoke sizes are a test of the code, never a result
    except (OSError, ValueError):
        pass
    return metrics


def decided_metrics(root: Path) -> dict[str, dict | None]:
    """Notebook number -> the headline its claims are decided on: pooled across the model builds where
    notebook 07 pooled them (its ``pooled_metrics.json``), else the notebook's own ``metrics.json``."""
    from ..experiments.across_builds import POOLED

    metrics = {nb.number: load_metrics(root, nb) for nb in NOTEBOOKS}
    across = next(nb for nb in NOTEBOOKS if nb.number == ACROSS)
    folder = notebook_dir(root, across)
    if metrics[ACROSS] is not None and folder is not None and (folder / POOLED).exists():
        pooled = json.loads((folder / POOLED).read_text())
        metrics.update({n: m for n, m in pooled.items() if metrics.get(n) is not None})
    return metrics


def builds_agreeing(root: Path) -> dict[tuple[str, str], str]:
    """(notebook, claim statement) -> "k/K": builds that agree with the pooled verdict (notebook 07's table)."""
    import pandas as pd

    across = next(nb for nb in NOTEBOOKS if nb.number == ACROSS)
    folder = notebook_dir(root, across)
    if folder is None or load_metrics(root, across) is None or not (folder / "verdicts_across_builds.csv").exists():
        return {}
    table = pd.read_csv(folder / "verdicts_across_builds.csv", dtype={"notebook": str})
    return {(r.notebook, r.claim): r.builds_agreeing for r in table.itertuples()}


def headline_table(results_dir: str | Path | None = None) -> str:
    """The markdown table of every claim: notebook, claim, measured, anchor, verdict, builds agreeing."""
    root = Path(default_results_dir(results_dir))
    metrics, agreeing = decided_metrics(root), builds_agreeing(root)
    lines = ["| NB | Claim (source) | Measured here | Literature anchor | Verdict | Builds agreeing |",
             "|---|---|---|---|---|---|"]
    for row in CLAIMS:
        measured, word = verdict(row, metrics[row.notebook])
        claim = f"{'Target: ' if row.kind == 'target' else ''}{row.statement} ({row.source})"
        lines.append("| " + " | ".join(table_cell(x) for x in (
            row.notebook, claim, measured or "-", row.anchor or "-", f"**{word}**",
            agreeing.get((row.notebook, row.statement), "-"))) + " |")
    return "\n".join(lines) + "\n"


def _verdict_counts(results_dir) -> str:
    root = Path(default_results_dir(results_dir))
    metrics = decided_metrics(root)
    counts: dict[str, int] = {}
    for row in CLAIMS:
        word = verdict(row, metrics[row.notebook])[1]
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{counts[w]} {w}" for w in ORDER if w in counts)


def _csv_preview(path: Path, max_rows: int = 8, max_cols: int = 8) -> str:
    """A short markdown table of the first rows of a CSV (numbers rounded for reading)."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # an unreadable CSV is reported, not fatal
        return f"(could not read {path.name}: {type(exc).__name__})\n"
    shown = df.iloc[:max_rows, :max_cols]
    head = "| " + " | ".join(table_cell(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)

    def fmt(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return table_cell(v)

    body = ["| " + " | ".join(fmt(v) for v in r) + " |" for r in shown.itertuples(index=False)]
    more = []
    if len(df) > max_rows or df.shape[1] > max_cols:
        more = [f"\n({len(df)} rows x {df.shape[1]} columns in all)"]
    return "\n".join([head, rule, *body, *more]) + "\n"


def render_report(results_dir: str | Path | None = None) -> str:
    """The whole of results/REPORT.md (deterministic: the same results give the same text)."""
    root = Path(default_results_dir(results_dir))
    manifest = {}
    try:
        manifest = json.loads((root / "manifest.json").read_text()).get("notebooks", {})
    except (OSError, ValueError):
        pass
    out = ["# vlmid: results report", "",
           "Generated by `python -m vlmid.harness.report` from `results/*/metrics.json` and the CSV and PNG "
           "files beside them: do not edit by hand. Each verdict is computed by code from the rule "
           "shown with it (each notebook's claims are defined once, in its module of `vlmid/experiments/`); a comparison whose 95 % interval includes zero is *undecided*; the anchors and claims are values from the literature "
           "and the study's source documents (see `docs/methods.md` and `docs/sources.md`), not our results. A notebook that has not "
           "written its results says *not run yet*.", "",
           f"Summary: {_verdict_counts(root)}.", "", _builds_sentence(root), "",
           *([line, ""] if (line := run_time_sentence(root)) else []),
           "## Headline", "", headline_table(root)]
    decided, agreeing = decided_metrics(root), builds_agreeing(root)
    for nb in NOTEBOOKS:
        metrics = load_metrics(root, nb)
        out += [f"## {nb.number} {nb.title}", ""]
        if metrics is None:
            out += [f"*Not run yet*: no `results/{nb.stem}/metrics.json` "
                    f"(run `bash run_all.sh --only {nb.number}`).", ""]
            continue
        folder = notebook_dir(root, nb)
        run = manifest.get(folder.name, {})
        facts = [f"profile `{metrics.get('profile', '?')}`", f"seed {metrics.get('seed', '?')}",
                 f"commit `{str(metrics.get('commit', '?'))[:12]}`"]
        if run.get("wall_seconds") is not None:
            facts.append(f"notebook wall time {run['wall_seconds']:.0f} s")
        out += ["Run: " + ", ".join(facts) + ".", ""]
        for row in (r for r in CLAIMS if r.notebook == nb.number):
            measured, word = verdict(row, decided[nb.number])
            out += [f"- **{'Target' if row.kind == 'target' else 'Claim'}**: {row.statement} ({row.source})",
                    f"  - measured: {measured or '-'}",
                    f"  - builds agreeing: {agreeing.get((row.notebook, row.statement), '-')}",
                    f"  - anchor: {row.anchor or 'none in the literature we use'}",
                    f"  - rule: {rule_text(row)}{' (needs the paper profile)' if row.paper_only else ''}",
                    f"  - verdict: **{word}**"]
        out.append("")
        csvs = sorted(folder.glob("*.csv"))
        if csvs:
            out += ["Tables: " + ", ".join(f"[{p.name}]({folder.name}/{p.name})" for p in csvs), ""]
        for name in nb.key_tables:
            if (folder / name).exists():
                out += [f"`{name}` (first rows):", "", _csv_preview(folder / name)]
        rank = {name: i for i, name in enumerate(nb.key_figures)}
        pngs = sorted(folder.glob("*.png"), key=lambda p: (rank.get(p.name, len(rank)), p.name))
        for p in pngs:
            out += [f"![{p.stem}]({folder.name}/{p.name})", ""]
        numbers = {k: v for k, v in metrics.items() if k not in ("profile", "seed", "commit")}
        if numbers:
            out += ["<details><summary>All headline numbers (metrics.json)</summary>", "",
                    "| key | value |", "|---|---|"]
            out += [f"| {table_cell(k)} | {table_cell(_fmt_value(v))} |" for k, v in numbers.items()]
            out += ["", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def _builds_sentence(root: Path) -> str:
    """How the verdicts were decided: on how many model builds (notebook 07's headline)."""
    across = next(nb for nb in NOTEBOOKS if nb.number == ACROSS)
    m = load_metrics(root, across)
    if m is None:
        return ("Each verdict is decided on one model build (notebook 07, which pools the builds, has not run): "
                "its intervals cover test images and seeds, not the model.")
    if m.get("n_builds", 1) < 2:
        return (f"Each verdict is decided on one model build (seed {m.get('builds')}): its intervals cover test "
                "images and seeds, not the model. `bash run_all.sh` runs every shipped build.")
    return (f"Each verdict is decided across {m['n_builds']} model builds (seeds {m['builds']}): an effect is the "
            "mean of the builds' own estimates with Student's 95 % interval over the builds, and *builds agreeing* "
            f"counts the builds that point the same way alone. {m['n_changed_vs_first_build']} verdicts differ from "
            "the first build's alone (notebook 07).")


BUDGET_MINUTES = {"main job": 90, "quick run": 25}   # on 2 cores (docs/methods.md §11)


def run_time_sentence(root: Path) -> str:
    """How long the notebooks behind ``root`` ran together (``manifest.json``'s wall times; set-up and this
    report not counted), on what CPU, and whether that run is within its budget: the main job's
    (every notebook on every build of the run) or the quick run's. A run that is not complete decides nothing."""
    from .pipeline import entry_name, notebooks, schedule

    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return ""
    runs, builds = manifest.get("notebooks", {}), [int(b) for b in manifest.get("builds") or [0]]
    if not runs:
        return ""
    steps = [entry_name(root, builds, nb, b) for nb, b in schedule(notebooks(), builds)]
    done = [runs[k] for k in steps if k in runs and runs[k].get("exit_status") == "ok"]
    minutes = sum(r["wall_seconds"] for r in done) / 60
    quick = any(r.get("parameters", {}).get("quick") for r in done)
    host = {}
    for k in steps:
        try:
            host = json.loads((root / k / "provenance.json").read_text()).get("host", {})
            break
        except (OSError, ValueError):
            continue
    where = (f"on {host.get('cpu_count', '?')} cores ({host.get('cpu_capability', '?')})"
             + (f", {host['cuda']}" if host.get("cuda") else "")) if host else "on a machine its provenance does not name"
    profile = done[0].get("profile", "tiny") if done else "tiny"
    kind = "quick run" if quick else "main job"
    commits = sorted({str(r.get("commit", "?"))[:7] for r in done})
    said = (f"Run time: the {len(done)} notebook runs behind these results (builds {', '.join(map(str, builds))}; "
            f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}) "
            f"took {minutes:.0f} min together {where}, set-up not counted")
    if len(done) < len(steps):
        return said + (f"; {len(steps) - len(done)} of the run's {len(steps)} notebook runs are missing or failed, "
                       f"so the {kind}'s budget is not decided here.")
    if profile != "tiny":
        return said + "."
    if not quick:
        from ..models.zoo import shipped_seeds
        shipped = shipped_seeds()
        if builds != shipped:
            return said + (f"; not every shipped build ({', '.join(map(str, shipped))}) ran, so this is not "
                           "the main job and its budget is not decided here.")
    budget = BUDGET_MINUTES[kind]
    word = "within" if minutes <= budget else "over"
    return said + f": {word} the {kind}'s budget of {budget} min on 2 cores (`bash run_all.sh{' --quick' if quick else ''}`)."


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "null" if v is None else str(v)


def readme_section(results_dir: str | Path | None = None) -> str:
    """What goes between the README markers: the same headline table as the report."""
    return ("\n*Generated by `python -m vlmid.harness.report` from `results/`; the full report with figures is "
            "[results/REPORT.md](results/REPORT.md).*\n\n" + headline_table(results_dir) + "\n")


def replace_section(text: str, section: str, markers: tuple[str, str] = (README_START, README_END)) -> str:
    """``text`` with the part between ``markers`` (default: the results markers) replaced by ``section``."""
    start_marker, end_marker = markers
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {start_marker} ... {end_marker} markers")
    return text[: start + len(start_marker)] + section + text[end:]


def write_report(results_dir: str | Path | None = None, readme: str | Path | None = None,
                 update_readme: bool = True) -> Path:
    """Write ``<results>/REPORT.md`` and (``update_readme``) refresh the README's results section;
    return the report path. The README shows the committed tiny results only: a paper run's report
    (``results/paper/``) is written with ``update_readme=False``."""
    from .results import atomic_write

    root = Path(default_results_dir(results_dir))
    report = atomic_write(root / "REPORT.md", lambda f: f.write(render_report(root)))
    readme = Path(readme) if readme is not None else REPO_ROOT / "README.md"
    if not update_readme:
        return report
    if readme.exists():
        text = readme.read_text()
        try:
            new = replace_section(text, readme_section(root))
        except ValueError as exc:
            print(f"vlmid.harness.report: {readme}: {exc}; README left as it is", file=sys.stderr)
        else:
            if new != text:
                atomic_write(readme, lambda f: f.write(new))
    else:
        print(f"vlmid.harness.report: no README at {readme}; only {report} written", file=sys.stderr)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.report", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=None, help="results folder (default: results/)")
    ap.add_argument("--readme", default=None, help="README to update (default: the repository's README.md)")
    ap.add_argument("--no-readme", action="store_true", help="write the report only (e.g. of a paper run)")
    args = ap.parse_args(argv)
    path = write_report(args.results, args.readme, update_readme=not args.no_readme)
    print(f"wrote {path}: {_verdict_counts(path.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
