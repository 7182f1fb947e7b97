"""Notebook 07's parameters: which model builds to pool (None: the ones the results folder holds)."""
from __future__ import annotations

from dataclasses import dataclass

from ..paths import parse_builds
from .base import NotebookParams


@dataclass
class AcrossBuildsParams(NotebookParams):
    """``07_verdicts_across_builds``: the builds (model seeds) whose results are pooled."""
    builds: str | list | None = None   # "0,1,2,3,4"; None: the builds of the last run (results/manifest.json)

    def check(self) -> None:
        if self.builds is not None:
            self.builds = parse_builds(self.builds)

    def finish(self) -> None:
        if self.builds is None:
            self.builds = last_run_builds(self.results_dir, self.profile, self.smoke) or [self.seed]


def last_run_builds(results_dir=None, profile: str = "tiny", smoke: bool = False) -> list[int] | None:
    """The builds of the last run into the results folder (its ``manifest.json``), or None."""
    import json

    from ..paths import run_results_dir

    try:
        manifest = json.loads((run_results_dir(profile, smoke, results_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return parse_builds(manifest["builds"]) if manifest.get("builds") else None
