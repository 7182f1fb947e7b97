"""What every notebook's parameters share: profile, seed, smoke, results folder, device, and the checks."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from ..paths import check_profile, resolve_device


def check_whole(name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """A whole number in ``[low, high]``, else a ValueError that says what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or value < low or (high is not None and value > high):
        where = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}={value!r} is out of range: it must be a whole number {where}")
    return int(value)


def check_choice(name: str, value: Any, choices) -> Any:
    """One of ``choices``, else a ValueError that lists them."""
    if value not in tuple(choices):
        raise ValueError(f"{name}={value!r}: use one of {', '.join(repr(c) for c in choices)}")
    return value


@dataclass
class NotebookParams:
    """Base of the per-notebook parameter dataclasses.

    Subclasses add their fields (``None`` meaning "the profile's default"), and may set
    ``PROFILE_DEFAULTS`` (field -> value per profile, filled in where a field is ``None``),
    ``SMOKE`` (field -> value, or a function of the current value, used when ``smoke`` is true:
    seconds instead of minutes, the same code path), ``PAPER_SMOKE`` (the same, applied after
    ``SMOKE`` in a paper smoke run: the paper stand-ins of :mod:`vlmid.harness.standins` are the real width
    and image size, so each image and step costs about a hundred times a tiny one) and override
    :meth:`check` (range checks on the values the user gave) and :meth:`finish` (values derived
    from the others). ``REPLICATE`` (the same form as ``SMOKE``, applied before it when ``replicate``
    is true) sizes the runs on the further builds of a run over several model builds
    (:mod:`vlmid.harness.pipeline`): what the notebook's claims read, at the precision their verdicts
    across builds need, never a change of what is measured (a 40 % checkpoint is the same whether the
    schedule then goes on to 80 % or stops), so every build estimates the same quantities. ``QUICK``
    (the same form, applied when ``quick`` is true: ``run_all.sh --quick``, one build, what CI runs) sizes
    a quick run: mostly the further builds' sizes, on the first build, with every section and figure
    kept; its verdicts rest on one build at those sizes, and the full run's replace them.
    """
    profile: str = "tiny"      # "tiny": offline, models trained here | "paper": real checkpoints and datasets
    seed: int = 0
    smoke: bool = False        # tiny sizes for the test-suite
    results_dir: str | None = None
    device: str = "auto"       # "auto": CUDA when available, else CPU | "cpu" | "cuda" | "cuda:N"
    replicate: bool = False    # a further model build of a run over several: only what the verdicts read (REPLICATE)
    quick: bool = False        # a one-build quick run (run_all.sh --quick, what CI runs): smaller sizes (QUICK)

    PROFILE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}
    SMOKE: ClassVar[dict[str, Any]] = {}
    REPLICATE: ClassVar[dict[str, Any]] = {}
    QUICK: ClassVar[dict[str, Any]] = {}
    PAPER_SMOKE: ClassVar[dict[str, Any]] = {}
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ()   # what a paper run reads (keys of vlmid.harness.paper_inputs.INPUTS)

    def __post_init__(self):
        check_profile(self.profile)
        check_whole("seed", self.seed, 0)
        self.device = resolve_device(self.device)  # "auto" becomes the device found here
        for name, value in self.PROFILE_DEFAULTS.get(self.profile, {}).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.check()  # what the user asked for is checked before the smoke sizes replace it
        if self.replicate:
            self._resize(self.REPLICATE)
        if self.quick:
            self._resize(self.QUICK)
        if self.smoke:
            self._resize({**self.SMOKE, **(self.PAPER_SMOKE if self.profile == "paper" else {})})
        self.finish()

    def _resize(self, sizes: Mapping[str, Any]) -> None:
        """Set each field of ``sizes`` to its value, or to its function of the current value."""
        for name, value in sizes.items():
            setattr(self, name, value(getattr(self, name)) if callable(value) else value)

    def check(self) -> None:
        """Range checks with errors that say what to do (subclasses)."""

    def finish(self) -> None:
        """Derived values, after the defaults and smoke sizes are in (subclasses)."""

    def paper_inputs(self) -> tuple[str, ...]:
        """The checkpoints and datasets a paper run of these parameters reads (subclasses may narrow it)."""
        return self.PAPER_INPUTS

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]):
        """The dataclass from a notebook's globals (or any mapping): every field found there is taken.
        A notebook calls it through :func:`vlmid.harness.paper_inputs.params_from`, which also checks that a
        paper run's checkpoints and datasets are on this machine."""
        return cls(**{f.name: namespace[f.name] for f in dataclasses.fields(cls) if f.name in namespace})

    def namespace(self) -> dict[str, Any]:
        """Field name -> value (shallow), for ``globals().update(...)`` in a notebook."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
