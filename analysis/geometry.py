"""Decoder geometry: how a decoder stretches its latent plane onto image space.

A decoder ``f`` maps plane coordinates ``t ∈ R^k`` (k = 2 on a plane) to images in ``R^P``.
Its Jacobian ``J(t)`` (``[P, k]``, from ``toolkit.jacobian``) pulls the Euclidean metric of
image space back to the latent plane: ``G(t) = J(t)ᵀ J(t)`` (Arvanitidis, Hansen & Hauberg
2018, "Latent space oddity"). Everything here is arrays in, numbers out:

- ``pullback_metric``, ``magnification`` (``√det G``, the image-space area of a unit latent
  square; Bishop, Svensén & Williams 1997 for the GTM), ``condition_number`` (anisotropy),
  ``grid_step_lengths`` (image-space length of one grid step along each axis);
- curves: ``polyline_length`` ``Σ‖f(t_{i+1}) − f(t_i)‖₂`` and ``polyline_energy``
  ``(T − 1)·Σ‖f(t_{i+1}) − f(t_i)‖²`` of a decoded polyline (the discrete length and energy of
  a curve on [0, 1] with T points; a curve of least energy has constant speed and least
  length), ``DecoderMetric`` (stochman's protocol: ``curve_length``/``curve_energy`` of latent
  polylines through any decode function) and ``gauss_newton_step`` (one step of least energy
  for a polyline with fixed ends; the loop that decodes lives in ``latent_atlas.geometry``);
- graphs: ``grid_graph`` (8 or 16 neighbours on a grid, edge weight = the Euclidean distance
  between the two decoded images; Chen et al. 2018, "Metrics for deep generative models") and
  ``graph_path`` (Dijkstra, ``scipy.sparse.csgraph``);
- ``geodesic_separation``: how far apart groups of classes lie on such a graph, per their own
  geodesic spread (the seed study's claim 2 in geometric terms).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

NEIGHBOURS = (8, 16)
# grid offsets (drow, dcol) of one half of each neighbourhood; the graph is undirected
_OFFSETS = {
    8: ((0, 1), (1, 0), (1, 1), (1, -1)),
    16: ((0, 1), (1, 0), (1, 1), (1, -1), (1, 2), (1, -2), (2, 1), (2, -1)),
}
# edges measured at once: bounds the temporary float64 [edges, P] differences (12.5 MB for
# 28×28 images; 16 384 edges held 100 MB, twice over, in each model's thread of a report)
_EDGE_CHUNK = 2_048
_ZERO_PATH = 1e-300  # below: a path made of zero-length edges only (see grid_graph)


def _jac(jacobian: np.ndarray, name: str = "jacobian") -> np.ndarray:
    j = np.asarray(jacobian)
    if j.ndim != 3 or j.shape[0] == 0 or j.shape[2] == 0:
        raise AtlasError(f"{name}: shape {j.shape}, expected [N, P, k] with N, k >= 1")
    if j.dtype.kind not in "fiu" or not np.isfinite(j).all():
        raise AtlasError(f"{name}: expected finite numbers")
    return j


def _flat(images: np.ndarray, name: str, min_rows: int = 1) -> np.ndarray:
    """``[N, ...]`` images as ``[N, P]`` (a view where possible), checked finite."""
    x = np.asarray(images)
    if x.ndim < 2 or len(x) < min_rows:
        raise AtlasError(f"{name}: shape {x.shape}, expected [N, ...] images with N >= {min_rows}")
    if x.dtype.kind not in "fiu" or not np.isfinite(x).all():
        raise AtlasError(f"{name}: expected finite numbers")
    return x.reshape(len(x), -1)


# ---------------------------------------------------------------------------- the metric
def pullback_metric(jacobian: np.ndarray) -> np.ndarray:
    """``G = JᵀJ`` at each point.

    Parameters
    ----------
    jacobian : array [N, P, k]
        ``∂f/∂t`` at N points (P image values, k latent directions).

    Returns
    -------
    array [N, k, k], float64
        Symmetric positive semi-definite; units (image units / latent unit)².
    """
    # as [N, k, P] (contiguous when J is the transposed view toolkit.jacobian yields), in
    # float64 so that det G of a nearly singular G keeps its digits; one batched product
    jt = np.ascontiguousarray(_jac(jacobian).transpose(0, 2, 1), np.float64)
    return np.matmul(jt, jt.transpose(0, 2, 1))


def _metric(metric: np.ndarray) -> np.ndarray:
    g = np.asarray(metric, np.float64)
    if g.ndim != 3 or g.shape[1] != g.shape[2] or len(g) == 0:
        raise AtlasError(f"metric: shape {g.shape}, expected [N, k, k]")
    if not np.isfinite(g).all():
        raise AtlasError("metric: expected finite numbers")
    return g


def magnification(metric: np.ndarray) -> np.ndarray:
    """The magnification factor ``√det G``: image-space volume per unit latent volume.

    Parameters
    ----------
    metric : array [N, k, k]
        Pullback metrics (``pullback_metric``).

    Returns
    -------
    array [N], float64, >= 0
        For ``f(t) = A t``: ``√det(AᵀA)`` everywhere. Scaling the latent by ``s``
        (``f(t/s)``) divides it by ``s^k``. 0 where ``J`` is rank-deficient.
    """
    g = _metric(metric)
    if g.shape[1] == 2:  # the plane's case, in closed form (LAPACK per 2×2 is 10× slower)
        det = g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]
    else:
        det = np.linalg.det(g)
    return np.sqrt(np.maximum(det, 0.0))  # round-off can make a singular G's det -1e-30


def condition_number(metric: np.ndarray) -> np.ndarray:
    """The metric's anisotropy: ``λ_max / λ_min`` of ``G`` (the squared ratio of the longest
    and shortest image-space step a unit latent step can make).

    Returns
    -------
    array [N], float64, >= 1; ``inf`` where ``G`` is singular (``λ_min <= 1e-12·λ_max``).
    """
    g = _metric(metric)
    if g.shape[1] == 2:  # λ = (tr ± √(tr² − 4 det)) / 2, with λ_min = det/λ_max (no cancellation)
        tr = g[:, 0, 0] + g[:, 1, 1]
        det = g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]
        hi = (tr + np.sqrt(np.maximum(tr**2 - 4 * det, 0.0))) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = np.where(hi > 0, det / hi, 0.0)
    else:
        eig = np.linalg.eigvalsh(g)  # ascending
        lo, hi = eig[:, 0], eig[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = hi / lo
    return np.where(lo > 1e-12 * hi, ratio, np.inf)


def grid_step_lengths(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-space length of one grid step along each axis.

    Parameters
    ----------
    cells : array [ny, nx, ...]
        Decoded grid, ``cells[i, j]`` at ``(x[j], y[i])``.

    Returns
    -------
    along_x : array [ny, nx - 1]
        ``‖f(x[j+1], y[i]) − f(x[j], y[i])‖₂``.
    along_y : array [ny - 1, nx]
        ``‖f(x[j], y[i+1]) − f(x[j], y[i])‖₂``.
    """
    c = np.asarray(cells)
    if c.ndim < 3 or c.shape[0] < 2 or c.shape[1] < 2:
        raise AtlasError(f"cells: shape {c.shape}, expected [ny, nx, ...] with ny, nx >= 2")
    if not np.isfinite(c).all():
        raise AtlasError("cells: expected finite numbers")
    # differences in the cells' own dtype (exact to an ulp for close pixel values); the norm's
    # pairwise summation keeps float32 within ~1e-6 relative
    flat = c.reshape(c.shape[0], c.shape[1], -1)
    return (
        np.linalg.norm(np.diff(flat, axis=1), axis=2).astype(np.float64),
        np.linalg.norm(np.diff(flat, axis=0), axis=2).astype(np.float64),
    )


def top_rows_length_share(step_x: np.ndarray, step_y: np.ndarray, rows: int) -> float:
    """The share of a grid's total image-space length (every step along both axes) that lies
    within its first ``rows`` rows (the lowest y: the seed study drew z₁ = −4 at the top, so
    its "top rows" are these).

    Parameters
    ----------
    step_x : array [ny, nx − 1]
    step_y : array [ny − 1, nx]
    rows : int, 1 <= rows <= ny

    Returns
    -------
    float in [0, 1]; for a decoder that stretches the plane evenly, about ``rows / ny``.
    """
    sx, sy = np.asarray(step_x, np.float64), np.asarray(step_y, np.float64)
    ny = sx.shape[0]
    if sy.shape[0] != ny - 1 or sy.shape[1] != sx.shape[1] + 1:
        raise AtlasError(f"step_y: shape {sy.shape}, expected [{ny - 1}, {sx.shape[1] + 1}]")
    if not 1 <= rows <= ny:
        raise AtlasError(f"rows {rows}: expected 1..{ny}")
    total = sx.sum() + sy.sum()
    if not total > 0:
        return 0.0
    return float((sx[:rows].sum() + sy[: rows - 1].sum()) / total)


# ---------------------------------------------------------------------------- curves
def polyline_length(images: np.ndarray) -> float:
    """``Σ‖f_{i+1} − f_i‖₂`` over a decoded polyline ``images`` ``[T, ...]`` (T >= 2): the
    curve's length in image space, unnormalised (all pixel values, image units)."""
    f = _flat(images, "images", 2).astype(np.float64, copy=False)
    return float(np.linalg.norm(np.diff(f, axis=0), axis=1).sum())


def polyline_energy(images: np.ndarray) -> float:
    """``(T − 1)·Σ‖f_{i+1} − f_i‖²``: the energy ``∫‖ḟ‖² dt`` of the polyline on [0, 1] with
    equal time per segment. Always ``>= length²``, equal when every segment is as long."""
    f = _flat(images, "images", 2).astype(np.float64, copy=False)
    return float((len(f) - 1) * (np.diff(f, axis=0) ** 2).sum())


def energy_gradient(images: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """Gradient of ``polyline_energy`` with respect to each point, ends held fixed.

    ``∂E/∂t_i = 2(T − 1)·J_iᵀ(2f_i − f_{i−1} − f_{i+1})`` for interior ``i``, 0 at the ends.

    Parameters
    ----------
    images : array [T, ...]
    jacobian : array [T, P, k]

    Returns
    -------
    array [T, k], float64
    """
    f = _flat(images, "images", 2).astype(np.float64, copy=False)
    j = _jac(jacobian).astype(np.float64, copy=False)
    if j.shape[:2] != f.shape:
        raise AtlasError(f"jacobian: shape {j.shape}, expected [{len(f)}, {f.shape[1]}, k]")
    grad = np.zeros((len(f), j.shape[2]))
    lap = 2 * f[1:-1] - f[:-2] - f[2:]
    grad[1:-1] = 2 * (len(f) - 1) * np.einsum("tpk,tp->tk", j[1:-1], lap)
    return grad


def gauss_newton_step(images: np.ndarray, jacobian: np.ndarray, damping: float) -> np.ndarray:
    """One Levenberg–Marquardt step of least polyline energy, the ends fixed.

    Linearises ``f(t_i + δ_i) ≈ f_i + J_i δ_i`` and minimises
    ``Σ‖f_{i+1} − f_i + J_{i+1}δ_{i+1} − J_iδ_i‖² + 2·damping·Σ δ_iᵀ G_i δ_i`` over the interior
    ``δ``: the normal equations are block-tridiagonal (diagonal blocks ``2G_i`` scaled by
    ``1 + damping``, Marquardt's scaling, off-diagonal ``−J_iᵀJ_{i±1}``), solved densely
    (``(T − 2)·k`` unknowns). For a linear decoder and ``damping = 0`` one step lands on the
    exact minimiser: evenly spaced points on the straight line.

    Parameters
    ----------
    images : array [T, ...]
    jacobian : array [T, P, k]
    damping : float >= 0

    Returns
    -------
    array [T, k], float64: ``δ`` (zero rows at both ends).
    """
    f = _flat(images, "images", 3).astype(np.float64, copy=False)
    j = _jac(jacobian).astype(np.float64, copy=False)
    if j.shape[:2] != f.shape:
        raise AtlasError(f"jacobian: shape {j.shape}, expected [{len(f)}, {f.shape[1]}, k]")
    if not damping >= 0:
        raise AtlasError(f"damping {damping}: expected >= 0")
    t, k = len(f), j.shape[2]
    gram = np.einsum("tpi,tpj->tij", j, j)  # G_i
    cross = np.einsum("tpi,tpj->tij", j[:-1], j[1:])  # J_iᵀ J_{i+1}
    d = np.diff(f, axis=0)  # [T-1, P]
    jd_left = np.einsum("tpi,tp->ti", j[:-1], d)  # J_iᵀ d_i
    jd_right = np.einsum("tpi,tp->ti", j[1:], d)  # J_{i+1}ᵀ d_i
    n = t - 2
    h = np.zeros((n, k, n, k))
    g = np.zeros((n, k))
    for i in range(1, t - 1):  # interior point i touches segments i-1 (as right) and i (left)
        a = i - 1
        h[a, :, a, :] += 2 * gram[i] * (1 + damping)
        g[a] += jd_right[i - 1] - jd_left[i]
        if i + 1 < t - 1:
            h[a, :, a + 1, :] -= cross[i]
            h[a + 1, :, a, :] -= cross[i].T
    normal = h.reshape(n * k, n * k)
    # a tiny ridge keeps a flat (rank-deficient) stretch solvable; it moves nothing there
    ridge = 1e-12 * max(float(np.trace(normal)) / (n * k), 1e-300)
    delta = np.linalg.solve(normal + ridge * np.eye(n * k), -g.reshape(-1)).reshape(n, k)
    out = np.zeros((t, k))
    out[1:-1] = delta
    return out


class CurveMetric(Protocol):
    """What a geodesic solver asks of a space (stochman's ``Manifold`` protocol)."""

    def curve_length(self, points: np.ndarray) -> float: ...

    def curve_energy(self, points: np.ndarray) -> float: ...


@dataclass(frozen=True)
class DecoderMetric:
    """The pullback metric of a decoder, seen through its decodes.

    ``decode`` maps plane coordinates ``[T, k]`` to images ``[T, ...]``; ``jacobian`` (optional)
    maps them to ``(images [T, ...], J [T, P, k])``. Lengths and energies are those of the
    decoded polyline (``polyline_length``, ``polyline_energy``): for fine polylines they
    approach ``∫‖J ṫ‖ dt`` and ``∫‖J ṫ‖² dt``.
    """

    decode: Callable[[np.ndarray], np.ndarray]
    jacobian: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None

    def images(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(self.decode(_points(points)))

    def curve_length(self, points: np.ndarray) -> float:
        return polyline_length(self.images(points))

    def curve_energy(self, points: np.ndarray) -> float:
        return polyline_energy(self.images(points))


def _points(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or len(p) < 2 or not np.isfinite(p).all():
        raise AtlasError(f"points: shape {p.shape}, expected finite [T, k] with T >= 2")
    return p


def resample_polyline(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length (in the points' own coordinates) along the
    polyline ``points`` ``[M, k]``; the ends are kept."""
    p = _points(points)
    if n < 2:
        raise AtlasError(f"n {n}: expected >= 2 points")
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] == 0:
        return np.repeat(p[:1], n, axis=0)
    target = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(target, s, p[:, c]) for c in range(p.shape[1])], axis=1)


# ---------------------------------------------------------------------------- graphs
def grid_edges(shape: tuple[int, int], neighbours: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Each undirected edge of a ``(ny, nx)`` grid once: flat indices ``(a, b)``, ``a < b``.

    ``neighbours``: 8 (the king's moves) or 16 (plus the knight's moves, which cut the
    largest direction bias of a grid path from 8 % to about 3 %)."""
    if neighbours not in NEIGHBOURS:
        raise AtlasError(f"neighbours {neighbours}: expected 8 or 16")
    ny, nx = shape
    rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    a_all, b_all = [], []
    for dr, dc in _OFFSETS[neighbours]:
        r2, c2 = rows + dr, cols + dc
        ok = (r2 < ny) & (c2 >= 0) & (c2 < nx)
        a_all.append((rows * nx + cols)[ok])
        b_all.append((r2 * nx + c2)[ok])
    return np.concatenate(a_all), np.concatenate(b_all)


def grid_graph(images: np.ndarray, shape: tuple[int, int], neighbours: int = 8) -> csr_matrix:
    """The grid's graph with image-space edge lengths.

    Parameters
    ----------
    images : array [ny·nx, ...]
        Decoded grid in row-major order (``k = i·nx + j``), any float dtype (float32 is kept:
        a 256² grid of 28×28 images is 205 MB).
    shape : (ny, nx)
    neighbours : {8, 16}

    Returns
    -------
    scipy.sparse.csr_matrix [ny·nx, ny·nx]
        Symmetric; entry ``(a, b)`` = ``‖f_a − f_b‖₂`` for neighbours ``a, b``. An edge of
        length 0 (two equal images) is stored as the smallest positive float, so that it is
        still an edge for ``csgraph``.
    """
    ny, nx = shape
    f = _flat(images, "images")
    if len(f) != ny * nx:
        raise AtlasError(f"images: {len(f)} rows, expected ny·nx = {ny * nx}")
    a, b = grid_edges(shape, neighbours)
    w = np.empty(len(a))
    for s in range(0, len(a), _EDGE_CHUNK):
        diff = f[a[s : s + _EDGE_CHUNK]].astype(np.float64)
        diff -= f[b[s : s + _EDGE_CHUNK]]  # in float64, as a − b would be, without a copy
        w[s : s + _EDGE_CHUNK] = np.sqrt(np.einsum("ep,ep->e", diff, diff))
    w = np.maximum(w, np.finfo(np.float64).tiny)
    n = ny * nx
    return csr_matrix(
        (np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n)
    )


def graph_path(graph: csr_matrix, start: int, end: int) -> tuple[np.ndarray, float]:
    """The shortest path from node ``start`` to ``end`` (Dijkstra).

    Returns
    -------
    nodes : array [L] of int
        The path's nodes, ``start`` first and ``end`` last.
    length : float
        The sum of its edge weights.
    """
    n = graph.shape[0]
    for name, v in (("start", start), ("end", end)):
        if not 0 <= int(v) < n:
            raise AtlasError(f"{name} node {v}: expected 0 <= node < {n}")
    # stored in both directions: a directed search over it is the undirected one, and faster
    dist, pred = dijkstra(graph, directed=True, indices=int(start), return_predecessors=True)
    if not np.isfinite(dist[end]):
        raise AtlasError(f"nodes {start} and {end}: not connected; expected a connected graph")
    path = [int(end)]
    while path[-1] != start:
        path.append(int(pred[path[-1]]))
    return np.array(path[::-1]), float(dist[end])


# ---------------------------------------------------------------------------- class separation
@dataclass(frozen=True)
class GeodesicSeparation:
    """How far apart groups of classes lie under the decoder's metric, per their own spread.

    ``between``: mean geodesic distance between the groups' centroids (over every pair of
    groups); ``within``: mean over the groups of the mean geodesic distance from a group's
    points to its centroid; ``ratio = between / within`` (dimensionless: unchanged by any
    rescaling of the latent or of image space); ``points_used``: the share of points inside the
    graph's range (the others are left out).
    """

    between: float
    within: float
    ratio: float
    points_used: float


def geodesic_separation(
    graph: csr_matrix,
    x: np.ndarray,
    y: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[Sequence[int]],
) -> GeodesicSeparation:
    """Geodesic separation of groups of classes: the mean geodesic distance between the
    groups' centroids over the mean geodesic distance of their points from their centroid.

    Distances are shortest paths on ``graph`` (``grid_graph``: image-space edge lengths;
    Chen et al. 2018), from each centroid's nearest node to the nearest node of every point —
    one Dijkstra per group. Between and within are measured on the same graph, so its
    discretisation (a direction bias up to 8 % with 8 neighbours, ~3 % with 16) mostly
    cancels in the ratio. Centroids are the mean plane coordinates of all of a group's points;
    points outside ``[x₀, x_end] × [y₀, y_end]`` are left out of the spread.

    Parameters
    ----------
    graph : csr_matrix [ny·nx, ny·nx]
        The grid's graph, node ``i·nx + j`` at ``(x[j], y[i])``.
    x, y : array [nx], [ny]
        The grid's axes, increasing.
    points : array [N, 2]
        Plane coordinates (e.g. the test set's embeddings projected on the plane).
    labels : array [N] of int
        Class of each point.
    groups : sequence of sequences of int
        Each group a set of class labels (``[[6], [4], [9]]``: three classes;
        ``[[5, 7, 9], [0, 1, 2, 3, 4, 6, 8]]``: footwear against the rest); at least two,
        disjoint, each with a point.

    Returns
    -------
    GeodesicSeparation
        ``ratio`` in [0, ∞]: above 1 the groups lie further apart than they spread; ∞ when
        every group decodes to one image (no spread), NaN when all groups do alike. For a
        linear decoder ``f(t) = A t`` and points along the grid's axes, distances are
        ``‖A Δt‖₂``.
    """
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    nx, ny = len(xs), len(ys)
    if graph.shape != (nx * ny, nx * ny):
        raise AtlasError(f"graph: shape {graph.shape}, expected [{nx * ny}, {nx * ny}]")
    p = np.asarray(points, np.float64)
    lab = np.asarray(labels)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) != len(lab) or not np.isfinite(p).all():
        raise AtlasError(
            f"points: shape {p.shape} with {len(lab)} labels; expected finite [N, 2] and N labels"
        )
    sets = [set(int(c) for c in g) for g in groups]
    if len(sets) < 2 or any(not s for s in sets):
        raise AtlasError(f"groups {groups}: expected two or more non-empty groups of classes")
    if sum(map(len, sets)) != len(set().union(*sets)):
        raise AtlasError(f"groups {groups}: a class in two groups; expected disjoint groups")

    def node(t: np.ndarray) -> np.ndarray:  # the nearest grid node of each [M, 2] point
        j = np.abs(t[:, :1] - xs[None]).argmin(axis=1)
        i = np.abs(t[:, 1:] - ys[None]).argmin(axis=1)
        return i * nx + j

    inside = (p[:, 0] >= xs[0]) & (p[:, 0] <= xs[-1]) & (p[:, 1] >= ys[0]) & (p[:, 1] <= ys[-1])
    members = [np.isin(lab, sorted(s)) for s in sets]
    if any(not m.any() for m in members):
        raise AtlasError(f"groups {groups}: a group has no point; expected points of each")
    centres = node(np.stack([p[m].mean(axis=0) for m in members]))
    dist = dijkstra(graph, directed=True, indices=centres)  # [groups, nodes]
    # grid_graph stores a zero-length edge as the smallest float: a path of such edges is 0
    # (a real edge, a norm of float32 differences, is never below ~1e-45)
    dist[dist < _ZERO_PATH] = 0.0
    pairs = [(a, b) for a in range(len(sets)) for b in range(a + 1, len(sets))]
    between = float(np.mean([dist[a, centres[b]] for a, b in pairs]))
    spreads = []
    for g, m in enumerate(members):
        use = m & inside
        if not use.any():
            raise AtlasError(
                f"groups {groups}: group {g} has no point inside the graph's range; expected a "
                "graph over the points"
            )
        spreads.append(float(dist[g, node(p[use])].mean()))
    within = float(np.mean(spreads))
    if not (np.isfinite(between) and np.isfinite(within)):
        raise AtlasError("graph: not connected; expected a connected graph")
    used = float(inside[np.logical_or.reduce(members)].mean())
    # two groups that decode alike everywhere (0 / 0) have no ratio; a spread of 0 an infinite one
    ratio = between / within if within > 0 else (math.inf if between > 0 else math.nan)
    return GeodesicSeparation(between, within, ratio, used)
