"""From ONNX models to numbers: run one model (plus the classifier, when there is one) through
every metric of ``latent_atlas.analysis``. Model I/O happens here; the metrics stay pure.

``analyze_model`` returns a :class:`ModelAnalysis`: typed ``metrics`` (``analysis.results``)
and the arrays the figures need. What a model cannot give (no encoder: no embeddings,
reconstructions or auto grids; no classifier: class maps from the nearest test embeddings, no
confidence or Fréchet distances) is listed in ``metrics.not_available``, never a failure.
A :class:`Cache` lets a batch of comparisons reuse sessions and test-set encodings.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from latent_atlas.analysis import brightness as br
from latent_atlas.analysis import classes as cl
from latent_atlas.analysis import embeddings as em
from latent_atlas.analysis import geometry as geo
from latent_atlas.analysis import samples as sa
from latent_atlas.analysis import seed_figure as sf
from latent_atlas.analysis.results import (
    BrightnessMetrics,
    ClassMetrics,
    EmbeddingMetrics,
    GeodesicMetrics,
    GeometryMetrics,
    GradientSummary,
    GridMetrics,
    ModelMetrics,
    Provenance,
    ReconstructionMetrics,
    SampleMetrics,
    SeedTopRows,
    SeparationMetrics,
    SmoothnessMetrics,
)
from latent_atlas.analysis.studies.seed import FOOTWEAR
from latent_atlas.geometry import (
    Geodesic,
    GeodesicConfig,
    GeometryMaps,
    class_separations,
    geodesic,
    geometry_maps,
)
from latent_atlas.highdim import ModelExtras, analyze_extras, extra_grids
from latent_atlas.settings import (  # AnalysisConfig: also from here
    AnalysisConfig,
    check_fits,
    parallel_workers,
    session_threads,
)
from latent_atlas.toolkit.atlas import Atlas, atlas_spec_over, compute_atlas
from latent_atlas.toolkit.data import ImageDataset
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import DecodedGrid, GridSpec, decode_grid
from latent_atlas.toolkit.memory import one_malloc_arena, release_freed_memory
from latent_atlas.toolkit.runtime import Model, OnnxModel, load, load_classifier
from latent_atlas.traversals import diagnose

# The seed study's figure: 21 rows of 28 px; its "top rows (0–200 px)" are 200/28 ≈ 7 rows.
SEED_FIGURE_ROW_PX, SEED_FIGURE_ROWS, SEED_TOP_PX = 28, 21, 200


@dataclass
class GridAnalysis:
    key: str
    grid: DecodedGrid
    d_dz1: np.ndarray
    gradient: np.ndarray
    sensitivity: np.ndarray
    labels: np.ndarray | None  # class per cell (classifier, else nearest embeddings)
    confidence: np.ndarray | None  # classifier only
    entropy: np.ndarray | None
    knn_labels: np.ndarray | None
    metrics: GridMetrics


@dataclass
class AtlasAnalysis:
    """The dense atlas of a model's first grid (plane and range) and its brightness gradient
    magnitude ``[ny, nx]`` (brightness per latent unit, from ``analysis.brightness``)."""

    atlas: Atlas
    gradient: np.ndarray


@dataclass
class GeometryAnalysis:
    """The metric maps of the first grid and the centroid geodesics behind ``GeometryMetrics``:
    ``paths`` holds (name, straight plane points [T, 2], geodesic) per pair."""

    maps: GeometryMaps
    paths: list[tuple[str, np.ndarray, Geodesic]]
    separation: dict[str, geo.GeodesicSeparation] = field(default_factory=dict)


@dataclass
class ModelAnalysis:
    name: str
    model: Model
    embeddings: np.ndarray | None
    grids: list[GridAnalysis]
    metrics: ModelMetrics
    provenance: Provenance
    atlas: AtlasAnalysis | None = None
    geometry: GeometryAnalysis | None = None
    extras: ModelExtras | None = None

    # in a notebook: the key metrics and the first grid's mosaic (latent_atlas.display)
    def _repr_html_(self) -> str:
        from latent_atlas.display import analysis_html

        return analysis_html(self)

    def _repr_png_(self) -> bytes | None:
        from latent_atlas.display import analysis_png

        return analysis_png(self)


@dataclass
class Cache:
    """Sessions and encodings already computed, keyed by file path / model hash."""

    models: dict[str, Model] = field(default_factory=dict)
    classifiers: dict[str, OnnxModel] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    real_features: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # trustworthiness's input-space ranks (analysis.embeddings.input_ranks), by the inputs'
    # sha256: every model of a report embeds the same test images (16 MB each)
    input_ranks: dict[str, np.ndarray] = field(default_factory=dict)
    _ranks_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ranks(self, inputs_flat: np.ndarray) -> np.ndarray:
        """:func:`analysis.embeddings.input_ranks` of ``inputs_flat``, computed once."""
        key = hashlib.sha256(np.ascontiguousarray(inputs_flat).tobytes()).hexdigest()
        key += f":{inputs_flat.shape}:{inputs_flat.dtype}"
        with self._ranks_lock:  # one thread computes them (~100 MB while it does), the others wait
            if key not in self.input_ranks:
                self.input_ranks[key] = em.input_ranks(inputs_flat)
        return self.input_ranks[key]

    def model(self, source: Path, cfg: AnalysisConfig, image_shape: tuple | None = None) -> Model:
        """The model at ``source`` (loaded once; its display name is set by the caller)."""
        key = str(Path(source).resolve())
        if key not in self.models:
            self.models[key] = load(source, cfg.provider, cfg.threads, image_shape=image_shape)
        return self.models[key]

    def classifier(self, path: Path, data: ImageDataset, cfg: AnalysisConfig) -> OnnxModel:
        key = str(Path(path).resolve())
        if key not in self.classifiers:
            self.classifiers[key] = load_classifier(
                path, len(data.class_names), cfg.provider, cfg.threads, data.image_shape
            )
        return self.classifiers[key]


def grid_key(spec: GridSpec) -> str:
    return spec.key()


def seed_top_rows(ny: int) -> int:
    """How many of a grid's lowest rows the seed study's "top rows (0–200 px)" cover:
    200 px of a 21-row figure of 28-px rows, scaled to ``ny`` rows (7 rows at ny = 21)."""
    return max(1, round(ny * SEED_TOP_PX / (SEED_FIGURE_ROWS * SEED_FIGURE_ROW_PX)))


# The report's section titles, shared with latent_atlas.sections: a stage of timings.json is
# named for the section its work feeds ("VAE: Encoder embeddings", "VAE: Grid: 21×21 over …").
EMBEDDINGS_TITLE = "Encoder embeddings"
ATLAS_TITLE = "Dense atlas"
METRICS_TITLE = "All metrics"


def grid_title(spec: GridSpec) -> str:
    where = f", {spec.describe_plane()}" if spec.describe_plane() else ""
    return f"Grid: {spec.describe()}{where}"


def analyze_grid(
    grid: DecodedGrid,
    classifier: OnnxModel | None,
    embeddings: np.ndarray | None,
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
    points = grid.spec.points(x, y, grid.plane, 0, ny * nx)  # full latent vectors, row-major
    knn = None
    if embeddings is not None:  # the class of the nearest test codes, in the full space
        knn = cl.nearest_embedding_classes(points, embeddings, labels, k=cfg.knn_k).reshape(ny, nx)
    lab = conf = ent = None
    if classifier is not None:
        flat = cells.reshape(ny * nx, *cells.shape[2:]).astype(np.float32)
        probs = cl.softmax(classifier(flat, cfg.batch_size))
        lab, conf, ent = cl.class_maps(probs.reshape(ny, nx, -1))
    classes = None
    cell_labels = lab if lab is not None else knn
    if cell_labels is not None:
        shares = cl.class_shares(cell_labels, len(class_names))
        classes = ClassMetrics(
            source="classifier" if lab is not None else "nearest embeddings",
            shares=dict(zip(class_names, shares.tolist(), strict=True)),
            classes_present=cl.classes_present(shares, cfg.min_class_share),
            ambiguous_share=None if conf is None else cl.ambiguous_share(
                conf, cfg.ambiguity_threshold),
            mean_confidence=None if conf is None else float(conf.mean()),
            mean_entropy_nats=None if ent is None else float(ent.mean()),
            knn_agreement=None if lab is None or knn is None else cl.agreement(lab, knn),
            contiguity=dict(zip(class_names, cl.class_contiguity(cell_labels, len(class_names)),
                                strict=True)),
        )  # fmt: skip
    top = seed_top_rows(ny)
    metrics = GridMetrics(
        spec=grid.spec.describe(),
        plane=grid.plane.to_json(),
        x_range=[float(x[0]), float(x[-1])],
        y_range=[float(y[0]), float(y[-1])],
        cells=int(ny * nx),
        brightness=BrightnessMetrics(
            mean=float(bmap.mean()),
            min=float(bmap.min()),
            max=float(bmap.max()),
            gradient=GradientSummary(**br.gradient_summary(mag, cfg.gradient_threshold)),
            seed_top_rows=SeedTopRows(**br.top_rows_summary(bmap, d1, top, cfg.gradient_threshold)),
        ),  # fmt: skip
        smoothness=SmoothnessMetrics(**br.smoothness_summary(sens)),
        classes=classes,
    )
    if ny <= nx:  # the seed's loop draws one column per row (analysis.seed_figure)
        metrics.as_written = sf.as_written_metrics(
            bmap, cell_labels, conf, x, y, class_names, top, cfg.gradient_threshold,
            cfg.min_class_share, cfg.ambiguity_threshold,
        )  # fmt: skip
    if embeddings is not None:
        coords = grid.plane.project(embeddings)
        metrics.embeddings_inside_share = em.share_inside(coords, [x[0], y[0]], [x[-1], y[-1]])
    return GridAnalysis(grid.spec.key(), grid, d1, mag, sens,
                        lab if lab is not None else knn, conf, ent, knn, metrics)  # fmt: skip


def _kl_or_inf(mean: np.ndarray, cov: np.ndarray) -> float:
    """KL(fitted Gaussian ‖ N(0, I)); +inf (null in metrics.json) when the covariance is
    singular: a dim whose codes never vary (a collapsed unit of a VAE) makes the fit
    degenerate, and a degenerate Gaussian's KL to N(0, I) is infinite — not an error."""
    try:
        return em.kl_to_standard_normal(mean, cov)
    except AtlasError:
        return math.inf


def embedding_metrics(
    emb: np.ndarray, x_test: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
    cfg: AnalysisConfig, rng: np.random.Generator, cache: Cache | None = None,
) -> tuple[EmbeddingMetrics, np.ndarray, np.ndarray]:  # fmt: skip
    """The embedding measures of ``emb``; ``cache`` keeps trustworthiness's input-space
    ranks for the next model embedding the same images."""
    mean, cov = em.gaussian_fit(emb)
    centroids, spreads = em.class_centroids(emb, labels, len(names))
    sub = rng.choice(len(emb), min(cfg.trust_sample, len(emb)), replace=False)
    pred = em.knn_predictions(emb, labels, cfg.knn_k, cfg.folds, cfg.seed)
    sil, sil_by_class = em.silhouette_by_class(
        emb, labels, len(names), min(cfg.silhouette_sample, len(emb)), cfg.seed
    )
    metrics = EmbeddingMetrics(
        latent_dim=int(emb.shape[1]),
        knn_accuracy=float(np.mean(pred == labels)),
        silhouette=sil,
        trustworthiness=em.trustworthiness_from_ranks(
            (cache or Cache()).ranks(x_test[sub].reshape(len(sub), -1)), emb[sub], cfg.knn_k
        ),
        mean=mean.tolist(),
        std=np.sqrt(np.diag(cov)).tolist(),
        kl_to_standard_normal=_kl_or_inf(mean, cov),
        centroids={n: c.tolist() for n, c in zip(names, centroids, strict=True)},
        spreads={n: float(s) for n, s in zip(names, spreads, strict=True)},
        knn_recall=dict(zip(names, em.per_class_recall(pred, labels, len(names)), strict=True)),
        silhouette_by_class=dict(zip(names, sil_by_class, strict=True)),
    )
    return metrics, mean, cov


def real_features(
    clf: OnnxModel, data: ImageDataset, cfg: AnalysisConfig, cache: Cache, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's (features, logits) of the real test images, computed once per
    classifier and dataset (every model of a report compares its samples with them), on
    ``workers`` threads at once: each takes a run of whole batches, so every row comes out
    as it does from one call over the whole set."""
    key = f"{clf.sha256}:{data.sha256}"
    if key not in cache.real_features:
        images = data.test.images
        step = min(cfg.batch_size, clf.max_batch)
        per = -(-len(images) // max(1, workers) // step) * step  # whole batches per thread
        if workers > 1 and per < len(images):
            parts = [images[i : i + per] for i in range(0, len(images), per)]
            with ThreadPoolExecutor(len(parts), thread_name_prefix="real-features") as pool:
                runs = list(pool.map(lambda x: clf.run(x, cfg.batch_size), parts))
            outs = [np.concatenate(o) for o in zip(*runs, strict=True)]
        else:
            outs = clf.run(images, cfg.batch_size)
        clf.detect_probabilities(outs)
        logits, feats = clf.split_outputs(outs)
        cache.real_features[key] = (feats, logits)
    return cache.real_features[key]


def decode_slice(model: Model, clf: OnnxModel | None, batch_size: int) -> int:
    """Codes per slice when decoding (and classifying) a large set a slice at a time: a whole
    number of both models' batches, so every onnxruntime call sees the rows it sees on the
    whole array."""
    step = min(batch_size, model.decoder.max_batch)
    return step if clf is None else math.lcm(step, min(batch_size, clf.max_batch))


def decoded_features(model: Model, clf: OnnxModel, z: np.ndarray, batch_size: int) -> np.ndarray:
    """The classifier's features ``[N, F]`` of the images decoded from codes ``z`` ``[N, d]``,
    a slice of codes at a time, so only one slice's images are ever held (3 MB instead of
    31 MB for 10 000 Fashion-MNIST samples), slices of :func:`decode_slice`."""
    step = decode_slice(model, clf, batch_size)
    parts = [clf.logits_and_features(model.decode(z[i : i + step], batch_size), batch_size)[1]
             for i in range(0, len(z), step)]  # fmt: skip
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def reconstruct(
    model: Model, clf: OnnxModel | None, x: np.ndarray, emb: np.ndarray, batch_size: int
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """Decode the embeddings ``emb`` of the images ``x`` a slice at a time, as
    :func:`decoded_features` does, and return each image's errors (per-pixel MSE, summed BCE:
    :func:`analysis.samples.per_image_errors`) and, with a classifier, the logits and features
    of the reconstructions. Only one slice of reconstructions is ever held (3 MB, not the
    31 MB + 63 MB of float64 errors of the whole Fashion-MNIST test set)."""
    step = decode_slice(model, clf, batch_size)
    errors, logits, feats = [], [], []
    for i in range(0, len(emb), step):
        x_hat = model.decode(emb[i : i + step], batch_size)
        errors.append(sa.per_image_errors(x[i : i + step], x_hat))
        if clf is not None:
            lg, ft = clf.logits_and_features(x_hat, batch_size)
            logits.append(lg)
            feats.append(ft)
    mse = np.concatenate([m for m, _ in errors])
    bce = np.concatenate([b for _, b in errors])
    if clf is None:
        return (mse, bce), None, None
    return (mse, bce), np.concatenate(logits), np.concatenate(feats)


def analyze_model(
    source: Path | Model,
    classifier_path: Path | None,
    data: ImageDataset,
    cfg: AnalysisConfig,
    cache: Cache | None = None,
    name: str = "",
    stage: Callable[[str], None] = lambda s: None,
) -> ModelAnalysis:
    """Every metric for one model on the test split of ``data``.

    ``classifier_path`` None: no classifier (class maps from the nearest test embeddings).
    """
    cache = cache or Cache()
    model = source if isinstance(source, Model) else cache.model(source, cfg, data.image_shape)
    display = name or model.name
    check_fits(model, data)
    clf = cache.classifier(classifier_path, data, cfg) if classifier_path else None
    x_test = data.test.images
    labels = data.test.labels.astype(np.int64)
    names = data.class_names
    rng = np.random.default_rng(cfg.seed)
    missing: dict[str, str] = {}

    real_feats = real_logits = None
    if clf is not None:
        real_feats, real_logits = real_features(clf, data, cfg, cache)
    else:
        missing["classifier"] = "no classifier: class maps from the nearest test embeddings; "
        missing["classifier"] += "confidence, ambiguity and Fréchet distances not available"

    emb = embedding = mean = cov = None
    reconstruction = None
    rec_feats = None
    if model.encoder is not None:
        stage(f"{display}: {EMBEDDINGS_TITLE}")
        emb_key = f"{model.encoder.sha256}:{data.sha256}"
        if emb_key not in cache.embeddings:
            cache.embeddings[emb_key] = model.encode(x_test, cfg.batch_size)
        emb = cache.embeddings[emb_key]
        embedding, mean, cov = embedding_metrics(emb, x_test, labels, names, cfg, rng, cache)
        if not math.isfinite(embedding.kl_to_standard_normal):
            missing["embedding.kl_to_standard_normal"] = (
                "infinite: the test embeddings' covariance is singular (some dims never vary: "
                "collapsed units); see the per-dim diagnostics"
            )

        stage(f"{display}: {METRICS_TITLE} (reconstruction)")
        rec, rec_logits, rec_feats = reconstruct(model, clf, x_test, emb, cfg.batch_size)
        rec_acc = None if rec_logits is None else float((rec_logits.argmax(1) == labels).mean())
        reconstruction = ReconstructionMetrics(float(rec[0].mean()), float(rec[1].mean()),
                                               rec_acc)  # fmt: skip
    else:
        for key in ("embedding", "reconstruction"):
            missing[key] = "not available: no encoder"

    samples = None
    if clf is not None and real_feats is not None and real_logits is not None:
        stage(f"{display}: {METRICS_TITLE} (samples)")
        d = model.latent_dim
        sources = {"standard_normal": rng.standard_normal((cfg.n_samples, d))}
        if mean is not None and cov is not None:
            sources["fitted_gaussian"] = rng.multivariate_normal(mean, cov, cfg.n_samples)
        frechet = {}
        for src, z in sources.items():
            feats = decoded_features(model, clf, z.astype(np.float32), cfg.batch_size)
            frechet[src] = sa.frechet_from_features(feats, real_feats)
        samples = SampleMetrics(
            feature_source=clf.feature_source,
            classifier_accuracy_test=float((real_logits.argmax(1) == labels).mean()),
            frechet_standard_normal=frechet["standard_normal"],
            frechet_fitted_gaussian=frechet.get("fitted_gaussian"),
            # reference point: the Fréchet distance of the model's own reconstructions
            frechet_reconstructions=None if rec_feats is None
            else sa.frechet_from_features(rec_feats, real_feats),
            n_samples=cfg.n_samples,
        )  # fmt: skip
        if emb is None:
            missing["samples.frechet_fitted_gaussian"] = "not available: no encoder"
    else:
        missing["samples"] = "not available: no classifier (Fréchet distances need its features)"

    specs = list(cfg.grids)
    if emb is not None and model.latent_dim > 2 and cfg.dimension_planes:
        # a model of many dims: the PCA plane and the plane through three test images too
        keys = {s.key() for s in specs}
        extra = extra_grids(cfg.grids[0], data, cfg.plane_images)
        specs += [s for s in extra if s.key() not in keys]
    grids = []
    for spec in specs:
        if emb is None and (spec.mode == "auto" or spec.plane in ("pca", "images")):
            missing[f"grids.{spec.key()}"] = "not available: no encoder (the grid needs embeddings)"
            continue
        stage(f"{display}: {grid_title(spec)}")
        # full-resolution cells: the classifier needs them (decode_grid refuses grids too big)
        try:
            grid = decode_grid(model.decoder, spec, emb, cfg.batch_size,
                               cell_px=model.image_shape[2])  # fmt: skip
        except AtlasError as exc:  # the images plane we chose: said, not fatal
            if spec.plane != "images" or cfg.plane_images or spec in cfg.grids:
                raise
            missing[f"grids.{spec.key()}"] = f"not available: {exc}"
            continue
        grids.append(analyze_grid(grid, clf, emb, labels, names, cfg))

    atlas = None
    if clf is not None and grids and cfg.atlas_steps:
        stage(f"{display}: {ATLAS_TITLE}")
        atlas = analyze_atlas(model, clf, grids[0].grid, emb, cfg.atlas_steps)

    geometry = None
    if grids and cfg.geometry_graph:
        stage(f"{display}: Decoder geometry")
        geometry = analyze_geometry(model, grids[0].grid.spec, emb, labels, names,
                                    cfg.geometry_graph)  # fmt: skip

    dims = None
    if emb is not None and model.latent_dim > 2:  # which dims the model uses
        stage(f"{display}: dimensions")
        dims = diagnose(model, data, cfg.active_threshold, cfg.batch_size)
        if dims.logvar is None:
            missing["dimensions.kl"] = dims.diagnostics.kl_not_available
    extras = None
    if cfg.extras:
        extras = analyze_extras(
            model, data, clf, emb, threshold=cfg.active_threshold, k=cfg.traverse_k,
            images=cfg.plane_images, tsne_points=cfg.tsne_points, seed=cfg.seed,
            batch_size=cfg.batch_size, dimensions=dims, geodesic_steps=cfg.geometry_graph,
        )  # fmt: skip
    metrics = ModelMetrics(
        embedding=embedding, reconstruction=reconstruction, samples=samples,
        grids={g.key: g.metrics for g in grids}, not_available=missing,
        geometry=geometry_metrics(geometry, grids[0].key) if geometry else None,
        dimensions=dims.diagnostics if dims is not None else None,
    )  # fmt: skip
    provenance = Provenance(
        source=str(model.source),
        kind=model.decoder.metadata.get("kind", "unknown"),
        latent_dim=model.latent_dim,
        image_shape=list(model.image_shape),
        provider=model.provider,
        decoder_sha256=model.decoder.sha256,
        encoder_sha256=model.encoder.sha256 if model.encoder else None,
        classifier_sha256=clf.sha256 if clf else None,
    )
    return ModelAnalysis(display, model, emb, grids, metrics, provenance, atlas, geometry=geometry,
                         extras=extras)  # fmt: skip


# the classes the seed study's claims name (Fashion-MNIST): geodesics between their centroids
GEODESIC_CLASSES = ("Shirt", "Coat", "Ankle boot")


def separation_groups(names: Sequence[str]) -> dict[str, list[list[int]]]:
    """The class groups whose geodesic separation a report measures, as label numbers: the
    classes the seed study's claim 2 names (``named``: each its own group, where two or more
    are in the data) and its claim 1's footwear against the rest (``footwear``)."""
    idx = {c: i for i, c in enumerate(names)}
    out: dict[str, list[list[int]]] = {}
    named = [[idx[c]] for c in GEODESIC_CLASSES if c in idx]
    if len(named) >= 2:
        out["named"] = named
    foot = [idx[c] for c in FOOTWEAR if c in idx]
    rest = [i for i in range(len(names)) if i not in foot]
    if foot and rest:
        out["footwear"] = [foot, rest]
    return out


def analyze_geometry(
    model: Model,
    spec: GridSpec,
    embeddings: np.ndarray | None,
    labels: np.ndarray,
    names: tuple[str, ...] | list[str],
    graph_steps: int,
    geodesics: bool = True,
) -> GeometryAnalysis:
    """Metric maps over ``spec``'s grid and plane, geodesics between the test-set centroids of
    each pair of ``GEODESIC_CLASSES`` the data has (unless ``geodesics`` is False: they are
    three quarters of the cost), and the geodesic separation of the class groups of
    :func:`separation_groups` (both with an encoder)."""
    maps = geometry_maps(model, spec, embeddings)
    paths: list[tuple[str, np.ndarray, Geodesic]] = []
    separation: dict[str, geo.GeodesicSeparation] = {}
    present = [c for c in GEODESIC_CLASSES if c in names] if geodesics else []
    if embeddings is not None:
        plane = maps.plane
        coords = plane.project(embeddings)
        lo = float(min(maps.x[0], maps.y[0]))
        hi = float(max(maps.x[-1], maps.y[-1]))
        cfg = GeodesicConfig(graph_steps=graph_steps, points=24, precision=maps.precision)
        graphs: dict = {}  # the pairs share a graph where their ends lie in the same range
        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                ta = coords[labels == list(names).index(a)].mean(axis=0)
                tb = coords[labels == list(names).index(b)].mean(axis=0)
                za, zb = plane.origin + ta @ plane.basis, plane.origin + tb @ plane.basis
                g = geodesic(model, za, zb, cfg, plane=plane, value_range=(lo, hi),
                             graphs=graphs)  # fmt: skip
                paths.append((f"{a} – {b}", np.linspace(ta, tb, cfg.points), g))
        groups = separation_groups(names)
        if groups:
            separation = class_separations(model, plane, coords, labels, groups, graph_steps,
                                           (lo, hi))  # fmt: skip
    return GeometryAnalysis(maps, paths, separation)


def geometry_metrics(geometry: GeometryAnalysis, key: str) -> GeometryMetrics:
    maps = geometry.maps
    top = seed_top_rows(len(maps.y))
    summary = maps.summary()
    return GeometryMetrics(
        grid=key, precision=maps.precision,
        magnification_median=summary["magnification_median"],
        magnification_p95=summary["magnification_p95"],
        condition_median=summary["condition_median"], top_rows=top,
        top_rows_length_share=geo.top_rows_length_share(maps.step_x, maps.step_y, top),
        geodesics={name: GeodesicMetrics(g.length, g.straight_length, g.ratio)
                   for name, _, g in geometry.paths},
        separation={name: SeparationMetrics(s.between, s.within, s.ratio, s.points_used)
                    for name, s in geometry.separation.items()},
        grid_rows=len(maps.y),
    )  # fmt: skip


def atlas_spec(grid: DecodedGrid, steps: int) -> GridSpec:
    """An even ``steps`` × ``steps`` grid over ``grid``'s plane and range (the explorer's
    background is drawn on the same points)."""
    return atlas_spec_over(grid.spec, grid.x, grid.y, steps)


def analyze_atlas(
    model: Model,
    classifier: OnnxModel,
    grid: DecodedGrid,
    embeddings: np.ndarray | None,
    steps: int,
) -> AtlasAnalysis:
    """The dense atlas over ``grid``'s plane and range, and its brightness gradient."""
    atlas = compute_atlas(model.decoder, classifier, atlas_spec(grid, steps), embeddings=embeddings)
    d1, d2 = br.brightness_gradient(atlas.brightness, atlas.x, atlas.y)
    return AtlasAnalysis(atlas, br.gradient_magnitude(d1, d2))


# ---------------------------------------------------------------------------- several models
T = TypeVar("T")
R = TypeVar("R")


class Stopped(Exception):
    """A worker thread's analysis given up because another one failed or the run was
    interrupted (raised at its next stage)."""


def in_parallel(
    items: Sequence[T],
    work: Callable[[T, Callable[[str], None]], R],
    workers: int,
    stage: Callable[[str], None] = lambda s: None,
) -> list[R]:
    """``work(item, stage)`` for every item, in order, on ``workers`` threads (onnxruntime,
    numpy and scikit-learn release the GIL for their heavy parts, so two models analysed at
    once use two cores where one model's Python and numpy steps left one idle).

    The first failure (or Ctrl-C / SIGTERM, which reach the main thread) stops the others at
    their next stage, and is raised. ``stage`` may be called from several threads at once; a
    stage callback with an ``end`` method gets it called when a thread's item is done.
    """
    if workers <= 1 or len(items) <= 1:
        return [_ended(work, item, stage, stage) for item in items]
    one_malloc_arena()
    end = getattr(stage, "end", None)
    if end is not None:  # the calling thread's stage ends where the threads' stages begin
        end()
    stop = threading.Event()

    def checked(name: str) -> None:
        if stop.is_set():
            raise Stopped(name)
        stage(name)

    with ThreadPoolExecutor(workers, thread_name_prefix="analysis") as pool:
        futures = [pool.submit(_ended, work, item, checked, stage) for item in items]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # the first to fail, if any
            for f in futures:
                if f in done and f.exception() is not None:
                    f.result()  # raises it (the except below stops the others)
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise


def _ended(
    work: Callable[[T, Callable[[str], None]], R],
    item: T,
    stage: Callable[[str], None],
    timer: Callable[[str], None],
) -> R:
    """``work(item, stage)``, then the end of this thread's last stage (``timer.end``)."""
    try:
        return work(item, stage)
    finally:
        end = getattr(timer, "end", None)
        if end is not None:
            end()


def analyze_models(
    sources: Sequence[Path | Model],
    names: Sequence[str],
    classifier_path: Path | None,
    data: ImageDataset,
    cfg: AnalysisConfig,
    cache: Cache | None = None,
    stage: Callable[[str], None] = lambda s: None,
    workers: int | None = None,
) -> list[ModelAnalysis]:
    """:func:`analyze_model` for every model, on ``workers`` threads at once (None: one per
    usable core). The sessions and the classifier's features of the real test set are made
    first, once, and shared; each model's numbers are those it gets alone."""
    cache = cache or Cache()
    workers = parallel_workers(len(sources)) if workers is None else workers
    run_cfg = session_threads(cfg, workers)
    if workers > 1:  # shared state built before the threads start
        if classifier_path is not None:
            clf = cache.classifier(classifier_path, data, run_cfg)
            real_features(clf, data, run_cfg, cache, workers)
        for source in sources:
            if not isinstance(source, Model):
                cache.model(source, run_cfg, data.image_shape)
    pairs = list(zip(sources, names, strict=True))
    analyses = in_parallel(
        pairs,
        lambda p, st: analyze_model(p[0], classifier_path, data, run_cfg, cache, p[1], st),
        workers,
        stage,
    )
    release_freed_memory()
    return analyses
