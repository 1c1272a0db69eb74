"""The >2-D tools on real data: the shipped 16-D conv VAE (artifacts/fashion-mnist/vae16, shipped
by issue 23's other half) on Fashion-MNIST's test set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO

from latent_atlas.cli import main

VAE16 = REPO / "artifacts" / "fashion-mnist" / "vae16"


@pytest.fixture(scope="module")
def vae16():
    from latent_atlas.toolkit.runtime import load

    if not (VAE16 / "decoder.onnx").is_file():
        pytest.skip(f"{VAE16} not shipped in this checkout (issue 23: the 16-D VAE)")
    return load(VAE16)


@pytest.mark.real_data
@pytest.mark.slow
def test_vae16_dims_traversals_and_planes(vae16, real_data, tmp_path, capsys):
    from latent_atlas.toolkit.grid import GridSpec

    assert vae16.latent_dim == 16
    mu, logvar = vae16.encode_posterior(real_data.test.images)
    from latent_atlas.analysis.dimensions import dimension_diagnostics

    diag = dimension_diagnostics(mu, logvar)
    assert 2 <= diag.n_active <= 16
    if logvar is not None:  # export writes 'logvar' for our VAEs
        assert diag.kl_total is not None and diag.kl_total > 0
    # the plane through three real test images reproduces their decodes
    plane = GridSpec(plane="images", images=(0, 1, 2), mode="auto").resolve_plane(16, mu)
    uv = np.array([m[1:] for m in plane.marks])
    diff = np.abs(vae16.decode(plane.points(uv[:, 0], uv[:, 1])) - vae16.decode(mu[:3])).max()
    assert diff <= 1e-5
    out = tmp_path / "t"
    rc = main(["traverse", "--model", str(VAE16), "--k", "4", "--steps", "5", "--between", "0",
               "1", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "vae16_dimensions.json").read_text())
    assert doc["dimensions"]["n_active"] == diag.n_active
    assert len(doc["traversal"]["labels"]) == 4  # the shipped classifier read every image
    capsys.readouterr()
    rc = main(["traverse", "--model", str(VAE16), "--k", "17", "--out", str(out / "x")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "--k 17: the model has 16 latent dims" in err[0]


@pytest.mark.browser
@pytest.mark.real_data
@pytest.mark.slow
def test_vae16_report_renders_in_chromium(real_data, tmp_path, lean_cli_analysis):
    """Issue 23's "done when": `latent-atlas report --model artifacts/fashion-mnist/vae16`
    alone shows the diagnostics, traversals, the PCA plane, the three-image plane and the pair
    grid, every figure loads in Chromium, and its explorer offers the plane menu and a slider
    per off-plane dim. (At the lean sizes of ``lean_cli_analysis``: what is checked is which
    sections and figures the page shows, not the t-SNE map's 2 000 points.)"""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, FLAGS, _open

    if not (VAE16 / "decoder.onnx").is_file():
        pytest.skip(f"{VAE16} not shipped in this checkout")
    rc = main(["report", "--model", str(VAE16), "--out", str(tmp_path), "--name", "v16",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    report = tmp_path / "v16"
    seen = _open(report, "report-vae16.png")
    images = seen["images"]
    assert len(images) >= 10 and all(done and width > 0 and alt for done, width, alt in images)
    alts = " ".join(alt for _, _, alt in images)
    for shown in ("variance of the posterior means of each of the 16 dims",
                  "a row of decoded images per dim",
                  "pair grid", "t-SNE", "reconstruction"):  # fmt: skip
        assert shown in alts, shown
    for section in ("which dims are used", "what each dim does", "PCA",
                    "plane through test images"):  # fmt: skip
        assert section in seen["text"], section
    assert seen["failed"] == [] and seen["errors"] == [] and seen["explore_models"] == 1
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page()
        page.goto((report / "explore.html").as_uri(), wait_until="load")
        options = page.eval_on_selector_all(".plane-select option", "els => els.length")
        page.wait_for_function("document.querySelectorAll('.sliders input').length > 0")
        sliders = page.eval_on_selector_all(".sliders input[type=range]", "els => els.length")
        browser.close()
    assert options >= 2  # the report's plane and at least the PCA plane
    assert sliders == 16 - 2  # one per off-plane dim
