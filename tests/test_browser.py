"""Open a generated report in real headless Chromium (Debian's package, driven by Playwright)
and check that every figure loaded and the metrics table is there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = REPO / "build" / "screenshots" / "report.png"


@pytest.mark.browser
@pytest.mark.real_data
def test_report_renders_in_chromium(real_report):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium missing: `make test` installs the Debian package chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed_requests: list[str] = []
        page.on("requestfailed", lambda r: failed_requests.append(r.url))
        page.goto((real_report / "report.html").as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])"
        )
        rows = page.eval_on_selector_all("#metrics-table tbody tr", "els => els.length")
        findings = page.inner_text("#findings-table")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        light = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark_page = browser.new_page(color_scheme="dark")
        dark_page.goto((real_report / "report.html").as_uri(), wait_until="load")
        dark = dark_page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark_text = dark_page.evaluate("getComputedStyle(document.body).color")
        dark_page.screenshot(path=str(SCREENSHOT.with_name("report-dark.png")))
        browser.close()
    assert len(images) >= 20
    assert all(done and width > 0 and alt for done, width, alt in images), images
    assert rows > 50
    assert "shoes" in findings and any(v in findings.upper() for v in ("CONFIRMED", "REFUTED"))
    assert failed_requests == []
    assert light == "rgb(255, 255, 255)"
    assert dark == "rgb(21, 22, 26)" and dark_text == "rgb(232, 232, 238)"  # readable in dark
    assert SCREENSHOT.stat().st_size > 10_000
    shutil.copy(SCREENSHOT, real_report / "screenshot.png")


def _open(report: Path, screenshot: str) -> dict:
    """Open ``report``/report.html, then its explorer: the figures' load state, the key
    metrics' heads, the best-marked cells, whether findings are shown, the page text, the
    explorer's model count, and every failed request and console error."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed: list[str] = []
        errors: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((report / "report.html").as_uri(), wait_until="load")
        seen = dict(
            images=page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])"
            ),
            heads=page.eval_on_selector_all(
                "#key-metrics-table th", "els => els.map(e => e.innerText)"
            ),
            best=page.eval_on_selector_all("#key-metrics-table td.best", "els => els.length"),
            findings=page.locator("#findings-table").count(),
            text=page.inner_text("body"),
        )
        page.screenshot(path=str(SCREENSHOT.with_name(screenshot)))
        page.click("text=Explore the latent planes")
        page.wait_for_load_state("load")
        seen["explore_models"] = page.eval_on_selector_all(".model", "els => els.length")
        browser.close()
    seen["failed"], seen["errors"] = failed, errors
    return seen


@pytest.fixture(scope="module")
def three_model_report(tmp_path_factory, real_data):
    """The shipped VAE, the shipped AE and the shipped β=4 VAE, through the CLI's defaults
    for user models: no study unless asked (at conftest.lean_analysis's sizes: the page's
    sections and figures are checked, not the atlas or sample sizes)."""
    from conftest import SHIPPED, lean_analysis

    from latent_atlas.cli import main

    out = tmp_path_factory.mktemp("three")
    models = ["--model", str(SHIPPED / "vae"), "--model", str(SHIPPED / "ae"),
              "--model", str(SHIPPED / "vae-beta4")]  # fmt: skip
    labels = ["--label", "VAE", "--label", "AE", "--label", "VAE β=4"]
    with lean_analysis():
        rc = main(["report", *models, *labels, "--name", "beta", "--out", str(out),
                   "--no-progress"])  # fmt: skip
    assert rc == 0
    return out / "beta"


@pytest.mark.browser
@pytest.mark.real_data
@pytest.mark.slow
def test_three_model_report_renders_without_a_study(three_model_report):
    seen = _open(three_model_report, "report-three.png")
    assert seen["heads"] == ["metric", "VAE", "AE", "VAE β=4"]
    assert seen["best"] >= 5  # one best model marked per key metric (ties mark none)
    assert seen["findings"] == 0  # user models: no seed study unless --study seed
    # 3 embeddings; per grid (2): 5 kinds × 3 models + class shares; the dense atlas
    images = seen["images"]
    assert len(images) >= 3 + 2 * (5 * 3 + 1)
    assert all(done and width > 0 and alt for done, width, alt in images), images
    assert seen["failed"] == [] and seen["errors"] == []
    assert seen["explore_models"] == 3


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory):
    """The README's digits example: the shipped digits VAE and AE on sklearn:digits (the
    shipped digits classifier found by --classifier auto)."""
    from latent_atlas.cli import main

    out = tmp_path_factory.mktemp("digits")
    art = REPO / "artifacts" / "digits"
    rc = main(["report", "--data", "sklearn:digits", "--model", str(art / "vae"),
               "--model", str(art / "ae"), "--name", "digits", "--out", str(out),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    return out / "digits"


@pytest.mark.browser
@pytest.mark.slow
def test_digits_report_renders_in_chromium(digits_report):
    """sklearn:digits end to end (issue 12): 8×8 mosaics, the digits' class names, the
    classifier's class maps, the explorer of both models — every figure loads, no failed
    request, no console error."""
    seen = _open(digits_report, "report-digits.png")
    assert len(seen["heads"]) == 3 and seen["heads"][0] == "metric"
    assert "Dataset digits (355 test images, 1×8×8 per image" in seen["text"]
    images = seen["images"]
    assert len(images) >= 2 + 2 * 5
    assert all(done and width > 0 and alt for done, width, alt in images), images
    assert seen["failed"] == [] and seen["errors"] == []
    assert seen["explore_models"] == 2


@pytest.mark.browser
@pytest.mark.real_data
def test_forest_plot_and_one_line_verdicts_render_in_chromium(real_report):
    """The report opens with the forest plot of the claims (inline SVG, laid out at a readable
    size), then one sentence per verdict with the reasoning folded; figures/claims_forest.svg
    (report.md's copy) opens on its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((real_report / "report.html").as_uri(), wait_until="load")
        first = page.evaluate("document.querySelector('section').id")
        box = page.locator("#verdicts svg").bounding_box()
        rows = page.evaluate("""() => [...document.querySelectorAll('#verdicts svg text')]
            .map(t => [t.textContent, t.getBBox().width])""")
        lines = page.locator("p.one-line")
        n_lines = lines.count()
        first_line = lines.nth(0).bounding_box()
        words = len(lines.nth(0).inner_text().split())
        why = page.locator("details.why").nth(0)
        closed = why.evaluate("d => d.open")
        why.locator("summary").click()
        opened = why.evaluate("d => d.open") and why.locator("p").is_visible()
        page.screenshot(path=str(SCREENSHOT.with_name("report-verdicts.png")))
        alone = browser.new_page()
        alone.goto((real_report / "figures" / "claims_forest.svg").as_uri(), wait_until="load")
        tag = alone.evaluate("document.documentElement.tagName")
        alone_texts = alone.evaluate("document.querySelectorAll('text').length")
        browser.close()
    assert first == "verdicts"  # the report opens with the forest plot
    assert box is not None and 700 <= box["width"] <= 1000 and 400 <= box["height"] <= 900
    verdicts = [t for t, w in rows if t in ("confirmed", "refuted", "inconclusive") and w > 0]
    assert len(verdicts) >= 10  # one per claim × reading, drawn (a non-zero width)
    assert first_line is not None and first_line["y"] > box["y"] + box["height"]
    assert n_lines >= 10 and words <= 40
    assert closed is False and opened
    assert tag.lower() == "svg" and alone_texts == len(rows)
