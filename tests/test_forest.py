"""The forest plot of the claims: valid SVG with one row per claim and reading, one per
measure of a multi-measure claim, bars in the verdict's colour, the threshold and the shaded
confirming side where they belong."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
from latent_atlas.analysis.forest import STRIP_X0, STRIP_X1, forest_svg
from latent_atlas.analysis.studies.seed import MEANT, group_claim_footwear, judge_groups
from test_seed_groups import DATA_SHARE, JITTER, _group, _same

NS = "{http://www.w3.org/2000/svg}"


def _findings():
    vae = _group("VAE", [dict(footwear=0.42 + j, top_max=0.05 + j) for j in JITTER])
    ae = _group("AE", [dict(footwear=0.3 + j, top_max=0.4 + j, knn=0.8 + j) for j in JITTER])
    return judge_groups((vae, ae), DATA_SHARE, 0.25)


def test_one_row_per_claim_and_reading_and_per_measure():
    found = _findings()
    root = ET.fromstring(forest_svg(found))
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert sum(t == f.label for f in found for t in texts) == len(found) == 10
    measures = sum(len(f.measures) for f in found if len(f.measures) > 1)
    verdict_words = [t for t in texts if t in ("confirmed", "refuted", "inconclusive",
                                               "cannot discriminate", "not available")]  # fmt: skip
    assert len(verdict_words) == len(found) + measures


def test_the_bar_has_the_verdicts_colour_and_the_confirming_side_is_shaded():
    vae = _group("VAE", [dict(footwear=r * DATA_SHARE) for r in (1.30, 1.32, 1.35, 1.31, 1.33)])
    against, _ = group_claim_footwear(vae, _same("AE"), DATA_SHARE, MEANT)
    svg = forest_svg([against])
    root = ET.fromstring(svg)
    bars = [e for e in root.iter(f"{NS}line") if e.get("stroke-width") == "4"]
    assert len(bars) == 1 and "--ok" in bars[0].get("stroke", "")  # confirmed: green
    # ">= 1.25": the shade runs from the threshold line to the right end of the strip
    (shade,) = [e for e in root.iter(f"{NS}rect")]
    (line,) = [e for e in root.iter(f"{NS}line") if e.get("stroke") == "currentColor"
               and e.get("stroke-dasharray") is None]  # fmt: skip
    x0, w = float(shade.get("x")), float(shade.get("width"))
    assert x0 == float(line.get("x1")) and x0 + w == STRIP_X1 and STRIP_X0 < x0
    # the interval lies right of the threshold, the refuting edge (1×) dashed left of it
    assert float(bars[0].get("x1")) > x0
    dashed = [e for e in root.iter(f"{NS}line") if e.get("stroke-dasharray")]
    assert len(dashed) == 1 and float(dashed[0].get("x1")) < x0
    assert len(list(root.iter(f"{NS}circle"))) == 5  # one dot per seed


def test_dots_are_pairings_for_a_difference():
    found = _findings()
    between = found[1]
    root = ET.fromstring(forest_svg([between]))
    assert len(list(root.iter(f"{NS}circle"))) == 25  # 5 × 5 pairings
    assert not re.search(r"nan|inf", forest_svg(found))
    assert np.isfinite([float(c.get("cx")) for c in root.iter(f"{NS}circle")]).all()
