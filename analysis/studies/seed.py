"""The seed study's three claims (``shared/seeds/000_*.txt``), judged by the numbers.

The study compared a VAE and an autoencoder on Fashion-MNIST by eye, on a 21×21 grid over
[-4, 4]². Its claims: (1) the VAE learns shoes more than other objects; (2) the AE separates
shirts, boots and jackets more clearly than the VAE; (3) the AE's top rows jump from very dark to
very bright. It needs two models labelled VAE and AE (each with an encoder), a classifier,
Fashion-MNIST's class names, and the seed's grid among the analysed grids.

The thresholds below were fixed before looking at the shipped models' numbers; each verdict
states the one it used.
"""

from __future__ import annotations

import numpy as np
from latent_atlas.analysis.results import GridMetrics, ModelMetrics
from latent_atlas.analysis.studies import (
    CONFIRMED,
    NOT_SUPPORTED,
    REFUTED,
    Finding,
    StudyInput,
)

FOOTWEAR = ("Sandal", "Sneaker", "Ankle boot")
NAMED = ("Shirt", "Ankle boot", "Coat")  # "shirts, boots and jackets"
SEED_GRID = "linear_21x21"
# Claim 1: confirmed when the VAE's grid holds at least this many times the data's footwear
# share, refuted at or below the data's own share.
FOOTWEAR_CONFIRM_RATIO = 1.25
# Claim 2: confirmed when the AE is clearer on at least 3 of the 4 measures, refuted at <= 1.
SEPARATION_CONFIRM_WINS, SEPARATION_REFUTE_WINS = 3, 1
# Claim 3: confirmed when the AE's share of stark cells in the seed's top rows is higher than
# the VAE's and at least this large.
STARK_CONFIRM_SHARE = 0.1


def _f(v: float) -> str:
    return f"{v:.3f}"


def footwear_share(shares: dict[str, float]) -> float:
    return float(sum(shares.get(c, 0.0) for c in FOOTWEAR))


def claim_footwear(
    shares: dict[str, float], data_share: float, name_a: str, name_b: str
) -> Finding:
    """Claim 1: the VAE learns shoes more than other objects."""
    ga = footwear_share(shares)
    top = max(shares, key=lambda k: shares[k])
    figures = {
        "footwear_share": ga,
        "footwear_share_in_data": data_share,
        "largest_share": shares[top],
    }
    ratio = ga / data_share if data_share else 0.0
    if ratio >= FOOTWEAR_CONFIRM_RATIO:
        verdict = CONFIRMED
    elif ratio <= 1.0:
        verdict = REFUTED
    else:
        verdict = NOT_SUPPORTED
    evidence = (
        f"{name_a}: the classifier calls {_f(ga)} of the grid's cells footwear (Sandal, Sneaker, "
        f"Ankle boot) against {_f(data_share)} of the data ({ratio:.2f}×); its largest class is "
        f"{top} ({_f(shares[top])}). Confirmed at ≥ {FOOTWEAR_CONFIRM_RATIO:g}×, refuted at ≤ 1×."
    )
    return Finding(
        f"The {name_a} learns shoes more than other objects.", verdict, evidence, figures
    )


def claim_separation(
    a: ModelMetrics, b: ModelMetrics, grid_a: GridMetrics, grid_b: GridMetrics,
    name_a: str, name_b: str,
) -> Finding:  # fmt: skip
    """Claim 2: the AE separates shirts, boots, jackets… more clearly than the VAE."""
    assert a.embedding and b.embedding and grid_a.classes and grid_b.classes
    ca, cb = grid_a.classes, grid_b.classes
    tests = {
        "classes_present": (cb.classes_present, ca.classes_present, True),
        "ambiguous_share": (cb.ambiguous_share, ca.ambiguous_share, False),
        "knn_accuracy": (b.embedding.knn_accuracy, a.embedding.knn_accuracy, True),
        "silhouette": (b.embedding.silhouette, a.embedding.silhouette, True),
    }
    wins = sum((vb > va) if higher else (vb < va) for vb, va, higher in tests.values())  # type: ignore[operator]
    if wins >= SEPARATION_CONFIRM_WINS:
        verdict = CONFIRMED
    elif wins <= SEPARATION_REFUTE_WINS:
        verdict = REFUTED
    else:
        verdict = NOT_SUPPORTED
    figures: dict[str, float] = {}
    parts = []
    for key, (vb, va, higher) in tests.items():
        figures[f"{key}_{name_b}"], figures[f"{key}_{name_a}"] = vb, va  # type: ignore[assignment]
        better = "higher" if higher else "lower"
        parts.append(f"{key} {name_b} {vb:.3g} vs {name_a} {va:.3g} ({better} is clearer)")
    for cls in NAMED:
        figures[f"share_{cls}_{name_b}"] = cb.shares.get(cls, 0.0)
        figures[f"share_{cls}_{name_a}"] = ca.shares.get(cls, 0.0)
    evidence = (
        f"{name_b} is clearer on {wins} of 4 measures: "
        + "; ".join(parts)
        + ". Grid shares "
        + ", ".join(
            f"{c} {figures[f'share_{c}_{name_b}']:.3f} vs {figures[f'share_{c}_{name_a}']:.3f}"
            for c in NAMED
        )
        + f". Confirmed at ≥ {SEPARATION_CONFIRM_WINS} of 4, refuted at ≤ "
        f"{SEPARATION_REFUTE_WINS}."
    )
    claim = f"The {name_b} separates shirts, boots and jackets more clearly than the {name_a}."
    return Finding(claim, verdict, evidence, figures)


def claim_stark(
    grid_a: GridMetrics, grid_b: GridMetrics, threshold: float, name_a: str, name_b: str
) -> Finding:
    """Claim 3: the AE's top rows jump from very dark to very bright."""
    ta, tb = grid_a.brightness.seed_top_rows, grid_b.brightness.seed_top_rows
    sb, sa_ = tb.stark_share_d_dz1, ta.stark_share_d_dz1
    figures = {
        f"stark_share_top_rows_{name_b}": sb,
        f"stark_share_top_rows_{name_a}": sa_,
        f"mean_abs_d_dz1_top_rows_{name_b}": tb.mean_abs_d_dz1,
        f"mean_abs_d_dz1_top_rows_{name_a}": ta.mean_abs_d_dz1,
        f"max_row_range_{name_b}": tb.max_row_brightness_range,
        "threshold": threshold,
    }
    if sb > sa_ and sb >= STARK_CONFIRM_SHARE:
        verdict = CONFIRMED
    elif sb <= sa_:
        verdict = REFUTED
    else:
        verdict = NOT_SUPPORTED
    evidence = (
        f"In the seed's top rows (the {tb.rows} lowest-z₂ rows, drawn at the top by the seed), "
        f"{_f(sb)} of {name_b}'s cells change brightness faster than {threshold:g} per latent unit "
        f"along z₁, against {_f(sa_)} for {name_a} (mean |∂b/∂z₁| {tb.mean_abs_d_dz1:.3g} vs "
        f"{ta.mean_abs_d_dz1:.3g}); the widest dark-to-bright range within one of those "
        f"{name_b} rows is {tb.max_row_brightness_range:.3g}. Confirmed when {name_b}'s share "
        f"is higher and ≥ {STARK_CONFIRM_SHARE:g}, refuted when it is not higher."
    )
    claim = f"The {name_b}'s top rows jump from very dark to very bright."
    return Finding(claim, verdict, evidence, figures)


def data_footwear_share(test_labels: np.ndarray, class_names: tuple[str, ...]) -> float:
    ids = [class_names.index(c) for c in FOOTWEAR]
    return float(np.isin(test_labels, ids).mean())


class SeedStudy:
    name = "seed"
    title = "Findings on the seed study's claims"

    def _pair(self, inp: StudyInput) -> tuple[int, int] | None:
        upper = [label.upper() for label in inp.labels]
        if upper.count("VAE") != 1 or upper.count("AE") != 1:
            return None
        return upper.index("VAE"), upper.index("AE")

    def unmet(self, inp: StudyInput) -> str | None:
        pair = self._pair(inp)
        if pair is None:
            return (
                f"needs two models labelled VAE and AE, got labels {list(inp.labels)}; "
                "label them with --label VAE --label AE"
            )
        missing = [c for c in (*FOOTWEAR, *NAMED) if c not in inp.class_names]
        if missing:
            return f"needs Fashion-MNIST's classes; the dataset lacks {missing}"
        for i in pair:
            m = inp.metrics[i]
            if m.embedding is None:
                return f"model {inp.labels[i]} has no encoder; the claims need its embeddings"
            grid = m.grids.get(SEED_GRID)
            if grid is None:
                return f"needs the seed's grid ({SEED_GRID}: --steps 21 --range -4 4)"
            if grid.classes is None or grid.classes.source != "classifier":
                return "needs a classifier (the claims speak of the classes it sees)"
        return None

    def run(self, inp: StudyInput) -> list[Finding]:
        pair = self._pair(inp)
        assert pair is not None
        (ia, ib) = pair
        a, b = inp.metrics[ia], inp.metrics[ib]
        name_a, name_b = inp.labels[ia], inp.labels[ib]
        ga, gb = a.grids[SEED_GRID], b.grids[SEED_GRID]
        assert ga.classes is not None
        data_share = data_footwear_share(inp.test_labels, inp.class_names)
        return [
            claim_footwear(ga.classes.shares, data_share, name_a, name_b),
            claim_separation(a, b, ga, gb, name_a, name_b),
            claim_stark(ga, gb, inp.gradient_threshold, name_a, name_b),
        ]
