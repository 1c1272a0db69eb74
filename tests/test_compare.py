"""The seed study's verdict rules, known answers at their threshold edges (just above, at,
just below), and the study interface's refusals."""

from __future__ import annotations

import numpy as np
import pytest
from latent_atlas.analysis.compare import all_rows, key_rows
from latent_atlas.analysis.results import (
    BrightnessMetrics,
    ClassMetrics,
    EmbeddingMetrics,
    GradientSummary,
    GridMetrics,
    ModelMetrics,
    SeedTopRows,
    SmoothnessMetrics,
    best_index,
)
from latent_atlas.analysis.studies import (
    CONFIRMED,
    NOT_AVAILABLE,
    NOT_SUPPORTED,
    REFUTED,
    StudyInput,
    get_study,
    run_study,
)
from latent_atlas.analysis.studies.seed import (
    FOOTWEAR_CONFIRM_RATIO,
    FOOTWEAR_REFUTE_RATIO,
    FOOTWEAR_RULE,
    SEED_GRID,
    claim_footwear,
    claim_separation,
    claim_stark,
)
from latent_atlas.toolkit.data import FASHION_MNIST_CLASSES
from latent_atlas.toolkit.errors import AtlasError

NAMES = FASHION_MNIST_CLASSES
EPS = 1e-9


def _shares(footwear: float) -> dict[str, float]:
    """Class shares with ``footwear`` spread over the three footwear classes."""
    rest = (1 - footwear) / 7
    return {n: (footwear / 3 if n in ("Sandal", "Sneaker", "Ankle boot") else rest) for n in NAMES}


# ---------------------------------------------------------------- claim 1
@pytest.mark.parametrize(
    "ratio, verdict",
    [
        (FOOTWEAR_CONFIRM_RATIO + 1e-6, CONFIRMED),
        (FOOTWEAR_CONFIRM_RATIO, CONFIRMED),
        (FOOTWEAR_CONFIRM_RATIO - 1e-6, NOT_SUPPORTED),
        (FOOTWEAR_REFUTE_RATIO + 1e-6, NOT_SUPPORTED),
        (FOOTWEAR_REFUTE_RATIO, REFUTED),
        (FOOTWEAR_REFUTE_RATIO - 1e-6, REFUTED),
        (0.0, REFUTED),
    ],
)
def test_footwear_claim_edges(ratio, verdict):
    data = 0.3
    f = claim_footwear(_shares(ratio * data), data, "VAE", "AE")
    assert f.verdict == verdict, (ratio, f.evidence)
    assert f.figures["footwear_share"] == pytest.approx(ratio * data)
    assert f.summary.startswith(verdict.capitalize() + ":") and "≥ 1.25×" in f.summary


def test_footwear_rule_is_one_rule_on_both_paths():
    # the rule is stated once (FOOTWEAR_RULE) and the single-model and group paths both read it:
    # today's group code refuted below 1.25×, the single-model code only at <= 1×
    assert (FOOTWEAR_RULE.value, FOOTWEAR_RULE.side) == (FOOTWEAR_CONFIRM_RATIO, ">=")
    assert (FOOTWEAR_RULE.refute_value, FOOTWEAR_RULE.refute_side) == (FOOTWEAR_REFUTE_RATIO, "<=")
    assert not FOOTWEAR_RULE.refutes(1.1) and not FOOTWEAR_RULE.holds(1.1)


# ---------------------------------------------------------------- claim 2
def _grid(present=9, ambiguous=0.1, stark=0.0, mean_d1=0.05, top_max=0.1) -> GridMetrics:
    return GridMetrics(
        spec="21×21", plane={}, x_range=[-4, 4], y_range=[-4, 4], cells=441,
        brightness=BrightnessMetrics(0.2, 0.0, 0.5, GradientSummary(0.1, 0.2, 0.3, 0.0, 0.25),
                                     SeedTopRows(7, mean_d1, stark, 0.3, top_max)),
        smoothness=SmoothnessMetrics(0.1, 0.05, 0.2, 0.3),
        classes=ClassMetrics("classifier", _shares(0.3), present, ambiguous, 0.8, 0.5, 0.7),
    )  # fmt: skip


def _model(knn=0.7, silhouette=0.1, grid: GridMetrics | None = None) -> ModelMetrics:
    emb = EmbeddingMetrics(2, knn, silhouette, 0.97, [0, 0], [1, 1], 0.1, {}, {})
    return ModelMetrics(emb, None, None, {SEED_GRID: grid or _grid()})


@pytest.mark.parametrize(
    "ae, verdict, wins",
    [
        # AE better on all four (more classes, less ambiguity, higher k-NN and silhouette)
        (dict(present=10, ambiguous=0.05, knn=0.8, silhouette=0.2), CONFIRMED, 4),
        (dict(present=10, ambiguous=0.05, knn=0.8, silhouette=0.1), CONFIRMED, 3),  # a tie
        (dict(present=10, ambiguous=0.05, knn=0.7, silhouette=0.1), NOT_SUPPORTED, 2),
        # ties do not vote: one clearer and three tied is not a refutation (it was before)
        (dict(present=10, ambiguous=0.1, knn=0.7, silhouette=0.1), NOT_SUPPORTED, 1),
        (dict(present=9, ambiguous=0.1, knn=0.7, silhouette=0.1), NOT_SUPPORTED, 0),  # all ties
        (dict(present=8, ambiguous=0.2, knn=0.6, silhouette=0.1), REFUTED, 0),  # 3 worse
        (dict(present=8, ambiguous=0.2, knn=0.6, silhouette=0.0), REFUTED, 0),
        # just above / below the VAE on one measure decides a win
        (dict(present=10, ambiguous=0.1 - EPS, knn=0.7 + EPS, silhouette=0.1), CONFIRMED, 3),
        (dict(present=10, ambiguous=0.1 + EPS, knn=0.7 + EPS, silhouette=0.1), NOT_SUPPORTED, 2),
    ],
)
def test_separation_claim_edges(ae, verdict, wins):
    vae = _model(grid=_grid())
    g = _grid(present=ae["present"], ambiguous=ae["ambiguous"])
    m = _model(knn=ae["knn"], silhouette=ae["silhouette"], grid=g)
    f = claim_separation(vae, m, vae.grids[SEED_GRID], g, "VAE", "AE")
    assert f.verdict == verdict and f"clearer on {wins} of 4" in f.evidence


# ---------------------------------------------------------------- claim 3
@pytest.mark.parametrize(
    "ae_max, verdict",
    [
        (0.25 + 1e-6, CONFIRMED),
        (0.25, REFUTED),  # at the threshold is not faster than it (as on the group path)
        (0.25 - 1e-6, REFUTED),
        (0.0, REFUTED),
        (None, NOT_AVAILABLE),  # never turned into 0
    ],
)
def test_stark_claim_edges(ae_max, verdict):
    # the same measure as the group path: the AE's largest |∂b/∂z₀| in the top rows (the share
    # of stark cells, judged before, is only shown)
    f = claim_stark(_grid(top_max=0.05), _grid(stark=0.5, top_max=ae_max), 0.25, "VAE", "AE")
    assert f.verdict == verdict
    assert ("not measured" in f.evidence) == (ae_max is None)


# ---------------------------------------------------------------- the study as a whole
def _input(labels=("VAE", "AE"), names=NAMES, metrics=None) -> StudyInput:
    labels_arr = np.repeat(np.arange(10), 10)
    return StudyInput(labels=labels, metrics=metrics or (_model(), _model()), class_names=names,
                      test_labels=labels_arr, gradient_threshold=0.25)  # fmt: skip


def test_seed_study_runs_and_orders_by_label():
    inp = _input(labels=("AE", "VAE"), metrics=(_model(knn=0.9), _model(knn=0.5)))
    findings = run_study("seed", inp)
    assert [f.claim.split()[1] for f in findings] == ["VAE", "AE", "AE's"]
    assert findings[1].figures["knn_accuracy_AE"] == 0.9  # the AE is the one labelled AE


@pytest.mark.parametrize(
    "inp, why",
    [
        (_input(labels=("A", "B")), "needs two models labelled VAE and AE"),
        (_input(labels=("VAE", "VAE")), "needs two models labelled VAE and AE"),
        (_input(names=tuple(f"c{i}" for i in range(10))),
         r"needs Fashion-MNIST's classes; the dataset lacks \['Sandal', 'Sneaker', 'Ankle boot', "
         r"'Shirt', 'Coat'\]$"),
        (_input(metrics=(_model(), ModelMetrics(None, None, None, {SEED_GRID: _grid()}))),
         "has no encoder"),
        (_input(metrics=(_model(), ModelMetrics(_model().embedding, None, None, {}))),
         "needs the seed's grid"),
    ],
)  # fmt: skip
def test_seed_study_refuses_what_it_cannot_judge(inp, why):
    with pytest.raises(AtlasError, match=why):
        run_study("seed", inp)


def test_unknown_study_is_one_line():
    with pytest.raises(AtlasError, match="unknown study; expected one of \\['seed'\\]"):
        get_study("astrology")


# ---------------------------------------------------------------- tables
def test_best_is_marked_only_where_it_is_defined():
    assert best_index([0.5, 0.7, 0.6], True) == 1
    assert best_index([0.5, 0.7, 0.6], False) == 0
    assert best_index([0.5, None, 0.4], False) == 2
    assert best_index([0.5, 0.5], True) is None  # a tie marks no one
    assert best_index([0.5, None], True) is None  # one known value is no comparison
    rows = key_rows([_model(knn=0.6), _model(knn=0.9), _model(knn=0.7)])
    assert rows[0].metric == "k-NN accuracy"
    assert rows[0].values == [0.6, 0.9, 0.7] and rows[0].best == 1


def test_the_frechet_rows_say_how_many_samples_each_distance_took():
    from dataclasses import replace

    from latent_atlas.analysis.results import SampleMetrics

    def with_samples(n):
        return replace(_model(), samples=SampleMetrics("logits", 0.9, 380.0, 390.0, 300.0, n))

    rows = {r.metric: r.note for r in key_rows([with_samples(5000), with_samples(5000)])}
    assert rows["Fréchet, N(0,I) samples"] == "lower is better; 5,000 decoded samples"
    assert rows["Fréchet, fitted Gaussian"] == "lower is better; 5,000 decoded samples"
    assert rows["k-NN accuracy"] == "higher is better"
    mixed = {r.metric: r.note for r in key_rows([with_samples(5000), with_samples(10000)])}
    assert mixed["Fréchet, N(0,I) samples"].endswith("5,000 / 10,000 decoded samples")
    # a metrics.json of an earlier report has no count: nothing is claimed
    older = {r.metric: r.note for r in key_rows([with_samples(None), with_samples(5000)])}
    assert older["Fréchet, N(0,I) samples"] == "lower is better"


def test_all_rows_cover_every_model():
    a = _model()
    b = ModelMetrics(None, None, None, {SEED_GRID: _grid()}, {"embedding": "no encoder"})
    rows = {r.metric: r.values for r in all_rows([a, b])}
    assert rows["embedding.knn_accuracy"] == [0.7, None]
    assert rows[f"grids.{SEED_GRID}.classes.classes_present"] == [9, 9]
    assert not any(k.startswith("not_available") for k in rows)
