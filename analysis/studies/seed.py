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

from dataclasses import dataclass, replace

import numpy as np
from latent_atlas.analysis.results import EmbeddingMetrics, GridMetrics, ModelMetrics, SeedTopRows
from latent_atlas.analysis.studies import (
    CONFIRMED,
    NOT_SUPPORTED,
    REFUTED,
    Finding,
    Group,
    StudyInput,
)
from latent_atlas.analysis.uncertainty import (
    INCONCLUSIVE,
    Interval,
    Tally,
    Threshold,
    difference_interval,
    mean_interval,
    pairing_values,
    tally,
    verdict,
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
    group_title = "The seed study's claims across training seeds"

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
        missing = [c for c in dict.fromkeys((*FOOTWEAR, *NAMED)) if c not in inp.class_names]
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

    def unmet_groups(self, inp: StudyInput) -> str | None:
        return group_unmet(inp.groups, inp.class_names)

    def run_groups(self, inp: StudyInput) -> list[Finding]:
        data_share = data_footwear_share(inp.test_labels, inp.class_names)
        return judge_groups(inp.groups, data_share, inp.gradient_threshold)


# ---------------------------------------------------------------------------- groups of seeds
# A verdict that flips with the training seed is no finding: with several trained models per
# kind (a group each), every claim is judged on a 95 % interval across the seeds
# (analysis.uncertainty: Student t for one group, Welch for the difference of two) — confirmed
# only when the interval lies wholly on the confirming side of the threshold, refuted only when
# wholly on the other side, otherwise inconclusive — once on the grid the seed meant (the
# correct 21×21 grid) and once on the figure its loop drew (one column, analysis.seed_figure).
MEANT, DRAWN = "meant", "drawn"
FIGURE_WORDS = {
    MEANT: "the grid the seed meant (21×21 over [-4, 4]², every cell)",
    DRAWN: "the figure the seed's loop drew (only the z₁ = 4 column, z₂ = −4 at the top)",
}
# Claim 1 against the data: the VAE's footwear share at least this many times the data's.
# Claim 1 between the models: the VAE's footwear share above the AE's (difference > 0).
# Claim 2: each measure's AE − VAE difference on the clearer side of 0; the claim is confirmed
# when at least this many measures are confirmed, refuted when as many are refuted.
GLOBAL_MEASURES_NEEDED = SEPARATION_CONFIRM_WINS  # of 4: the seed study's own 3 of 4
NAMED_MEASURES_NEEDED = 4  # of 6 (k-NN recall and silhouette for Shirt, Coat, Ankle boot)
# Claim 3: the AE's largest |∂b/∂z₁| in the seed's top rows above the report's gradient
# threshold (a stark transition), brightness per latent unit.


@dataclass(frozen=True)
class Measure:
    """One measure of a claim across seeds.

    ``per_seed``: group label → one value per trained model. ``interval``: of that group's
    mean (one group), or of ``mean(b) − mean(a)`` (two groups, ``groups = (a, b)``).
    ``tally``: the single models (one group) or all K_a × K_b pairings judged one by one.
    """

    label: str
    groups: tuple[str, ...]
    per_seed: dict[str, list[float]]
    interval: Interval
    threshold: Threshold
    verdict: str
    tally: Tally
    unit: str = ""
    scope: str = ""  # where it was measured: MEANT, DRAWN or "embeddings"

    def describe(self) -> str:
        iv, t = self.interval, self.threshold
        what = "single models" if len(self.groups) == 1 else "pairings"
        return (
            f"{self.label}: {iv.mean:.3g}{self.unit} [{iv.low:.3g}, {iv.high:.3g}] "
            f"(confirming side {t.describe()}) → {self.verdict}; {what} {self.tally.confirmed} "
            f"confirm, {self.tally.refuted} refute"
        )


def _one(
    label: str, group: str, values: list[float], threshold: Threshold, unit: str = ""
) -> Measure:
    iv = mean_interval(values)
    return Measure(
        label,
        (group,),
        {group: values},
        iv,
        threshold,
        verdict(iv, threshold),
        tally(values, threshold),
        unit,
    )


def _diff(
    label: str, a: tuple[str, list[float]], b: tuple[str, list[float]], threshold: Threshold
) -> Measure:
    """``mean(b) − mean(a)`` across two groups, judged against ``threshold``."""
    iv = difference_interval(a[1], b[1])
    pairs = pairing_values(a[1], b[1], lambda x, y: y - x)
    return Measure(
        label,
        (a[0], b[0]),
        {a[0]: a[1], b[0]: b[1]},
        iv,
        threshold,
        verdict(iv, threshold),
        tally(pairs.ravel(), threshold),
    )


def _scoped(measures: tuple[Measure, ...] | list[Measure], scope: str) -> tuple[Measure, ...]:
    return tuple(replace(m, scope=scope) for m in measures)


def _count_rule(measures: list[Measure], needed: int) -> str:
    """Confirmed when at least ``needed`` measures are confirmed, refuted when at least
    ``needed`` are refuted, otherwise inconclusive."""
    confirmed = sum(m.verdict == CONFIRMED for m in measures)
    refuted = sum(m.verdict == REFUTED for m in measures)
    if confirmed >= needed:
        return CONFIRMED
    if refuted >= needed:
        return REFUTED
    return INCONCLUSIVE


def _grid(m: ModelMetrics) -> GridMetrics:
    return m.grids[SEED_GRID]


def _emb(m: ModelMetrics) -> EmbeddingMetrics:
    assert m.embedding is not None  # group_unmet checked it
    return m.embedding


def _classes_of(m: ModelMetrics, figure: str) -> tuple[dict[str, float], int, float]:
    """(class shares, classes present, ambiguous share) on ``figure``."""
    g = _grid(m)
    if figure == DRAWN:
        assert g.as_written is not None
        w = g.as_written
        return w.shares, w.classes_present, float(w.ambiguous_share or 0.0)
    assert g.classes is not None
    c = g.classes
    return c.shares, c.classes_present, float(c.ambiguous_share or 0.0)


def _top_rows_of(m: ModelMetrics, figure: str) -> SeedTopRows:
    g = _grid(m)
    if figure == DRAWN:
        assert g.as_written is not None
        return g.as_written.top_rows
    return g.brightness.seed_top_rows


def group_claim_footwear(vae: Group, ae: Group, data_share: float, figure: str) -> list[Finding]:
    """Claim 1 across seeds: against the data, and between the models."""
    va = [footwear_share(_classes_of(m, figure)[0]) for m in vae.metrics]
    aa = [footwear_share(_classes_of(m, figure)[0]) for m in ae.metrics]
    where = FIGURE_WORDS[figure]
    ratio = _one(
        f"{vae.label} footwear share ÷ the data's",
        vae.label,
        [v / data_share for v in va],
        Threshold(FOOTWEAR_CONFIRM_RATIO, ">="),
        "×",
    )
    between = _diff(
        f"{vae.label} − {ae.label} footwear share",
        (ae.label, aa),
        (vae.label, va),
        Threshold(0.0, ">"),
    )
    n = len(vae.metrics)
    first = Finding(
        f"The {vae.label} learns shoes more than other objects ({figure}: {where}).",
        ratio.verdict,
        f"Across {n} {vae.label} seeds the classifier calls footwear (Sandal, Sneaker, Ankle "
        f"boot) {ratio.interval.mean:.2f}× the data's share ({data_share:.3f}); 95 % "
        f"t-interval [{ratio.interval.low:.2f}, {ratio.interval.high:.2f}]. Confirmed only if "
        f"the interval lies wholly at or above {FOOTWEAR_CONFIRM_RATIO:g}×, refuted if wholly "
        f"below. Single models: {ratio.tally.confirmed} of {n} at or above "
        f"{FOOTWEAR_CONFIRM_RATIO:g}×.",
        {
            "mean": ratio.interval.mean,
            "low": ratio.interval.low,
            "high": ratio.interval.high,
            "threshold": FOOTWEAR_CONFIRM_RATIO,
            "data_share": data_share,
        },
        _scoped((ratio,), figure),
    )
    iv = between.interval
    second = Finding(
        f"The {vae.label}'s grid holds more footwear than the {ae.label}'s ({figure}: {where}).",
        between.verdict,
        f"Footwear share {vae.label} {np.mean(va):.3f} vs {ae.label} {np.mean(aa):.3f} (means "
        f"over seeds); the difference {iv.mean:+.3f} has the 95 % Welch interval "
        f"[{iv.low:+.3f}, {iv.high:+.3f}]. Confirmed only if it lies wholly above 0, refuted if "
        f"wholly at or below. {between.tally.confirmed} of {between.tally.total} "
        f"{vae.label}×{ae.label} pairings have the {vae.label} ahead.",
        {"mean": iv.mean, "low": iv.low, "high": iv.high, "threshold": 0.0},
        _scoped((between,), figure),
    )
    return [first, second]


def group_claim_separation(vae: Group, ae: Group, figure: str, named: bool) -> Finding:
    """Claim 2 across seeds: on the four global measures, or on the classes it names."""
    measures = []
    if named:
        for cls in NAMED:
            for key, what in (("knn_recall", "k-NN recall"), ("silhouette_by_class", "silhouette")):
                va = [float(getattr(_emb(m), key)[cls]) for m in vae.metrics]
                vb = [float(getattr(_emb(m), key)[cls]) for m in ae.metrics]
                measures.append(
                    _diff(
                        f"{what} of {cls}, {ae.label} − {vae.label}",
                        (vae.label, va),
                        (ae.label, vb),
                        Threshold(0.0, ">"),
                    )
                )
        needed, of = NAMED_MEASURES_NEEDED, 6
        scope = "on the classes it names (k-NN recall and per-class silhouette)"
    else:
        cls_a = [_classes_of(m, figure) for m in vae.metrics]
        cls_b = [_classes_of(m, figure) for m in ae.metrics]
        table = (
            ("classes present", [float(c[1]) for c in cls_a], [float(c[1]) for c in cls_b], ">"),
            ("ambiguous share", [c[2] for c in cls_a], [c[2] for c in cls_b], "<"),
            (
                "k-NN accuracy",
                [_emb(m).knn_accuracy for m in vae.metrics],
                [_emb(m).knn_accuracy for m in ae.metrics],
                ">",
            ),
            (
                "silhouette",
                [_emb(m).silhouette for m in vae.metrics],
                [_emb(m).silhouette for m in ae.metrics],
                ">",
            ),
        )
        for what, va, vb, side in table:
            measures.append(
                _diff(
                    f"{what}, {ae.label} − {vae.label}",
                    (vae.label, va),
                    (ae.label, vb),
                    Threshold(0.0, side),
                )
            )
        needed, of = GLOBAL_MEASURES_NEEDED, 4
        scope = "on the four global measures"
    result = _count_rule(measures, needed)
    confirmed = sum(m.verdict == CONFIRMED for m in measures)
    refuted = sum(m.verdict == REFUTED for m in measures)
    where = FIGURE_WORDS[figure] if not named else "the test-set embeddings"
    evidence = (
        f"{ae.label} − {vae.label} per measure, 95 % Welch intervals: "
        + "; ".join(
            f"{m.label.split(',')[0]} {m.interval.mean:+.3g} [{m.interval.low:+.3g}, "
            f"{m.interval.high:+.3g}] → {m.verdict} ({m.tally.confirmed}/{m.tally.total} "
            "pairings clearer)"
            for m in measures
        )
        + f". {confirmed} of {of} confirmed, {refuted} refuted; the claim is confirmed at "
        f"{needed} of {of} confirmed, refuted at {needed} of {of} refuted."
    )
    claim = (
        f"The {ae.label} separates shirts, boots and jackets more clearly than the {vae.label}, "
        f"{scope} ({figure if not named else 'embeddings'}: {where})."
    )
    return Finding(
        claim,
        result,
        evidence,
        {
            "confirmed_measures": confirmed,
            "refuted_measures": refuted,
            "needed": needed,
            "measures": of,
        },
        _scoped(measures, "embeddings" if named else figure),
    )


def group_claim_stark(vae: Group, ae: Group, threshold: float, figure: str) -> Finding:
    """Claim 3 across seeds: the AE's largest |∂b/∂z₁| in the seed's top rows."""
    tops_b = [_top_rows_of(m, figure) for m in ae.metrics]
    tops_a = [_top_rows_of(m, figure) for m in vae.metrics]
    vb = [float(t.max_abs_d_dz1 or 0.0) for t in tops_b]
    va = [float(t.max_abs_d_dz1 or 0.0) for t in tops_a]
    m = _one(
        f"{ae.label} largest |∂b/∂z₁| in the top rows",
        ae.label,
        vb,
        Threshold(threshold, ">"),
        " per latent unit",
    )
    ref = mean_interval(va)
    rows = tops_b[0].rows
    iv = m.interval
    evidence = (
        f"In the seed's top rows (the {rows} lowest-z₂ rows, drawn at the top by the seed) the "
        f"{ae.label}'s largest brightness change along z₁ is {iv.mean:.3g} per latent unit "
        f"(95 % t-interval [{iv.low:.3g}, {iv.high:.3g}] over {len(vb)} seeds; "
        f"{vae.label}: {ref.mean:.3g} [{ref.low:.3g}, {ref.high:.3g}]). A stark transition is "
        f"faster than {threshold:g} per latent unit: confirmed only if the interval lies wholly "
        f"above it, refuted if wholly at or below. Single models: {m.tally.confirmed} of "
        f"{m.tally.total} above."
    )
    claim = (
        f"The {ae.label}'s top rows jump from very dark to very bright ({figure}: "
        f"{FIGURE_WORDS[figure]})."
    )
    return Finding(
        claim,
        m.verdict,
        evidence,
        {"mean": iv.mean, "low": iv.low, "high": iv.high, "threshold": threshold},
        _scoped((m,), figure),
    )


def group_unmet(groups: tuple[Group, ...], class_names: tuple[str, ...]) -> str | None:
    """Why the seed study cannot judge these groups (one line), or None."""
    labels = [g.label.upper() for g in groups]
    if labels.count("VAE") != 1 or labels.count("AE") != 1:
        return (
            f"needs two groups labelled VAE and AE, got {[g.label for g in groups]}; "
            "name them with --group VAE=… --group AE=…"
        )
    missing = [c for c in dict.fromkeys((*FOOTWEAR, *NAMED)) if c not in class_names]
    if missing:
        return f"needs Fashion-MNIST's classes; the dataset lacks {missing}"
    for g in groups:
        if len(g.metrics) < 2:
            return f"group {g.label}: {len(g.metrics)} model(s), expected at least 2 seeds"
        for name, m in zip(g.members, g.metrics, strict=True):
            grid = m.grids.get(SEED_GRID)
            if m.embedding is None or not m.embedding.knn_recall:
                return f"group {g.label}: {name} has no encoder; the claims need embeddings"
            if grid is None or grid.as_written is None:
                return f"needs the seed's grid ({SEED_GRID}: --steps 21 --range -4 4)"
            if grid.classes is None or grid.classes.source != "classifier":
                return "needs a classifier (the claims speak of the classes it sees)"
    return None


def judge_groups(
    groups: tuple[Group, ...], data_share: float, gradient_threshold: float
) -> list[Finding]:
    """The seed study's claims on a VAE group and an AE group (see :func:`group_unmet`),
    on the grid the seed meant and on the figure its loop drew."""
    upper = [g.label.upper() for g in groups]
    vae, ae = groups[upper.index("VAE")], groups[upper.index("AE")]
    found: list[Finding] = []
    for figure in (MEANT, DRAWN):
        found += group_claim_footwear(vae, ae, data_share, figure)
        found.append(group_claim_separation(vae, ae, figure, named=False))
        if figure == MEANT:  # embedding measures: the same whichever figure is drawn
            found.append(group_claim_separation(vae, ae, figure, named=True))
        found.append(group_claim_stark(vae, ae, gradient_threshold, figure))
    return found
