"""Side by side: every metric of two models with the difference, and findings on the seed
study's three claims, each generated from the numbers and carrying the figures behind it.

The claims speak of "the VAE" and "the AE"; here they are the first and second model of the
comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CONFIRMED, REFUTED, NOT_SUPPORTED = "confirmed", "refuted", "not supported"

KEY_METRICS = (  # (label, flattened metric, higher is better)
    ("k-NN accuracy", "embedding.knn_accuracy", True),
    ("silhouette", "embedding.silhouette", True),
    ("trustworthiness", "embedding.trustworthiness", True),
    ("reconstruction MSE", "reconstruction.mse", False),
    ("Fréchet, N(0,I) samples", "samples.frechet_standard_normal", False),
    ("Fréchet, fitted Gaussian", "samples.frechet_fitted_gaussian", False),
)


@dataclass(frozen=True)
class Row:
    metric: str
    a: float | int | str
    b: float | int | str
    diff: float | None  # b - a, for numbers


@dataclass(frozen=True)
class Finding:
    claim: str
    verdict: str
    evidence: str
    figures: dict[str, float]


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested metrics → ``{"a.b.c": leaf}``; list items get ``[i]`` suffixes."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, name + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out[f"{name}[{i}]"] = item
        else:
            out[name] = value
    return out


def comparison_table(a: dict, b: dict) -> list[Row]:
    """One row per metric present in either model, in a stable order."""
    fa, fb = flatten(a), flatten(b)
    rows = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key, "—"), fb.get(key, "—")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (va, vb))
        rows.append(Row(key, va, vb, float(f"{vb - va:.12g}") if numbers else None))
    return rows


def _f(v: float) -> str:
    return f"{v:.3f}"


def claim_footwear(a: dict, data_share: float, name_a: str, name_b: str) -> Finding:
    """Claim 1: the VAE learns shoes more than other objects."""
    ga, shares = a["footwear_share"], a["shares"]
    top = max(shares, key=shares.get)
    figures = {
        "footwear_share": ga,
        "footwear_share_in_data": data_share,
        "largest_share": shares[top],
    }
    ratio = ga / data_share if data_share else 0.0
    if ratio >= 1.25:
        verdict = CONFIRMED
    elif ratio <= 1.0:
        verdict = REFUTED
    else:
        verdict = NOT_SUPPORTED
    evidence = (
        f"{name_a}: the classifier calls {_f(ga)} of the grid's cells footwear (Sandal, Sneaker, "
        f"Ankle boot) against {_f(data_share)} of the data ({ratio:.2f}×); its largest class is "
        f"{top} ({_f(shares[top])}). Confirmed at ≥ 1.25×, refuted at ≤ 1×."
    )
    return Finding(
        f"The {name_a} learns shoes more than other objects.", verdict, evidence, figures
    )


def claim_separation(
    a: dict, b: dict, grid_a: dict, grid_b: dict, name_a: str, name_b: str
) -> Finding:
    """Claim 2: the AE separates shirts, boots, jackets… more clearly than the VAE."""
    tests = {
        "classes_present": (
            grid_b["classes"]["classes_present"],
            grid_a["classes"]["classes_present"],
            True,
        ),
        "ambiguous_share": (
            grid_b["classes"]["ambiguous_share"],
            grid_a["classes"]["ambiguous_share"],
            False,
        ),
        "knn_accuracy": (b["embedding"]["knn_accuracy"], a["embedding"]["knn_accuracy"], True),
        "silhouette": (b["embedding"]["silhouette"], a["embedding"]["silhouette"], True),
    }
    wins = sum((vb > va) if higher else (vb < va) for vb, va, higher in tests.values())
    verdict = CONFIRMED if wins >= 3 else REFUTED if wins <= 1 else NOT_SUPPORTED
    figures = {}
    parts = []
    for key, (vb, va, higher) in tests.items():
        figures[f"{key}_{name_b}"], figures[f"{key}_{name_a}"] = vb, va
        better = "higher" if higher else "lower"
        parts.append(f"{key} {name_b} {vb:.3g} vs {name_a} {va:.3g} ({better} is clearer)")
    for cls in ("Shirt", "Ankle boot", "Coat"):
        figures[f"share_{cls}_{name_b}"] = grid_b["classes"]["shares"].get(cls, 0.0)
        figures[f"share_{cls}_{name_a}"] = grid_a["classes"]["shares"].get(cls, 0.0)
    evidence = (
        f"{name_b} is clearer on {wins} of 4 measures: "
        + "; ".join(parts)
        + ". Grid shares "
        + ", ".join(
            f"{c} {figures[f'share_{c}_{name_b}']:.3f} vs {figures[f'share_{c}_{name_a}']:.3f}"
            for c in ("Shirt", "Ankle boot", "Coat")
        )
        + ". Confirmed at ≥ 3 of 4, refuted at ≤ 1."
    )
    claim = f"The {name_b} separates shirts, boots and jackets more clearly than the {name_a}."
    return Finding(claim, verdict, evidence, figures)


def claim_stark(grid_a: dict, grid_b: dict, threshold: float, name_a: str, name_b: str) -> Finding:
    """Claim 3: the AE's top rows jump from very dark to very bright."""
    ta, tb = grid_a["brightness"]["seed_top_rows"], grid_b["brightness"]["seed_top_rows"]
    sb, sa_ = tb["stark_share_d_dz1"], ta["stark_share_d_dz1"]
    figures = {
        f"stark_share_top_rows_{name_b}": sb,
        f"stark_share_top_rows_{name_a}": sa_,
        f"mean_abs_d_dz1_top_rows_{name_b}": tb["mean_abs_d_dz1"],
        f"mean_abs_d_dz1_top_rows_{name_a}": ta["mean_abs_d_dz1"],
        f"max_row_range_{name_b}": tb["max_row_brightness_range"],
        "threshold": threshold,
    }
    if sb > sa_ and sb >= 0.1:
        verdict = CONFIRMED
    elif sb <= sa_:
        verdict = REFUTED
    else:
        verdict = NOT_SUPPORTED
    evidence = (
        f"In the seed's top rows (the {tb['rows']} lowest-z₂ rows, drawn at the top by the seed), "
        f"{_f(sb)} of {name_b}'s cells change brightness faster than {threshold:g} per latent unit "
        f"along z₁, against {_f(sa_)} for {name_a} (mean |∂b/∂z₁| {tb['mean_abs_d_dz1']:.3g} vs "
        f"{ta['mean_abs_d_dz1']:.3g}); the widest dark-to-bright range within one of those "
        f"{name_b} rows is {tb['max_row_brightness_range']:.3g}. Confirmed when {name_b}'s share "
        f"is higher and ≥ 0.1, refuted when it is not higher."
    )
    claim = f"The {name_b}'s top rows jump from very dark to very bright."
    return Finding(claim, verdict, evidence, figures)


def findings(
    a: dict,
    b: dict,
    grid: str,
    data_footwear_share: float,
    threshold: float,
    name_a: str = "VAE",
    name_b: str = "AE",
) -> list[Finding]:
    """The seed's three claims, judged on ``grid`` (its key in the metrics)."""
    ga, gb = a["grids"][grid], b["grids"][grid]
    return [
        claim_footwear(ga["classes"], data_footwear_share, name_a, name_b),
        claim_separation(a, b, ga, gb, name_a, name_b),
        claim_stark(ga, gb, threshold, name_a, name_b),
    ]


def as_dicts(items: list[Row] | list[Finding]) -> list[dict]:
    return [asdict(i) for i in items]
