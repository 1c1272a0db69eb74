"""Studies: claims about models, judged by the numbers.

A study is one module here with one object that has

- ``name`` (what ``--study NAME`` selects) and ``title`` (the report section's heading);
- ``unmet(inp) -> str | None``: why it cannot run on these models and this dataset (one line
  for the user), or None;
- ``run(inp) -> list[Finding]``: its findings, each a claim, a verdict, the evidence in words
  and the figures behind it;
- optionally ``unmet_groups(inp)`` and ``run_groups(inp)``: the same for ``inp.groups``,
  several trained models (seeds) per kind, judged on intervals across the seeds
  (``analysis.uncertainty``), with a ``group_title``.

Register it in :data:`STUDIES`. A report runs a study only when asked (``--study NAME``); the
default ``make report`` asks for the seed study, which reproduces the project's seed study.
Thresholds that decide a verdict are constants in the study's module, tested at their edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from latent_atlas.analysis.results import ModelMetrics
from latent_atlas.toolkit.errors import AtlasError

CONFIRMED, REFUTED, NOT_SUPPORTED = "confirmed", "refuted", "not supported"
NOT_AVAILABLE = "not available"  # a measure the claim needs is missing: never a number


@dataclass(frozen=True)
class Finding:
    claim: str
    verdict: str
    evidence: str
    figures: dict[str, float]
    # a finding on groups of models (several training seeds each): every measure behind the
    # verdict, with its per-seed values, interval, threshold and single-model/pairing tally
    measures: tuple[Any, ...] = ()
    # on which evidence the claim is judged (the classifier's labels of the grid's cells, the
    # test-set embeddings, the class map, the cells' brightness), in words
    basis: str = ""
    # the verdict in one sentence, with its number and the threshold it needed
    summary: str = ""
    # a short name for a figure's row (the forest plot of the claims)
    label: str = ""
    # the decoder geometry's reading of the claim (supplementary: no rule reads it), in words
    geometry: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Group:
    """Several trained models of one configuration (one per training seed): their display
    names (e.g. folder names) and metrics, in the same order."""

    label: str
    members: tuple[str, ...]
    metrics: tuple[ModelMetrics, ...]


@dataclass(frozen=True)
class StudyInput:
    """What a study sees: the models' labels and metrics (in report order), the dataset's
    class names and test labels, and the analysis settings it may need."""

    labels: tuple[str, ...]
    metrics: tuple[ModelMetrics, ...]
    class_names: tuple[str, ...]
    test_labels: np.ndarray  # int [N], class index of each test image
    gradient_threshold: float
    extra: dict[str, Any] = field(default_factory=dict)
    # groups of models (several seeds each), judged by a study's ``run_groups`` when it has one
    groups: tuple[Group, ...] = ()


class Study(Protocol):
    name: str
    title: str

    def unmet(self, inp: StudyInput) -> str | None: ...

    def run(self, inp: StudyInput) -> list[Finding]: ...


def _registry() -> dict[str, Study]:
    from latent_atlas.analysis.studies.seed import SeedStudy

    return {s.name: s for s in (SeedStudy(),)}


def study_names() -> list[str]:
    return sorted(_registry())


def get_study(name: str) -> Study:
    studies = _registry()
    if name not in studies:
        raise AtlasError(f"--study {name!r}: unknown study; expected one of {sorted(studies)}")
    return studies[name]


def run_group_study(name: str, inp: StudyInput) -> list[Finding]:
    """Run study ``name`` on ``inp.groups`` (several seeds per model kind); a study that has
    no verdicts on groups, or whose needs are not met, is refused with one line."""
    study = get_study(name)
    judge = getattr(study, "run_groups", None)
    unmet = getattr(study, "unmet_groups", None)
    if judge is None or unmet is None:
        raise AtlasError(f"--study {name}: judges single models only, not groups")
    why = unmet(inp)
    if why:
        raise AtlasError(f"--study {name}: {why}")
    return list(judge(inp))


def run_study(name: str, inp: StudyInput) -> list[Finding]:
    """Run study ``name``; a study whose needs are not met is refused with one line."""
    study = get_study(name)
    why = study.unmet(inp)
    if why:
        raise AtlasError(f"--study {name}: {why}")
    return study.run(inp)
