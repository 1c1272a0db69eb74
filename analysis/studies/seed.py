"""The seed study's three claims (``shared/seeds/000_*.txt``), judged by the numbers.

The study compared a VAE and an autoencoder on Fashion-MNIST by eye, on a 21×21 grid over
[-4, 4]². Its claims: (1) the VAE learns shoes more than other objects; (2) the AE separates
shirts, boots and jackets more clearly than the VAE; (3) the AE's top rows jump from very dark to
very bright. It needs two models labelled VAE and AE (each with an encoder), a classifier,
Fashion-MNIST's class names, and the seed's grid among the analysed grids.

The rules below were fixed before looking at the shipped models' numbers; each is stated once
here and used on every path (one model per kind, or groups of seeds), and each verdict states
the one it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from latent_atlas.analysis.results import EmbeddingMetrics, GridMetrics, ModelMetrics, SeedTopRows
from latent_atlas.analysis.studies import (
    CONFIRMED,
    NOT_AVAILABLE,
    NOT_SUPPORTED,
    REFUTED,
    Finding,
    Group,
    StudyInput,
)
from latent_atlas.analysis.uncertainty import (
    CANNOT_DISCRIMINATE,
    INCONCLUSIVE,
    Bounds,
    ExactTest,
    Interval,
    Judgement,
    Tally,
    Threshold,
    difference_interval,
    judge_difference,
    judge_one,
    mean_interval,
    pairing_values,
    tally,
)

FOOTWEAR = ("Sandal", "Sneaker", "Ankle boot")
NAMED = ("Shirt", "Ankle boot", "Coat")  # "shirts, boots and jackets"
SEED_GRID = "linear_21x21"

# ---------------------------------------------------------------------------- the rules
# Claim 1: the VAE's grid holds at least 1.25× the data's footwear share (confirmed), or no
# more than the data's own share (refuted); between the two, neither. Between the models: the
# VAE's footwear share above the AE's.
FOOTWEAR_CONFIRM_RATIO, FOOTWEAR_REFUTE_RATIO = 1.25, 1.0
FOOTWEAR_RULE = Threshold(FOOTWEAR_CONFIRM_RATIO, ">=", refute=FOOTWEAR_REFUTE_RATIO)
MORE_FOOTWEAR_RULE = Threshold(0.0, ">")
# Claim 2: each measure's AE − VAE on the clearer side of 0. The claim is confirmed when at
# least this many measures are clearer, refuted when as many are less clear; a measure that
# cannot discriminate (equal in both, e.g. every model at all 10 classes) or is not available
# does not vote. The seed study's own 3 of 4 global measures; 4 of the 6 measures on the named
# classes (k-NN recall and silhouette of each, on the embeddings; area and contiguity of each,
# in the class map).
SEPARATION_CONFIRM_WINS = 3
GLOBAL_MEASURES_NEEDED = SEPARATION_CONFIRM_WINS  # of 4
NAMED_MEASURES_NEEDED = 4  # of 6
# Claim 3: the AE's largest brightness change along z₀ in the seed's top rows, |∂b/∂z₀| in
# brightness per latent unit, faster than the report's gradient threshold (a stark
# transition): confirmed above it, refuted at or below it; not available when not measured.


def stark_rule(gradient_threshold: float) -> Threshold:
    return Threshold(gradient_threshold, ">")


def rules_text(gradient_threshold: float) -> list[str]:
    """The verdict rules in words, one line per claim (the report's method section)."""
    return [
        f"Claim 1: the VAE's footwear share (Sandal, Sneaker, Ankle boot) of the grid's cells "
        f"÷ the data's is confirmed at ≥ {FOOTWEAR_CONFIRM_RATIO:g}×, refuted at ≤ "
        f"{FOOTWEAR_REFUTE_RATIO:g}× (no more footwear than the data), neither in between; "
        "between the models, confirmed when the VAE's share is above the AE's.",
        f"Claim 2: each measure's AE − VAE on the clearer side of 0; confirmed when "
        f"{GLOBAL_MEASURES_NEEDED} of the 4 global measures (or {NAMED_MEASURES_NEEDED} of the 6 "
        f"named-class measures) are clearer, refuted when as many are less clear; a measure "
        "that cannot discriminate or is not available does not vote.",
        f"Claim 3: the AE's largest |∂b/∂z₀| in the seed's top rows faster than "
        f"{gradient_threshold:g} per latent unit: confirmed above, refuted at or below; not "
        "available when it was not measured.",
    ]


BASIS_CELLS = "the classifier's labels of the grid's decoded cells"
BASIS_EMBEDDINGS = "the test-set embeddings (k-NN recall and silhouette of each named class)"
BASIS_MAP = "the class map of the grid (each named class's area and contiguity)"
BASIS_GLOBAL = (
    "the classifier's labels of the grid's decoded cells (classes present, ambiguous share) "
    "and the test-set embeddings (k-NN accuracy, silhouette)"
)
BASIS_BRIGHTNESS = "the brightness of the grid's decoded cells in the seed's top rows"


def _f(v: float) -> str:
    return f"{v:.3f}"


def footwear_share(shares: dict[str, float]) -> float:
    return float(sum(shares.get(c, 0.0) for c in FOOTWEAR))


def footwear_point_verdict(ratio: float) -> str:
    """Claim 1 on one model, by :data:`FOOTWEAR_RULE`."""
    if FOOTWEAR_RULE.holds(ratio):
        return CONFIRMED
    return REFUTED if FOOTWEAR_RULE.refutes(ratio) else NOT_SUPPORTED


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
    verdict = footwear_point_verdict(ratio)
    evidence = (
        f"{name_a}: the classifier calls {_f(ga)} of the grid's cells footwear (Sandal, Sneaker, "
        f"Ankle boot) against {_f(data_share)} of the data ({ratio:.2f}×); its largest class is "
        f"{top} ({_f(shares[top])}). Confirmed at ≥ {FOOTWEAR_CONFIRM_RATIO:g}×, refuted at ≤ "
        f"{FOOTWEAR_REFUTE_RATIO:g}×."
    )
    summary = (
        f"{verdict.capitalize()}: the {name_a}'s footwear share is {ratio:.2f}× the data's; the "
        f"claim needs ≥ {FOOTWEAR_CONFIRM_RATIO:g}× and is refuted at ≤ {FOOTWEAR_REFUTE_RATIO:g}×."
    )
    return Finding(f"The {name_a} learns shoes more than other objects.", verdict, evidence,
                   figures, basis=BASIS_CELLS, summary=summary)  # fmt: skip


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
    # a tie (both at all 10 classes) tells the models apart on nothing: it does not vote
    wins = sum((vb > va) if higher else (vb < va) for vb, va, higher in tests.values())  # type: ignore[operator]
    losses = sum((vb < va) if higher else (vb > va) for vb, va, higher in tests.values())  # type: ignore[operator]
    ties = len(tests) - wins - losses
    if wins >= SEPARATION_CONFIRM_WINS:
        verdict = CONFIRMED
    elif losses >= SEPARATION_CONFIRM_WINS:
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
        f"{name_b} is clearer on {wins} of 4 measures, less clear on {losses}"
        + (f", tied on {ties} (no vote)" if ties else "")
        + ": "
        + "; ".join(parts)
        + ". Grid shares "
        + ", ".join(
            f"{c} {figures[f'share_{c}_{name_b}']:.3f} vs {figures[f'share_{c}_{name_a}']:.3f}"
            for c in NAMED
        )
        + f". Confirmed when ≥ {SEPARATION_CONFIRM_WINS} of 4 are clearer, refuted when ≥ "
        f"{SEPARATION_CONFIRM_WINS} are less clear; a tie does not vote."
    )
    summary = (
        f"{verdict.capitalize()}: the {name_b} is clearer on {wins} of 4 measures and less "
        f"clear on {losses}; the claim needs {SEPARATION_CONFIRM_WINS} either way."
    )
    claim = f"The {name_b} separates shirts, boots and jackets more clearly than the {name_a}."
    return Finding(claim, verdict, evidence, figures, basis=BASIS_GLOBAL, summary=summary)


def claim_stark(
    grid_a: GridMetrics, grid_b: GridMetrics, threshold: float, name_a: str, name_b: str
) -> Finding:
    """Claim 3: the AE's top rows jump from very dark to very bright (:func:`stark_rule`)."""
    ta, tb = grid_a.brightness.seed_top_rows, grid_b.brightness.seed_top_rows
    rule = stark_rule(threshold)
    figures = {
        f"max_abs_d_dz1_top_rows_{name_b}": tb.max_abs_d_dz1,
        f"max_abs_d_dz1_top_rows_{name_a}": ta.max_abs_d_dz1,
        f"stark_share_top_rows_{name_b}": tb.stark_share_d_dz1,
        f"stark_share_top_rows_{name_a}": ta.stark_share_d_dz1,
        f"mean_abs_d_dz1_top_rows_{name_b}": tb.mean_abs_d_dz1,
        f"mean_abs_d_dz1_top_rows_{name_a}": ta.mean_abs_d_dz1,
        f"max_row_range_{name_b}": tb.max_row_brightness_range,
        "threshold": threshold,
    }
    claim = f"The {name_b}'s top rows jump from very dark to very bright."
    if tb.max_abs_d_dz1 is None:
        why = f"{name_b}'s largest |∂b/∂z₀| in the top rows was not measured"
        return Finding(claim, NOT_AVAILABLE, f"Not available: {why}.", figures,  # type: ignore[arg-type]
                       basis=BASIS_BRIGHTNESS, summary=f"Not available: {why}.")  # fmt: skip
    mb = tb.max_abs_d_dz1
    verdict = CONFIRMED if rule.holds(mb) else REFUTED
    va = "not measured" if ta.max_abs_d_dz1 is None else f"{ta.max_abs_d_dz1:.3g}"
    evidence = (
        f"In the seed's top rows (the {tb.rows} lowest-z₁ rows, drawn at the top by the seed), "
        f"{name_b}'s largest brightness change along z₀ is {mb:.3g} per latent unit ({name_a}: "
        f"{va}); {_f(tb.stark_share_d_dz1)} of its cells there change faster than "
        f"{threshold:g} (mean |∂b/∂z₀| {tb.mean_abs_d_dz1:.3g}); the widest dark-to-bright "
        f"range within one of those rows is {tb.max_row_brightness_range:.3g}. Confirmed when "
        f"the largest change is faster than {threshold:g}, refuted at or below."
    )
    summary = (
        f"{verdict.capitalize()}: the {name_b}'s largest brightness change along z₀ in the top "
        f"rows is {mb:.3g} per latent unit; a stark jump needs > {threshold:g}."
    )
    return Finding(claim, verdict, evidence, figures, basis=BASIS_BRIGHTNESS,  # type: ignore[arg-type]
                   summary=summary)  # fmt: skip


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
# (analysis.uncertainty: Student t for one group, on the logit or log scale for a bounded
# measure; Welch for the difference of two), by the rules above, with an exact test over the
# seeds beside it — once on the grid the seed meant (the correct 21×21 grid) and once on the
# figure its loop drew (one column, analysis.seed_figure).
MEANT, DRAWN = "meant", "drawn"
FIGURE_WORDS = {
    MEANT: "the grid the seed meant (21×21 over [-4, 4]², every cell)",
    DRAWN: "the figure the seed's loop drew (only the z₀ = 4 column, z₁ = −4 at the top)",
}
RULE_KINDS = ("one group", "difference", "3 of 4", "4 of 6")  # see analysis.error_rates


@dataclass(frozen=True)
class Measure:
    """One measure of a claim across seeds.

    ``per_seed``: group label → one value per trained model. ``interval``: of that group's
    mean (one group), or of ``mean(b) − mean(a)`` (two groups, ``groups = (a, b)``).
    ``test``: the exact test beside it (sign-flip or permutation); ``basis``: what decided the
    verdict (``interval``, ``exact test (no spread)``, ``tie`` or ``not available``).
    ``tally``: the single models (one group) or all K_a × K_b pairings judged one by one.
    """

    label: str
    groups: tuple[str, ...]
    per_seed: dict[str, list[float]]
    interval: Interval | None  # None: not available
    threshold: Threshold
    verdict: str
    tally: Tally
    unit: str = ""
    scope: str = ""  # where it was measured: MEANT, DRAWN, "embeddings" or "class map"
    test: ExactTest | None = None
    basis: str = "interval"

    @property
    def votes(self) -> bool:
        """Whether it counts in a claim's tally (a tie or a missing value does not)."""
        return self.verdict not in (CANNOT_DISCRIMINATE, NOT_AVAILABLE)

    @property
    def disagree(self) -> bool:
        """Whether the exact test comes out otherwise than the verdict given."""
        return (self.test is not None and self.verdict not in (CANNOT_DISCRIMINATE, NOT_AVAILABLE)
                and self.test.verdict != self.verdict)  # fmt: skip

    def interval_text(self) -> str:
        iv = self.interval
        if iv is None:
            return NOT_AVAILABLE
        scale = "" if iv.method in ("t", "welch") else f" ({iv.method.split(', ')[1]})"
        return f"{iv.centre:.3g}{self.unit} [{iv.low:.3g}, {iv.high:.3g}]{scale}"

    def test_text(self) -> str:
        t = self.test
        if t is None:
            return ""
        return (f"{t.method} test over {t.arrangements} arrangements: p = {t.p_confirm:.3g} "
                f"towards confirming, {t.p_refute:.3g} towards refuting → {t.verdict}")  # fmt: skip

    def describe(self) -> str:
        what = "single models" if len(self.groups) == 1 else "pairings"
        return (
            f"{self.label}: {self.interval_text()} (confirming side "
            f"{self.threshold.describe()}) → {self.verdict}; {what} {self.tally.confirmed} "
            f"confirm, {self.tally.refuted} refute; {self.test_text()}"
        )


def _from(label: str, groups: dict[str, list[float]], threshold: Threshold, j: Judgement,
          t: Tally, unit: str = "") -> Measure:  # fmt: skip
    return Measure(label, tuple(groups), groups, j.interval, threshold, j.verdict, t, unit,
                   test=j.test, basis=j.basis)  # fmt: skip


def _one(label: str, group: str, values: list[float], threshold: Threshold,
         bounds: Bounds | None = None, unit: str = "") -> Measure:  # fmt: skip
    j = judge_one(values, threshold, bounds)
    return _from(label, {group: values}, threshold, j, tally(values, threshold), unit)


def _diff(
    label: str, a: tuple[str, list[float]], b: tuple[str, list[float]], threshold: Threshold
) -> Measure:
    """``mean(b) − mean(a)`` across two groups, judged against ``threshold``."""
    j = judge_difference(a[1], b[1], threshold)
    pairs = pairing_values(a[1], b[1], lambda x, y: y - x)
    return _from(label, {a[0]: a[1], b[0]: b[1]}, threshold, j, tally(pairs.ravel(), threshold))


def _missing(label: str, groups: dict[str, list[float | None]], threshold: Threshold) -> Measure:
    """A measure some member lacks: not available, no interval, no vote."""
    return Measure(label, tuple(groups), groups, None, threshold, NOT_AVAILABLE, Tally(0, 0),  # type: ignore[arg-type]
                   basis=NOT_AVAILABLE)  # fmt: skip


def _scoped(measures: tuple[Measure, ...] | list[Measure], scope: str) -> tuple[Measure, ...]:
    return tuple(replace(m, scope=scope) for m in measures)


def _count_rule(measures: list[Measure], needed: int) -> str:
    """Confirmed when at least ``needed`` measures are confirmed, refuted when at least
    ``needed`` are refuted, otherwise inconclusive (a measure that cannot discriminate or is
    not available is neither)."""
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


def _classes_of(m: ModelMetrics, figure: str) -> tuple[dict[str, float], int, float, int]:
    """(class shares, classes present, ambiguous share, cells) on ``figure``."""
    g = _grid(m)
    if figure == DRAWN:
        assert g.as_written is not None
        w = g.as_written
        return w.shares, w.classes_present, float(w.ambiguous_share or 0.0), w.drawn_cells
    assert g.classes is not None
    c = g.classes
    return c.shares, c.classes_present, float(c.ambiguous_share or 0.0), g.cells


def _top_rows_of(m: ModelMetrics, figure: str) -> SeedTopRows:
    g = _grid(m)
    if figure == DRAWN:
        assert g.as_written is not None
        return g.as_written.top_rows
    return g.brightness.seed_top_rows


def _tests_note(measures: list[Measure] | tuple[Measure, ...]) -> str:
    """Where the exact tests come out otherwise than the verdicts, in words ("" if nowhere)."""
    off = [m for m in measures if m.disagree]
    if not off:
        return " The exact tests agree with every verdict."
    parts = []
    for m in off:
        assert m.test is not None
        why = (f" (with {m.test.arrangements} arrangements its smallest p is "
               f"{m.test.smallest_p:.3g}, above {m.test.alpha:g}: it cannot decide)"
               if m.test.smallest_p > m.test.alpha else "")  # fmt: skip
        parts.append(f"{m.label.split(',')[0]}: {m.test.method} test {m.test.verdict}{why}")
    return " The exact test disagrees on " + "; ".join(parts) + "."


def group_claim_footwear(vae: Group, ae: Group, data_share: float, figure: str) -> list[Finding]:
    """Claim 1 across seeds (:data:`FOOTWEAR_RULE`): against the data, and between the models
    (:data:`MORE_FOOTWEAR_RULE`)."""
    cls_v = [_classes_of(m, figure) for m in vae.metrics]
    cls_a = [_classes_of(m, figure) for m in ae.metrics]
    va = [footwear_share(c[0]) for c in cls_v]
    aa = [footwear_share(c[0]) for c in cls_a]
    where = FIGURE_WORDS[figure]
    cells = min(c[3] for c in cls_v)
    # a share of the grid's cells lies in [0, 1], so the ratio in [0, 1/data share]; its
    # resolution is one cell
    bounds = Bounds(0.0, 1.0 / data_share, step=1.0 / (cells * data_share))
    ratio = _one(f"{vae.label} footwear share ÷ the data's", vae.label,
                 [v / data_share for v in va], FOOTWEAR_RULE, bounds, "×")  # fmt: skip
    between = _diff(f"{vae.label} − {ae.label} footwear share", (ae.label, aa),
                    (vae.label, va), MORE_FOOTWEAR_RULE)  # fmt: skip
    n = len(vae.metrics)
    iv = ratio.interval
    assert iv is not None
    first = Finding(
        f"The {vae.label} learns shoes more than other objects ({figure}: {where}).",
        ratio.verdict,
        f"Across {n} {vae.label} seeds the classifier calls footwear (Sandal, Sneaker, Ankle "
        f"boot) {iv.mean:.2f}× the data's share ({data_share:.3f}) on average; the typical "
        f"seed {iv.centre:.2f}× with the 95 % t-interval on the logit scale [{iv.low:.2f}, "
        f"{iv.high:.2f}]. Confirmed only if the interval lies wholly at or above "
        f"{FOOTWEAR_CONFIRM_RATIO:g}×, refuted if wholly at or below {FOOTWEAR_REFUTE_RATIO:g}×"
        + (
            " (no spread across the seeds: decided by the exact test)"
            if ratio.basis != "interval"
            else ""
        )
        + f". Single models: {ratio.tally.confirmed} of {n} at or above "
        f"{FOOTWEAR_CONFIRM_RATIO:g}×, {ratio.tally.refuted} at or below "
        f"{FOOTWEAR_REFUTE_RATIO:g}×." + _tests_note([ratio]),
        {
            "mean": iv.mean,
            "estimate": iv.centre,
            "low": iv.low,
            "high": iv.high,
            "threshold": FOOTWEAR_CONFIRM_RATIO,
            "refute_threshold": FOOTWEAR_REFUTE_RATIO,
            "data_share": data_share,
        },  # fmt: skip
        _scoped((ratio,), figure),
        basis=BASIS_CELLS,
        label=f"1 · {vae.label} footwear ÷ the data's ({figure})",
        summary=(
            f"{ratio.verdict.capitalize()}: the {vae.label}'s footwear share is {iv.centre:.2f}× "
            f"the data's [{iv.low:.2f}, {iv.high:.2f}]; the claim needs ≥ "
            f"{FOOTWEAR_CONFIRM_RATIO:g}× and is refuted at ≤ {FOOTWEAR_REFUTE_RATIO:g}×."
        ),
    )
    bv = between.interval
    assert bv is not None
    second = Finding(
        f"The {vae.label}'s grid holds more footwear than the {ae.label}'s ({figure}: {where}).",
        between.verdict,
        f"Footwear share {vae.label} {np.mean(va):.3f} vs {ae.label} {np.mean(aa):.3f} (means "
        f"over seeds); the difference {bv.mean:+.3f} has the 95 % Welch interval "
        f"[{bv.low:+.3f}, {bv.high:+.3f}]"
        + ("" if between.basis == "interval" else f" ({between.basis})")
        + f". Confirmed only if it lies wholly above 0, refuted if wholly at or below. "
        f"{between.tally.confirmed} of {between.tally.total} {vae.label}×{ae.label} pairings "
        f"have the {vae.label} ahead." + _tests_note([between]),
        {"mean": bv.mean, "low": bv.low, "high": bv.high, "threshold": 0.0},
        _scoped((between,), figure),
        basis=BASIS_CELLS,
        label=f"1 · {vae.label} − {ae.label} footwear share ({figure})",
        summary=(
            f"{between.verdict.capitalize()}: the {vae.label}'s footwear share minus the "
            f"{ae.label}'s is {bv.mean:+.3f} [{bv.low:+.3f}, {bv.high:+.3f}]; the claim needs "
            "> 0."
        ),
    )
    return [first, second]


NAMED_SCOPE = "named"  # claim 2 on the named classes, in the embeddings
MAP_SCOPE = "class map"  # claim 2 on the named classes, in the grid's class map


def _named_measures(vae: Group, ae: Group) -> list[Measure]:
    out = []
    for cls in NAMED:
        for key, what in (("knn_recall", "k-NN recall"), ("silhouette_by_class", "silhouette")):
            va = [getattr(_emb(m), key).get(cls) for m in vae.metrics]
            vb = [getattr(_emb(m), key).get(cls) for m in ae.metrics]
            out.append(_pair_measure(f"{what} of {cls}, {ae.label} − {vae.label}", vae.label,
                                     va, ae.label, vb, ">"))  # fmt: skip
    return out


def _map_measures(vae: Group, ae: Group) -> list[Measure]:
    out = []
    for cls in NAMED:
        for what in ("area", "contiguity"):

            def value(m: ModelMetrics, cls: str = cls, what: str = what) -> float | None:
                c = _grid(m).classes
                assert c is not None
                return c.shares.get(cls) if what == "area" else c.contiguity.get(cls)

            out.append(_pair_measure(
                f"{what} of {cls} in the class map, {ae.label} − {vae.label}", vae.label,
                [value(m) for m in vae.metrics], ae.label, [value(m) for m in ae.metrics], ">",
            ))  # fmt: skip
    return out


def _pair_measure(label: str, name_a: str, va: list[float | None], name_b: str,
                  vb: list[float | None], side: str) -> Measure:  # fmt: skip
    rule = Threshold(0.0, side)
    if any(v is None for v in (*va, *vb)):
        return _missing(label, {name_a: va, name_b: vb}, rule)
    fa = [float(v) for v in va if v is not None]
    fb = [float(v) for v in vb if v is not None]
    return _diff(label, (name_a, fa), (name_b, fb), rule)


def group_claim_separation(vae: Group, ae: Group, figure: str, named: bool | str) -> Finding:
    """Claim 2 across seeds: on the four global measures (``named`` False), on the classes it
    names in the test-set embeddings (``named`` True or ``"embeddings"``), or on the named
    classes' area and contiguity in the grid's class map (``named == "class map"``)."""
    reading = MAP_SCOPE if named == MAP_SCOPE else ("embeddings" if named else "global")
    if reading == "embeddings":
        measures = _named_measures(vae, ae)
        needed, of = NAMED_MEASURES_NEEDED, 6
        scope = "on the classes it names (k-NN recall and per-class silhouette)"
        basis, where, tag = BASIS_EMBEDDINGS, "the test-set embeddings", "embeddings"
    elif reading == MAP_SCOPE:
        measures = _map_measures(vae, ae)
        needed, of = NAMED_MEASURES_NEEDED, 6
        scope = "on the classes it names (their area and contiguity in the class map)"
        basis, where, tag = BASIS_MAP, FIGURE_WORDS[MEANT], MAP_SCOPE
    else:
        cls_a = [_classes_of(m, figure) for m in vae.metrics]
        cls_b = [_classes_of(m, figure) for m in ae.metrics]
        table = (
            ("classes present", [float(c[1]) for c in cls_a], [float(c[1]) for c in cls_b], ">"),
            ("ambiguous share", [c[2] for c in cls_a], [c[2] for c in cls_b], "<"),
            ("k-NN accuracy", [_emb(m).knn_accuracy for m in vae.metrics],
             [_emb(m).knn_accuracy for m in ae.metrics], ">"),
            ("silhouette", [_emb(m).silhouette for m in vae.metrics],
             [_emb(m).silhouette for m in ae.metrics], ">"),
        )  # fmt: skip
        measures = [
            _pair_measure(f"{what}, {ae.label} − {vae.label}", vae.label, va, ae.label, vb, side)  # type: ignore[arg-type]
            for what, va, vb, side in table
        ]
        needed, of = GLOBAL_MEASURES_NEEDED, 4
        scope = "on the four global measures"
        basis, where, tag = BASIS_GLOBAL, FIGURE_WORDS[figure], figure
    result = _count_rule(measures, needed)
    confirmed = sum(m.verdict == CONFIRMED for m in measures)
    refuted = sum(m.verdict == REFUTED for m in measures)
    silent = [m for m in measures if m.verdict in (CANNOT_DISCRIMINATE, NOT_AVAILABLE)]
    evidence = (
        f"{ae.label} − {vae.label} per measure, 95 % Welch intervals: "
        + "; ".join(_measure_phrase(m) for m in measures)
        + f". {confirmed} of {of} confirmed, {refuted} refuted"
        + (f", {len(silent)} without a vote" if silent else "")
        + f"; the claim is confirmed at {needed} of {of} confirmed, refuted at {needed} of "
        f"{of} refuted." + _tests_note(measures)
    )
    claim = (
        f"The {ae.label} separates shirts, boots and jackets more clearly than the {vae.label}, "
        f"{scope} ({tag}: {where})."
    )
    summary = (
        f"{result.capitalize()}: the {ae.label} is clearer on {confirmed} of {of} measures "
        f"and less clear on {refuted}"
        + (f" ({len(silent)} cannot vote)" if silent else "")
        + f"; the claim needs {needed} either way."
    )
    return Finding(
        claim,
        result,
        evidence,
        {
            "confirmed_measures": confirmed,
            "refuted_measures": refuted,
            "silent_measures": len(silent),
            "needed": needed,
            "measures": of,
        },
        _scoped(measures, tag),
        basis=basis,
        summary=summary,
        label=f"2 · {ae.label} clearer: "
        + {
            "embeddings": "named classes, embeddings",
            MAP_SCOPE: "named classes, class map (meant)",
        }.get(tag, f"4 global measures ({figure})"),
    )


def _measure_phrase(m: Measure) -> str:
    name = m.label.split(",")[0]
    if m.verdict == NOT_AVAILABLE:
        return f"{name} not available (a model has no value: no vote)"
    iv = m.interval
    assert iv is not None
    if m.verdict == CANNOT_DISCRIMINATE:
        return f"{name} equal on every seed of both groups ({iv.mean:+.3g}): cannot discriminate"
    extra = "" if m.basis == "interval" else f", {m.basis}"
    return (f"{name} {iv.mean:+.3g} [{iv.low:+.3g}, {iv.high:+.3g}] → {m.verdict}{extra} "
            f"({m.tally.confirmed}/{m.tally.total} pairings clearer)")  # fmt: skip


def group_claim_stark(vae: Group, ae: Group, threshold: float, figure: str) -> Finding:
    """Claim 3 across seeds (:func:`stark_rule`): the AE's largest |∂b/∂z₀| in the seed's top
    rows, a non-negative measure (its interval on the log scale)."""
    tops_b = [_top_rows_of(m, figure) for m in ae.metrics]
    tops_a = [_top_rows_of(m, figure) for m in vae.metrics]
    rule = stark_rule(threshold)
    label = f"{ae.label} largest |∂b/∂z₀| in the top rows"
    claim = (
        f"The {ae.label}'s top rows jump from very dark to very bright ({figure}: "
        f"{FIGURE_WORDS[figure]})."
    )
    raw_b = [t.max_abs_d_dz1 for t in tops_b]
    if any(v is None for v in raw_b):
        missing = [n for n, v in zip(ae.members, raw_b, strict=True) if v is None]
        m = _missing(label, {ae.label: raw_b}, rule)
        why = f"the largest |∂b/∂z₀| in the top rows was not measured for {', '.join(missing)}"
        return Finding(claim, NOT_AVAILABLE, f"Not available: {why}.", {"threshold": threshold},
                       _scoped((m,), figure), basis=BASIS_BRIGHTNESS,
                       summary=f"Not available: {why}.")  # fmt: skip
    vb = [float(v) for v in raw_b if v is not None]
    m = _one(label, ae.label, vb, rule, Bounds(0.0, None), " per latent unit")
    va = [t.max_abs_d_dz1 for t in tops_a if t.max_abs_d_dz1 is not None]
    ref = (f"{vae.label}: {np.mean(va):.3g} on average" if len(va) == len(tops_a)
           else f"{vae.label}: not measured")  # fmt: skip
    rows = tops_b[0].rows
    iv = m.interval
    assert iv is not None
    evidence = (
        f"In the seed's top rows (the {rows} lowest-z₁ rows, drawn at the top by the seed) the "
        f"{ae.label}'s largest brightness change along z₀ is {iv.mean:.3g} per latent unit on "
        f"average over {len(vb)} seeds; the typical seed {iv.centre:.3g} with the 95 % "
        f"t-interval on the log scale [{iv.low:.3g}, {iv.high:.3g}] ({ref}). A stark "
        f"transition is faster than {threshold:g} per latent unit: confirmed only if the "
        f"interval lies wholly above it, refuted if wholly at or below"
        + ("" if m.basis == "interval" else " (no spread across the seeds: the exact test decides)")
        + f". Single models: {m.tally.confirmed} of {m.tally.total} above."
        + _tests_note([m])
    )
    summary = (
        f"{m.verdict.capitalize()}: the {ae.label}'s largest brightness change along z₀ in the "
        f"top rows is {iv.centre:.3g} [{iv.low:.3g}, {iv.high:.3g}] per latent unit; a stark "
        f"jump needs > {threshold:g}."
    )
    return Finding(
        claim,
        m.verdict,
        evidence,
        {
            "mean": iv.mean,
            "estimate": iv.centre,
            "low": iv.low,
            "high": iv.high,
            "threshold": threshold,
        },  # fmt: skip
        _scoped((m,), figure),
        basis=BASIS_BRIGHTNESS,
        summary=summary,
        label=f"3 · {ae.label} largest |∂b/∂z₀|, top rows ({figure})",
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
            # the seed judged claim 2 by looking at the grid: the named classes in its class map
            found.append(group_claim_separation(vae, ae, figure, named=MAP_SCOPE))
        found.append(group_claim_stark(vae, ae, gradient_threshold, figure))
    return with_geometry(found, geometry_readings(vae, ae))


# ---------------------------------------------------------------------------- geometry readings
# The decoder's geometry (latent_atlas.geometry: the pullback metric of each seed's decoder on
# the first grid) read beside each claim. Supplementary: no verdict rule reads it, and the
# readings are attached after the verdicts are reached (``with_geometry``).
GEOMETRY_NOTE = "supplementary: the verdict rules above do not read it"
_SEPARATION_WORDS = (
    "geodesic separation (mean geodesic distance between the centroids of the test codes over "
    "their mean geodesic distance from their own centroid, on a graph of decoded images)"
)


def _geometry_values(group: Group, get: object) -> list[float] | None:
    """One value per seed of ``get(geometry)``, or None when a seed lacks it (not measured,
    or another grid than the others)."""
    geoms = [m.geometry for m in group.metrics]
    if any(g is None for g in geoms) or len({g.grid for g in geoms if g is not None}) != 1:
        return None
    values = []
    for g in geoms:
        try:
            v = get(g)  # type: ignore[operator]
        except KeyError:
            return None
        if v is None or not math.isfinite(v):
            return None
        values.append(float(v))
    return values


def _iv(values: list[float]) -> str:
    iv = mean_interval(values)
    return f"{iv.mean:.3g} [{iv.low:.3g}, {iv.high:.3g}]"


def _diff_iv(a: list[float], b: list[float]) -> str:
    iv = difference_interval(a, b)
    return f"{iv.mean:+.3g} [{iv.low:+.3g}, {iv.high:+.3g}]"


def _separation_reading(vae: Group, ae: Group, key: str, what: str, higher: str) -> str:
    va = _geometry_values(vae, lambda g: g.separation[key].ratio)
    vb = _geometry_values(ae, lambda g: g.separation[key].ratio)
    if va is None or vb is None:
        return ""
    return (
        f"Geometry reading ({GEOMETRY_NOTE}): the {_SEPARATION_WORDS} of {what} is "
        f"{vae.label} {_iv(va)}, {ae.label} {_iv(vb)} (mean [95 % t-interval] over the seeds); "
        f"{ae.label} − {vae.label} {_diff_iv(va, vb)} (Welch). {higher}"
    )


def geometry_readings(vae: Group, ae: Group) -> dict[str, str]:
    """The decoder geometry's reading of each claim (keys ``"1"``, ``"2"``, ``"3"``), where
    every seed of both groups has its geometry measured on the same grid; "" otherwise.

    Claim 1: the geodesic separation of footwear from the rest; claim 2: that of the named
    classes (Shirt, Coat, Ankle boot); claim 3: the share of the grid's image-space length in
    the seed's top rows (even stretching: rows / ny) and the magnification's median and 95th
    percentile. Each a mean with its 95 % t-interval across the seeds, as the metrics across
    seeds are shown.
    """
    out = {
        "1": _separation_reading(vae, ae, "footwear", "footwear (Sandal, Sneaker, Ankle boot) "
                                 "against the other classes",
                                 "Higher: footwear lies further from the rest than it spreads."),
        "2": _separation_reading(vae, ae, "named", "the named classes (Shirt, Coat, Ankle "
                                 "boot)", "Higher: the named classes lie further apart than "
                                 "they spread, i.e. more clearly separated."),
        "3": "",
    }  # fmt: skip
    share = _geometry_values(ae, lambda g: g.top_rows_length_share)
    share_v = _geometry_values(vae, lambda g: g.top_rows_length_share)
    med = _geometry_values(ae, lambda g: g.magnification_median)
    p95 = _geometry_values(ae, lambda g: g.magnification_p95)
    first = next((m.geometry for m in ae.metrics if m.geometry is not None), None)
    if share is not None and share_v is not None and med is not None and p95 is not None:
        assert first is not None
        rows, ny = first.top_rows, first.grid_rows
        even = f" (an even stretching puts {rows / ny:.3g} there)" if ny else ""
        out["3"] = (
            f"Geometry reading ({GEOMETRY_NOTE}): the share of the grid's total image-space "
            f"length (every grid step along both axes) in the seed's {rows} top rows is "
            f"{ae.label} {_iv(share)}, {vae.label} {_iv(share_v)}{even}; the {ae.label}'s "
            f"magnification √det G (image units² per latent unit²) has median {_iv(med)} and "
            f"95th percentile {_iv(p95)} over the grid (mean [95 % t-interval] over the seeds)."
        )
    return out


def with_geometry(findings: list[Finding], readings: dict[str, str]) -> list[Finding]:
    """``findings`` with each claim's geometry reading on its first finding (the grid the seed
    meant); verdicts, evidence and measures unchanged."""
    out, seen = [], set()
    for f in findings:
        number = f.label.split(" ", 1)[0]
        if number in readings and readings[number] and number not in seen:
            seen.add(number)
            f = replace(f, geometry=readings[number])
        out.append(f)
    return out
