"""From ONNX models to numbers: run one encoder/decoder pair (plus the shared classifier)
through every metric of ``analysis``. Model I/O happens here; the metrics stay pure.

``analyze_model`` returns a :class:`ModelAnalysis`: ``metrics`` (a JSON-ready dict of plain
numbers) and the arrays the plots need. A :class:`Cache` lets a batch of comparisons reuse
sessions and test-set encodings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latent_atlas.analysis import brightness as br
from latent_atlas.analysis import classes as cl
from latent_atlas.analysis import embeddings as em
from latent_atlas.analysis import samples as sa
from latent_atlas.toolkit.data import FashionMNIST
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import DecodedGrid, GridSpec, decode_grid
from latent_atlas.toolkit.runtime import ModelPair, OnnxModel, load_classifier

FOOTWEAR = ("Sandal", "Sneaker", "Ankle boot")


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the analysis. Thresholds are in the units of the metric they apply to."""

    grids: tuple[GridSpec, ...] = (GridSpec(), GridSpec(mode="auto"))
    # |∇ brightness| above this (brightness per latent unit) is a "stark transition": at the
    # seed's spacing (0.4 latent units) it is a brightness swing of 0.1 between neighbours.
    gradient_threshold: float = 0.25
    ambiguity_threshold: float = 0.5  # classifier confidence below this: ambiguous cell
    min_class_share: float = 0.01  # a class "holds" the grid above this share of cells
    knn_k: int = 5
    folds: int = 5
    silhouette_sample: int = 5000
    trust_sample: int = 2000
    n_samples: int = 10_000  # decoded samples for the Fréchet distances
    seed: int = 0
    batch_size: int = 4096
    provider: str = "auto"
    threads: int = 0


@dataclass
class GridAnalysis:
    key: str
    grid: DecodedGrid
    d_dz1: np.ndarray
    gradient: np.ndarray
    sensitivity: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    knn_labels: np.ndarray
    metrics: dict


@dataclass
class ModelAnalysis:
    name: str
    embeddings: np.ndarray
    grids: list[GridAnalysis]
    metrics: dict
    provenance: dict


@dataclass
class Cache:
    """Sessions and encodings already computed, keyed by file path / model hash."""

    pairs: dict[str, ModelPair] = field(default_factory=dict)
    classifiers: dict[str, OnnxModel] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    real_features: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def pair(self, folder: Path, cfg: AnalysisConfig, name: str = "") -> ModelPair:
        key = str(Path(folder).resolve())
        if key not in self.pairs:
            self.pairs[key] = ModelPair.from_dir(folder, cfg.provider, cfg.threads, name)
        return self.pairs[key]

    def classifier(self, path: Path, classes: int, cfg: AnalysisConfig) -> OnnxModel:
        key = str(Path(path).resolve())
        if key not in self.classifiers:
            self.classifiers[key] = load_classifier(path, classes, cfg.provider, cfg.threads)
        return self.classifiers[key]


def grid_key(spec: GridSpec) -> str:
    return f"{spec.mode}_{spec.steps[0]}x{spec.steps[1]}"


def _r(v: float) -> float | None:
    """Round for the JSON (12 significant digits: stable across reruns, exact enough);
    a non-finite value (an empty class's spread) becomes None (JSON null)."""
    return float(f"{float(v):.12g}") if math.isfinite(v) else None


def analyze_grid(
    grid: DecodedGrid,
    classifier: OnnxModel,
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    cfg: AnalysisConfig,
) -> GridAnalysis:
    x, y, cells = grid.x, grid.y, grid.cells
    ny, nx = grid.brightness.shape
    bmap = br.brightness_map(cells)
    d1, d2 = br.brightness_gradient(bmap, x, y)
    mag = br.gradient_magnitude(d1, d2)
    sens = br.pixel_sensitivity(cells, x, y)
    flat = cells.reshape(ny * nx, 1, 28, 28).astype(np.float32)
    probs = cl.softmax(classifier(flat, cfg.batch_size))
    lab, conf, ent = cl.class_maps(probs.reshape(ny, nx, -1))
    points = np.stack(np.meshgrid(x, y), axis=-1).reshape(-1, 2)
    knn = cl.nearest_embedding_classes(
        points, embeddings[:, list(grid.spec.axes)], labels, k=cfg.knn_k
    )
    knn = knn.reshape(ny, nx)
    shares = cl.class_shares(lab, len(class_names))
    footwear = sum(shares[class_names.index(c)] for c in FOOTWEAR if c in class_names)
    # The seed drew z2 = -4 at the top: its "top rows (0-200 px)" are the ~7 lowest-z2 rows.
    top = max(1, round(ny * 200 / (21 * 28)))
    seed_top = np.abs(d1[:top])
    metrics = {
        "spec": grid.spec.describe(),
        "x_range": [_r(x[0]), _r(x[-1])],
        "y_range": [_r(y[0]), _r(y[-1])],
        "cells": int(ny * nx),
        "brightness": {
            "mean": _r(bmap.mean()),
            "min": _r(bmap.min()),
            "max": _r(bmap.max()),
            "gradient": {
                k: _r(v) for k, v in br.gradient_summary(mag, cfg.gradient_threshold).items()
            },
            "seed_top_rows": {
                "rows": top,
                "mean_abs_d_dz1": _r(seed_top.mean()),
                "stark_share_d_dz1": _r((seed_top > cfg.gradient_threshold).mean()),
                "max_row_brightness_range": _r((bmap[:top].max(1) - bmap[:top].min(1)).max()),
            },
        },
        "smoothness": {k: _r(v) for k, v in br.smoothness_summary(sens).items()},
        "classes": {
            "shares": {n: _r(s) for n, s in zip(class_names, shares, strict=True)},
            "footwear_share": _r(footwear),
            "classes_present": cl.classes_present(shares, cfg.min_class_share),
            "ambiguous_share": _r(cl.ambiguous_share(conf, cfg.ambiguity_threshold)),
            "mean_confidence": _r(conf.mean()),
            "mean_entropy_nats": _r(ent.mean()),
            "knn_agreement": _r(cl.agreement(lab, knn)),
        },
    }
    return GridAnalysis(grid_key(grid.spec), grid, d1, mag, sens, lab, conf, ent, knn, metrics)


def analyze_model(
    folder: Path,
    classifier_path: Path,
    data: FashionMNIST,
    cfg: AnalysisConfig,
    cache: Cache | None = None,
    name: str = "",
    stage: Callable[[str], None] = lambda s: None,
) -> ModelAnalysis:
    """Every metric for one encoder/decoder pair, on the test split of ``data``."""
    cache = cache or Cache()
    pair = cache.pair(folder, cfg, name)
    clf = cache.classifier(classifier_path, len(data.class_names), cfg)
    x_test = data.test.float_images()
    labels = data.test.labels.astype(np.int64)
    names = data.class_names
    rng = np.random.default_rng(cfg.seed)

    if pair.encoder.latent_dim < 2:
        raise AtlasError(f"model {folder}: latent_dim {pair.encoder.latent_dim}, expected >= 2")
    stage(f"{pair.name}: embed")
    emb_key = f"{pair.encoder.sha256}:{data.sha256}"
    if emb_key not in cache.embeddings:
        cache.embeddings[emb_key] = pair.encoder(x_test, cfg.batch_size)
    emb = cache.embeddings[emb_key]
    mean, cov = em.gaussian_fit(emb)
    centroids, spreads = em.class_centroids(emb, labels, len(names))
    sub = rng.choice(len(emb), min(cfg.trust_sample, len(emb)), replace=False)
    embedding = {
        "knn_accuracy": _r(em.knn_accuracy(emb, labels, cfg.knn_k, cfg.folds, cfg.seed)),
        "silhouette": _r(
            em.silhouette(emb, labels, min(cfg.silhouette_sample, len(emb)), cfg.seed)
        ),
        "trustworthiness": _r(
            em.trustworthiness_score(x_test[sub].reshape(len(sub), -1), emb[sub], cfg.knn_k)
        ),
        "mean": [_r(v) for v in mean],
        "std": [_r(v) for v in np.sqrt(np.diag(cov))],
        "kl_to_standard_normal": _r(em.kl_to_standard_normal(mean, cov)),
        "centroids": {n: [_r(v) for v in c] for n, c in zip(names, centroids, strict=True)},
        "spreads": {n: _r(s) for n, s in zip(names, spreads, strict=True)},
    }

    stage(f"{pair.name}: reconstruct")
    x_hat = pair.decoder(emb, cfg.batch_size)[:, None]
    rec = sa.reconstruction_errors(x_test, x_hat)
    rec_logits, rec_feats = clf.run(x_hat.astype(np.float32), cfg.batch_size)
    reconstruction = {
        "mse": _r(rec["mse"]),
        "bce": _r(rec["bce"]),
        "classifier_accuracy": _r((rec_logits.argmax(1) == labels).mean()),
    }

    stage(f"{pair.name}: samples")
    feat_key = f"{clf.sha256}:{data.sha256}"
    if feat_key not in cache.real_features:
        logits, feats = clf.run(x_test, cfg.batch_size)
        cache.real_features[feat_key] = (feats, logits)
    real_feats, real_logits = cache.real_features[feat_key]
    d = pair.decoder.latent_dim
    sources = {
        "standard_normal": rng.standard_normal((cfg.n_samples, d)),
        "fitted_gaussian": rng.multivariate_normal(mean, cov, cfg.n_samples),
    }
    samples = {
        "classifier_accuracy_test": _r((real_logits.argmax(1) == labels).mean()),
    }
    for src, z in sources.items():
        images = pair.decoder(z.astype(np.float32), cfg.batch_size)[:, None]
        feats = clf.run(images, cfg.batch_size)[1]
        samples[f"frechet_{src}"] = _r(sa.frechet_from_features(feats, real_feats))
    # Reference point: the Fréchet distance of the model's own reconstructions.
    samples["frechet_reconstructions"] = _r(sa.frechet_from_features(rec_feats, real_feats))

    grids = []
    for spec in cfg.grids:
        stage(f"{pair.name}: grid {grid_key(spec)}")
        # full 28×28 cells: the classifier needs them (decode_grid refuses grids too big)
        grid = decode_grid(pair.decoder, spec, emb, cfg.batch_size, cell_px=28)
        g = analyze_grid(grid, clf, emb, labels, names, cfg)
        lo = [grid.x[0], grid.y[0]]
        hi = [grid.x[-1], grid.y[-1]]
        g.metrics["embeddings_inside_share"] = _r(em.share_inside(emb[:, list(spec.axes)], lo, hi))
        grids.append(g)

    metrics = {
        "embedding": embedding,
        "reconstruction": reconstruction,
        "samples": samples,
        "grids": {g.key: g.metrics for g in grids},
    }
    provenance = {
        "folder": str(folder),
        "encoder_sha256": pair.encoder.sha256,
        "decoder_sha256": pair.decoder.sha256,
        "classifier_sha256": clf.sha256,
        "provider": pair.decoder.provider,
        "latent_dim": d,
        "kind": pair.decoder.metadata.get("kind", "unknown"),
    }
    return ModelAnalysis(pair.name, emb, grids, metrics, provenance)
