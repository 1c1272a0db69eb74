"""Decoder geometry of a model: maps of the pullback metric over a grid, and geodesics.

The toolkit decodes (``toolkit.jacobian``: images and finite-difference Jacobians, streamed);
``analysis.geometry`` measures (metric, magnification, graphs, the Gauss–Newton step); this
module joins them: ``geometry_maps`` streams a grid through both in bounded memory, and
``geodesic`` finds a shortest path between two codes — Dijkstra on a grid graph whose edges
are image-space distances (Chen et al. 2018), then a polyline of least curve energy
(Arvanitidis et al. 2018; stochman's approach), so that the grid's direction bias (up to 8 %
with 8 neighbours) does not stay in the length.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.analysis import geometry as geo
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.grid import GridSpec, Plane
from latent_atlas.toolkit.jacobian import PRECISIONS, differentiable, iter_jacobians, jacobian
from latent_atlas.toolkit.runtime import Model


# ---------------------------------------------------------------------------- maps
@dataclass
class GeometryMaps:
    """The pullback metric over a grid: ``cells[i, j]`` at ``(x[j], y[i])`` on ``plane``.

    ``magnification`` ``[ny, nx]`` (``√det G``, image units² per plane unit²),
    ``condition`` ``[ny, nx]`` (``λ_max/λ_min`` of G, >= 1), ``step_x`` ``[ny, nx − 1]`` and
    ``step_y`` ``[ny − 1, nx]`` (image-space length of one grid step), ``brightness``
    ``[ny, nx]`` (mean pixel), ``precision`` the float type the Jacobians were computed in.
    """

    x: np.ndarray
    y: np.ndarray
    plane: Plane
    magnification: np.ndarray
    condition: np.ndarray
    step_x: np.ndarray
    step_y: np.ndarray
    brightness: np.ndarray
    precision: str

    def summary(self) -> dict[str, float]:
        """Median and 95th percentile of the magnification; median condition number; the
        grid's total image-space length (all steps along both axes)."""
        cond = self.condition[np.isfinite(self.condition)]
        return {
            "magnification_median": float(np.median(self.magnification)),
            "magnification_p95": float(np.percentile(self.magnification, 95)),
            "condition_median": float(np.median(cond)) if len(cond) else math.inf,
            "total_step_length": float(self.step_x.sum() + self.step_y.sum()),
        }


PROBE_POINTS = 256  # grid points decoded (and checked) before the maps


def geometry_maps(
    model: Model,
    spec: GridSpec,
    embeddings: np.ndarray | None = None,
    precision: str = "auto",
    chunk_rows: int | None = None,
) -> GeometryMaps:
    """Metric maps of ``model`` over ``spec``'s grid, streamed in blocks of whole rows.

    Memory: one block's stencil (``toolkit.jacobian.CHUNK_VALUES``) plus one row of images
    and the ``[ny, nx]`` maps, whatever the grid's size. For a latent space of more than two
    dims the Jacobian is restricted to the plane (``plane.basis``): the maps measure the
    plane's own geometry, per unit of its coordinates.
    """
    if precision not in PRECISIONS:
        raise AtlasError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    plane = spec.resolve_plane(model.latent_dim, embeddings)
    x, y = spec.coordinates(embeddings, plane)
    nx, ny = len(x), len(y)
    pixels = math.prod(model.image_shape)
    if chunk_rows is None:  # rows per block: the stencil of a block within the chunk budget
        from latent_atlas.toolkit.jacobian import chunk_points

        chunk_rows = max(1, chunk_points(pixels, 2) // nx)
    # the grid's own decodes first, a strided sample of them: a decoder that gives NaN or
    # pixels outside [0, 1] is refused with the message `grid` and `report` give, before the
    # finite differences (which would only say that their numbers are not finite)
    probe = np.unique(np.linspace(0, nx * ny - 1, min(nx * ny, PROBE_POINTS)).astype(np.int64))
    model.decode(plane.points(x[probe % nx], y[probe // nx]))
    mag = np.empty((ny, nx))
    cond = np.empty((ny, nx))
    bright = np.empty((ny, nx))
    step_x = np.empty((ny, nx - 1))
    step_y = np.empty((ny - 1, nx))
    previous: np.ndarray | None = None  # the last row of images of the previous block
    run, kind = _differentiable(model, precision)
    for r0 in range(0, ny, chunk_rows):
        r1 = min(ny, r0 + chunk_rows)
        points = spec.points(x, y, plane, r0 * nx, r1 * nx)
        [(_, images, jac)] = list(iter_jacobians(run, points, plane.basis, len(points), kind))
        g = geo.pullback_metric(jac)
        mag[r0:r1] = geo.magnification(g).reshape(r1 - r0, nx)
        cond[r0:r1] = geo.condition_number(g).reshape(r1 - r0, nx)
        block = images.reshape(r1 - r0, nx, -1)
        bright[r0:r1] = block.mean(axis=2)
        # steps along y reach back to the previous block's last row
        stack = block if previous is None else np.concatenate([previous[None], block])
        if len(stack) > 1:
            sx, sy = geo.grid_step_lengths(stack)
            step_x[r0:r1] = sx[len(stack) - (r1 - r0) :]
            first = r0 - (previous is not None)
            step_y[first : first + len(sy)] = sy
        else:  # a first block of one row: no step along y yet
            step_x[r0:r1] = np.linalg.norm(np.diff(block, axis=1), axis=2)
        previous = block[-1].copy()
    return GeometryMaps(x, y, plane, mag, cond, step_x, step_y, bright, kind)


def _differentiable(model: Model, precision: str) -> tuple[Callable, str]:
    """The decode function to difference (a float64 copy of the graph where onnxruntime
    allows, built once) and the precision name to pass on with it."""
    run, dtype = differentiable(model.decoder, precision)
    return run, "float64" if dtype is np.float64 else "float32"


# ---------------------------------------------------------------------------- geodesics
@dataclass
class Geodesic:
    """A shortest path between two codes under the decoder's pullback metric.

    ``points`` ``[T, D]`` latent codes from ``z0`` to ``z1``; ``images`` ``[T, C, H, W]``
    decoded along it; ``length`` its length in image space, ``Σ‖f(z_{i+1}) − f(z_i)‖₂`` over
    all pixel values, unnormalised (image units: the limit of fine steps is ``∫‖J ż‖ dt``);
    ``straight_length`` the same for the straight segment from ``z0`` to ``z1`` at ``T``
    points; ``graph_length`` the Dijkstra path's length on the grid graph (NaN without one);
    ``iterations`` Gauss–Newton steps taken.
    """

    points: np.ndarray
    images: np.ndarray
    length: float
    straight_length: float
    graph_length: float = math.nan
    iterations: int = 0
    energy: list[float] = field(default_factory=list)
    straight_images: np.ndarray | None = None  # [T, C, H, W] along the straight segment

    @property
    def ratio(self) -> float:
        """``length / straight_length``: at most 1 (up to the solver's tolerance)."""
        return self.length / self.straight_length if self.straight_length > 0 else 1.0

    def to_json(self) -> dict:
        return {
            "length": self.length,
            "straight_length": self.straight_length,
            "ratio": self.ratio,
            "graph_length": None if math.isnan(self.graph_length) else self.graph_length,
            "iterations": self.iterations,
            "points": [[float(f"{v:.6g}") for v in p] for p in self.points],
        }


@dataclass(frozen=True)
class GeodesicConfig:
    """How a geodesic is found: ``graph_steps`` points per axis of the initial graph (0: start
    from the straight line), ``neighbours`` 8 or 16, ``points`` on the refined polyline,
    ``iterations`` Gauss–Newton steps at most, ``tolerance`` on the energy's relative
    decrease, ``precision`` of the Jacobians."""

    graph_steps: int = 64
    neighbours: int = 8
    points: int = 32
    iterations: int = 50
    tolerance: float = 1e-7
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.graph_steps != 0 and not 2 <= self.graph_steps <= 1024:
            raise AtlasError(f"graph steps {self.graph_steps}: expected 0 or 2..1024")
        if self.neighbours not in geo.NEIGHBOURS:
            raise AtlasError(f"neighbours {self.neighbours}: expected 8 or 16")
        if not 3 <= self.points <= 1024:
            raise AtlasError(f"geodesic points {self.points}: expected 3..1024")
        if not 0 <= self.iterations <= 10_000:
            raise AtlasError(f"iterations {self.iterations}: expected 0..10000")
        if not 0 < self.tolerance < 1:
            raise AtlasError(f"tolerance {self.tolerance}: expected 0 < tolerance < 1")
        if self.precision not in PRECISIONS:
            raise AtlasError(f"precision {self.precision!r}: expected {', '.join(PRECISIONS)}")


def _code(z: object, d: int, name: str) -> np.ndarray:
    try:
        v = np.asarray(z, np.float64)
    except (TypeError, ValueError):
        raise AtlasError(f"{name}: {z!r}, expected {d} finite numbers (a code)") from None
    if v.shape != (d,) or not np.isfinite(v).all():
        raise AtlasError(f"{name}: shape {v.shape}, expected {d} finite numbers (a code)")
    return v


def refine(
    model: Model,
    plane_origin: np.ndarray,
    basis: np.ndarray,
    start: np.ndarray,
    config: GeodesicConfig,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Gauss–Newton (Levenberg–Marquardt) on the polyline's energy, in the coordinates
    ``t`` of ``z = origin + t·basis``, ends fixed. Returns (t, images, energy per step)."""

    def decode(t: np.ndarray) -> np.ndarray:
        return model.decode((plane_origin[None] + t @ basis).astype(np.float32))

    run, kind = _differentiable(model, config.precision)
    t = np.asarray(start, np.float64)
    images = decode(t)
    energy = [geo.polyline_energy(images)]
    damping = 1e-3
    for _ in range(config.iterations):
        _, jac = jacobian(run, plane_origin[None] + t @ basis, basis, precision=kind)
        for _try in range(12):
            step = geo.gauss_newton_step(images, jac, damping)
            trial = t + step
            trial_images = decode(trial)
            e = geo.polyline_energy(trial_images)
            if e < energy[-1]:
                damping = max(damping / 3, 1e-9)
                break
            damping *= 4
        else:
            break  # no step lowers the energy: a minimum (within float32 decodes)
        t, images = trial, trial_images
        decrease = (energy[-1] - e) / max(energy[-1], 1e-300)
        energy.append(e)
        if decrease < config.tolerance:
            break
    return t, images, energy


def geodesic(
    model: Model,
    z0: object,
    z1: object,
    config: GeodesicConfig | None = None,
    plane: Plane | None = None,
    value_range: tuple[float, float] = (-4.0, 4.0),
    graphs: dict | None = None,
) -> Geodesic:
    """The geodesic from ``z0`` to ``z1`` (latent codes, ``[D]``).

    On a plane (``plane``, or the latent space itself when ``D = 2``) it starts from the
    shortest path on a ``graph_steps²`` grid over ``value_range`` (widened to hold both
    ends); for ``D > 2`` without a plane, from the straight line, refined in all ``D`` dims.
    ``graphs``: a dict to keep the grid graphs in, for further geodesics of the same model
    (one graph per plane and range, decoded once).
    """
    cfg = config or GeodesicConfig()
    d = model.latent_dim
    a, b = _code(z0, d, "z0"), _code(z1, d, "z1")
    if plane is None and d == 2:
        plane = Plane("axes", np.zeros(2), np.eye(2), ("z₀", "z₁"))
    if plane is not None:
        origin, basis = plane.origin.astype(np.float64), plane.basis.astype(np.float64)
        ta, tb = plane.project(a[None])[0], plane.project(b[None])[0]
    else:
        origin, basis = np.zeros(d), np.eye(d)
        ta, tb = a, b
    straight_t = np.linspace(ta, tb, cfg.points)
    graph_length = math.nan
    if plane is not None and cfg.graph_steps:
        init, graph_length = _graph_start(model, origin, basis, ta, tb, cfg, value_range,
                                          {} if graphs is None else graphs)  # fmt: skip
    else:
        init = straight_t
    t, images, energy = refine(model, origin, basis, init, cfg)
    straight = model.decode((origin[None] + straight_t @ basis).astype(np.float32))
    if init is not straight_t and geo.polyline_length(images) > geo.polyline_length(straight):
        # the graph's start led to a worse local minimum than the straight line (two nearby
        # points snapped to nodes): refine from the straight line too and keep the shorter
        t2, images2, energy2 = refine(model, origin, basis, straight_t, cfg)
        if geo.polyline_length(images2) < geo.polyline_length(images):
            t, images, energy = t2, images2, energy + energy2
    return Geodesic(
        points=origin[None] + t @ basis, images=images,
        length=geo.polyline_length(images), straight_length=geo.polyline_length(straight),
        graph_length=graph_length, iterations=len(energy) - 1, energy=energy,
        straight_images=straight,
    )  # fmt: skip


def _graph_start(
    model: Model,
    origin: np.ndarray,
    basis: np.ndarray,
    ta: np.ndarray,
    tb: np.ndarray,
    cfg: GeodesicConfig,
    value_range: tuple[float, float],
    graphs: dict,
) -> tuple[np.ndarray, float]:
    """The Dijkstra path on a grid over the range (widened to hold both ends), as a
    polyline from ``ta`` to ``tb`` resampled to ``cfg.points`` points, and its length.
    ``graphs``: the grid graphs built already, by plane and range (this one is added)."""
    lo = float(min(value_range[0], ta.min(), tb.min()))
    hi = float(max(value_range[1], ta.max(), tb.max()))
    key = (origin.tobytes(), basis.tobytes(), lo, hi, cfg.graph_steps, cfg.neighbours)
    if key not in graphs:
        axis = np.linspace(lo, hi, cfg.graph_steps)
        u, v = np.meshgrid(axis, axis)  # row i: v = axis[i]
        coords = np.stack([u.ravel(), v.ravel()], axis=1)
        images = model.decode((origin[None] + coords @ basis).astype(np.float32))
        steps = (cfg.graph_steps, cfg.graph_steps)
        graphs[key] = coords, geo.grid_graph(images, steps, cfg.neighbours)
    coords, graph = graphs[key]
    snap = [int(np.argmin(((coords - t) ** 2).sum(axis=1))) for t in (ta, tb)]
    nodes, length = geo.graph_path(graph, snap[0], snap[1])
    poly = np.concatenate([ta[None], coords[nodes[1:-1]], tb[None]])
    return geo.resample_polyline(poly, cfg.points), length


# ---------------------------------------------------------------------------- class separation
def class_separations(
    model: Model,
    plane: Plane,
    coords: np.ndarray,
    labels: np.ndarray,
    groups: Mapping[str, Sequence[Sequence[int]]],
    steps: int,
    value_range: tuple[float, float] = (-4.0, 4.0),
    neighbours: int = 16,
) -> dict[str, geo.GeodesicSeparation]:
    """``analysis.geometry.geodesic_separation`` of each named set of class groups, on one
    ``steps``² graph of decoded images over where the codes lie: the box of the plane
    coordinates' 1st–99th percentiles per axis, widened to hold ``value_range`` (so an
    autoencoder's codes far outside the seed's [-4, 4]² are measured too; the 2 % or so beyond
    the percentiles are left out of the spread, ``points_used``). 16 neighbours cut the
    graph's direction bias to about 3 %."""
    c = np.asarray(coords, np.float64)
    lo = np.minimum(np.percentile(c, 1, axis=0), value_range[0])
    hi = np.maximum(np.percentile(c, 99, axis=0), value_range[1])
    x, y = np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps)
    u, v = np.meshgrid(x, y)  # row i: y[i]
    t = np.stack([u.ravel(), v.ravel()], axis=1)
    images = model.decode((plane.origin[None] + t @ plane.basis).astype(np.float32))
    graph = geo.grid_graph(images, (steps, steps), neighbours)
    return {name: geo.geodesic_separation(graph, x, y, c, labels, g) for name, g in groups.items()}


# ---------------------------------------------------------------------------- the command
@dataclass(frozen=True)
class GeometryRunConfig:
    """What ``latent-atlas geometry`` does: ``models`` (folders or decoder files) measured over
    ``spec``; geodesics between the plane points ``paths`` (``(u0, v0, u1, v1)`` each) and
    between the test-set centroids of the class pairs ``centroids`` (names or label numbers;
    needs an encoder and the data)."""

    models: tuple[Path, ...]
    spec: GridSpec = GridSpec()
    paths: tuple[tuple[float, float, float, float], ...] = ()
    centroids: tuple[tuple[str, str], ...] = ()
    geodesic: GeodesicConfig = GeodesicConfig()
    data: str | None = None
    class_names: Path | None = None
    provider: str = "auto"
    threads: int = 0
    batch_size: int = 4096
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.models:
            raise AtlasError("--model: none given; expected at least one model")
        for p in self.paths:
            if len(p) != 4 or not all(math.isfinite(v) for v in p):
                raise AtlasError(f"--path {p}: expected four finite numbers U0 V0 U1 V1")
        for pair in self.centroids:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise AtlasError(f"--centroids {pair}: expected two different classes")


def _class_index(name: str, class_names: Sequence[str]) -> int:
    lowered = [c.lower() for c in class_names]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    if name.isdigit() and int(name) < len(class_names):
        return int(name)
    raise AtlasError(
        f"--centroids {name!r}: no such class; expected a name or number of "
        f"{', '.join(class_names)}"
    )


def run_geometry(cfg: GeometryRunConfig, out: Path) -> list[Path]:
    """Maps (``.npz``, ``.png``, ``.json``) and geodesics for each model; returns the files."""
    from latent_atlas.analysis.geometry_plots import geodesic_strips_png, geometry_maps_png
    from latent_atlas.settings import check_fits, check_runtime
    from latent_atlas.shipped import input_paths
    from latent_atlas.toolkit import names
    from latent_atlas.toolkit.atomic import check_file_target, check_output_dir, write_bytes
    from latent_atlas.toolkit.runtime import load

    check_runtime(cfg.provider, cfg.threads, cfg.batch_size)
    check_output_dir(out)
    protect = (*input_paths([str(m) for m in cfg.models]), cfg.data)
    models = [load(m, cfg.provider, cfg.threads) for m in cfg.models]
    labels = [names.display_text(m.name) for m in models]
    stems = [f"{slug}_{cfg.spec.key()}_geometry" for slug in names.unique_slugs(labels)]
    wants_paths = bool(cfg.paths or cfg.centroids)
    for stem in stems:
        for ext in (".npz", ".png", ".json", *(("_paths.png",) if wants_paths else ())):
            check_file_target(out / f"{stem}{ext}", cfg.overwrite, protect)
    needs_data = (
        bool(cfg.centroids)
        or cfg.spec.mode == "auto"
        or cfg.spec.plane == "pca"
        or (cfg.spec.fixed == "mean" and any(m.latent_dim > 2 for m in models))
    )
    data = None
    pairs: list[tuple[int, int]] = []
    if cfg.centroids and any(m.encoder is None for m in models):
        bad = next(m for m in models if m.encoder is None)
        raise AtlasError(
            f"--centroids: model {bad.source} has no encoder, so no class centroids; expected "
            "models with encoder.onnx, or --path U0 V0 U1 V1"
        )
    if needs_data and any(m.encoder is not None for m in models):
        from latent_atlas.toolkit.data import load_dataset

        data = load_dataset(cfg.data, train=False, class_names=cfg.class_names)
        pairs = [(_class_index(a, data.class_names), _class_index(b, data.class_names))
                 for a, b in cfg.centroids]  # fmt: skip
    written: list[Path] = []
    for model, label, stem in zip(models, labels, stems, strict=True):
        embeddings = None
        if data is not None and model.encoder is not None:
            check_fits(model, data)
            embeddings = model.encode(data.test.images, cfg.batch_size)
        maps = geometry_maps(model, cfg.spec, embeddings, cfg.geodesic.precision)
        plane = maps.plane
        ends: list[tuple[str, np.ndarray, np.ndarray]] = [
            (f"({u0:g}, {v0:g}) to ({u1:g}, {v1:g})", np.array([u0, v0]), np.array([u1, v1]))
            for u0, v0, u1, v1 in cfg.paths
        ]
        if cfg.centroids and data is not None and embeddings is not None:
            coords = plane.project(embeddings)
            for a, b in pairs:
                ca = coords[data.test.labels == a].mean(axis=0)
                cb = coords[data.test.labels == b].mean(axis=0)
                ends.append((f"{data.class_names[a]} to {data.class_names[b]}", ca, cb))
        lo = min(cfg.spec.x_range[0], cfg.spec.y_range[0], float(maps.x[0]), float(maps.y[0]))
        hi = max(cfg.spec.x_range[1], cfg.spec.y_range[1], float(maps.x[-1]), float(maps.y[-1]))
        results: list[tuple[str, Geodesic, np.ndarray, np.ndarray]] = []
        for name, ta, tb in ends:
            za = plane.origin + ta @ plane.basis
            zb = plane.origin + tb @ plane.basis
            g = geodesic(model, za, zb, cfg.geodesic, plane=plane, value_range=(lo, hi))
            straight_t = np.linspace(ta, tb, cfg.geodesic.points)
            results.append((name, g, straight_t, plane.project(g.points)))
        desc = plane.describe()
        title = f"{label}: decoder geometry, {cfg.spec.describe()}" + (f", {desc}" if desc else "")
        png = geometry_maps_png(
            maps.x, maps.y, maps.magnification, maps.condition, maps.step_x, maps.step_y,
            plane.labels, title, [(s, p) for _, _, s, p in results],
        )  # fmt: skip
        written.append(write_bytes(out / f"{stem}.png", png, cfg.overwrite, protect))
        arrays: dict[str, Any] = {
            "x": maps.x, "y": maps.y, "magnification": maps.magnification,
            "condition": maps.condition, "step_x": maps.step_x, "step_y": maps.step_y,
            "brightness": maps.brightness, "plane_origin": plane.origin,
            "plane_basis": plane.basis,
        }  # fmt: skip
        for k, (_, g, _, p) in enumerate(results):
            arrays[f"path{k + 1}_points"] = g.points
            arrays[f"path{k + 1}_plane"] = p
            arrays[f"path{k + 1}_images"] = g.images
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        written.append(write_bytes(out / f"{stem}.npz", buf.getvalue(), cfg.overwrite, protect))
        doc = {
            "model": label,
            "grid": cfg.spec.describe(),
            "plane": plane.to_json(),
            "precision": maps.precision,
            "units": "image-space lengths: Euclidean norm over all pixel values, unnormalised; "
            "magnification per unit of plane coordinates squared",
            "summary": maps.summary(),
            "geodesics": [{"name": name, **g.to_json()} for name, g, _, _ in results],
        }
        written.append(write_bytes(out / f"{stem}.json",
                                   (json.dumps(doc, indent=2) + "\n").encode(), cfg.overwrite,
                                   protect))  # fmt: skip
        if results:
            strips = []
            for name, g, straight_t, _ in results:
                straight = model.decode(
                    (plane.origin + straight_t @ plane.basis).astype(np.float32)
                )
                strips.append((name, straight, g.images, g.straight_length, g.length))
            png = geodesic_strips_png(strips, f"{label}: straight line vs geodesic")
            written.append(write_bytes(out / f"{stem}_paths.png", png, cfg.overwrite, protect))
    return written
