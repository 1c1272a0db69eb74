"""A report about one model of more than two dims (latent_atlas/highdim.py, dimsections.py):
one model alone is a valid subject; diagnostics, traversals, interpolation, PCA and
three-image planes, pair grid, t-SNE, reconstructions and prior samples; the seed study's fields
only where it runs; long vectors only in metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from latent_atlas.analysis.compare import all_rows
from latent_atlas.analysis.dimplots import pair_grid_figure, spectrum_figure, tsne_map
from latent_atlas.analysis.results import ModelMetrics
from latent_atlas.toolkit.errors import AtlasError
from toy_onnx import (
    linear_gaussian,
    linear_gaussian_folder,
    linear_gaussian_images,
    prototype_classifier,
)

from latent_atlas.cli import main
from latent_atlas.pipeline import AnalysisConfig


def test_spectrum_and_pair_grid_figures():
    fig = spectrum_figure([0.5, 0.0, 2.0, 0.001], 0.01, [1.0, 0.0, 2.0, 0.0], "t")
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["2", "0", "3", "1"]  # largest first, numbered from 0
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(50, 6))
    fig = pair_grid_figure(codes, np.arange(50) % 3, ["a", "b", "c"], [4, 0, 2], "p")
    assert len(fig.axes) == 9
    assert fig.axes[6].get_xlabel() == "z₄" and fig.axes[3].get_ylabel() == "z₀"
    with pytest.raises(AtlasError, match="2 to 8 dims"):
        pair_grid_figure(codes, np.arange(50) % 3, ["a", "b", "c"], [1])


def test_tsne_map_keeps_clusters_apart():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(0, 0.1, (40, 8)), rng.normal(5, 0.1, (40, 8))])
    coords, index = tsne_map(codes, max_points=60, seed=0)
    assert coords.shape == (60, 2) and (np.diff(index) > 0).all()
    first = index < 40
    gap = np.linalg.norm(coords[first].mean(0) - coords[~first].mean(0))
    spread = max(coords[first].std(0).max(), coords[~first].std(0).max())
    assert gap > 3 * spread


def test_all_rows_leave_long_vectors_and_seed_fields_to_metrics_json():
    from test_compare import _model

    m = _model()
    rows = [r.metric for r in all_rows([m])]
    assert not any("centroids" in r for r in rows)
    assert any("seed_top_rows" in r for r in rows)
    hidden = [r.metric for r in all_rows([m], study_fields=False)]
    assert not any("seed_top_rows" in r or "as_written" in r for r in hidden)
    assert isinstance(m, ModelMetrics)


def test_config_checks_the_new_knobs():
    with pytest.raises(AtlasError, match="--plane-images 1 1 2"):
        AnalysisConfig(plane_images=(1, 1, 2))
    with pytest.raises(AtlasError, match="--k: 0"):
        AnalysisConfig(traverse_k=0)
    with pytest.raises(AtlasError, match="--threshold"):
        AnalysisConfig(active_threshold=-1.0)


@pytest.fixture(scope="module")
def toy8(tmp_path_factory):
    root = tmp_path_factory.mktemp("hd")
    params = linear_gaussian(latent_dim=8, ignored=(3, 4, 5, 6, 7))
    folder = linear_gaussian_folder(root / "lg8", params)  # mean and logvar
    images = linear_gaussian_images(params, 300)
    x = (images[:, 0] * 255).round().astype(np.uint8)
    y = (np.arange(300) % 3).astype(np.int64)
    np.savez(root / "toy.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    protos = np.stack([x[y == c].mean(0) / 255 for c in range(3)])
    clf = prototype_classifier(root / "clf.onnx", protos)
    return root, folder, clf


def _stand_in_umap(monkeypatch, calls):
    """A module named ``umap`` with umap-learn's ``UMAP(...).fit_transform`` interface (it
    projects on the first two principal axes and records its arguments): the report's wiring
    of an optional dependency this suite does not install (umap-learn pulls in numba)."""
    import importlib.machinery
    import sys
    import types

    class UMAP:
        def __init__(self, **kwargs):
            calls.append(kwargs)

        def fit_transform(self, x):
            x = np.asarray(x) - np.mean(x, axis=0)
            return x @ np.linalg.svd(x, full_matrices=False)[2][:2].T

    module = types.ModuleType("umap")
    module.__spec__ = importlib.machinery.ModuleSpec("umap", None)
    module.UMAP = UMAP
    monkeypatch.setitem(sys.modules, "umap", module)


def test_umap_map_where_installed_and_one_line_where_not(monkeypatch):
    from latent_atlas.analysis import dimplots

    codes = np.random.default_rng(0).normal(size=(30, 4)) * [5.0, 1.0, 0.1, 0.1]
    monkeypatch.setattr(dimplots, "umap_installed", lambda: False)
    with pytest.raises(AtlasError, match=r"umap-learn is not installed; install it with `pip "
                                         r"install 'latent-atlas\[umap\]'`"):  # fmt: skip
        dimplots.umap_map(codes)
    monkeypatch.undo()
    calls: list = []
    _stand_in_umap(monkeypatch, calls)
    assert dimplots.umap_installed()
    coords, index = dimplots.umap_map(codes, max_points=20, seed=3)
    assert coords.shape == (20, 2) and (np.diff(index) > 0).all()
    assert calls == [{"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "random_state": 3,
                      "n_jobs": 1}]  # fmt: skip
    coords, index = dimplots.umap_map(codes[:6], seed=0)  # fewer codes than neighbours
    assert calls[-1]["n_neighbors"] == 5 and len(index) == 6


@pytest.mark.slow
def test_one_model_report_of_an_8d_model(toy8, tmp_path, capsys, monkeypatch):
    root, folder, clf = toy8
    _stand_in_umap(monkeypatch, [])  # the report draws a UMAP map where umap-learn is there
    rc = main(["report", "--model", str(folder), "--data", str(root / "toy.npz"), "--steps", "5",
               "--classifier", str(clf), "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "toy-lg8"
    doc = json.loads((out / "metrics.json").read_text())
    m = doc["models"]["lg8"]
    dims = m["metrics"]["dimensions"]
    assert sorted(dims["active"]) == [0, 1, 2]  # the known answer, end to end
    assert dims["kl"] is not None and dims["n_active"] == 3
    assert len(m["traversal"]["dims"]) == 8 and m["traversal"]["labels"] is not None
    # the interpolation's geodesic on the plane through the two codes: never longer
    line = m["interpolation"]
    assert 0 < line["geodesic_length"] <= line["straight_length"] * 1.001
    text = json.dumps(m["metrics"])
    assert "as_written" not in text and "seed_top_rows" not in text  # no study ran
    grids = m["metrics"]["grids"]
    assert "auto_5x5_pca" in grids and "auto_5x5_img0-1-2" in grids
    assert [k["label"] for k in grids["auto_5x5_img0-1-2"]["plane"]["marks"]] == ["#0", "#1",
                                                                                  "#2"]  # fmt: skip
    html = (out / "report.html").read_text()
    for text in ("which dims are used", "what each dim does", "Reconstructions and prior",
                 "the codes, pairwise and mapped", "plane through test images 0, 1, 2",
                 "One model: nothing to mark as best", "Burda", ", and the geodesic"):  # fmt: skip
        assert text in html, text
    table = html.split('id="metrics-table"')[1]
    assert "centroids" not in table
    figures = {p.name for p in (out / "figures").iterdir()}
    for name in ("m0_spectrum.png", "m0_traversals.png", "m0_interpolation.png", "m0_pairs.png",
                 "m0_tsne.png", "m0_umap.png", "m0_reconstructions.png",
                 "m0_prior_samples.png"):  # fmt: skip
        assert name in figures, name


@pytest.mark.slow
def test_mean_only_encoder_says_why_no_kl(toy8, tmp_path, capsys):
    root, folder, clf = toy8
    params = linear_gaussian(latent_dim=8, ignored=(3, 4, 5, 6, 7))
    mean_only = linear_gaussian_folder(tmp_path / "mo8", params, logvar=False)
    rc = main(["analyze", "--model", str(mean_only), "--data", str(root / "toy.npz"),
               "--steps", "5", "--classifier", "none", "--out", str(tmp_path / "a"),
               "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "a" / "metrics.json").read_text())
    m = doc["models"]["mo8"]
    assert m["metrics"]["dimensions"]["kl"] is None
    assert "logvar" in m["metrics"]["not_available"]["dimensions.kl"]
