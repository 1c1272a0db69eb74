"""Figures of a latent space of many dimensions: the per-dim variance spectrum (with the KL
where there is one), a pair grid of the top dims, and a 2-D map of the full codes (t-SNE).

Arrays in, :class:`matplotlib.figure.Figure` out (built with ``Figure()``, no pyplot state).
Dims are numbered from 0, as in the flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from latent_atlas.analysis.plots import class_color, plain, title_text
from latent_atlas.analysis.validation import check_array, check_int, check_labels
from latent_atlas.toolkit.errors import AtlasError
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter
from numpy.typing import ArrayLike, NDArray

SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _z(i: int) -> str:
    return "z" + str(int(i)).translate(SUBSCRIPTS)


def spectrum_figure(
    variance: ArrayLike,
    threshold: float,
    kl: ArrayLike | None = None,
    title: str = "",
    max_dims: int = 64,
) -> Figure:
    """Bars of each dim's posterior-mean variance, largest first, with the active-unit
    threshold; beside them the dim's mean KL to N(0, 1) when known.

    Parameters
    ----------
    variance : array_like, shape [d]
        Variance of the posterior means per dim (squared latent units), >= 0.
    threshold : float
        Active-unit threshold (drawn as a dashed line; Burda et al.'s 0.01).
    kl : array_like, shape [d], optional
        Mean KL per dim in nats.
    title : str, optional
    max_dims : int, default 64
        At most this many dims are drawn (the largest); the title says so when cut.

    Returns
    -------
    matplotlib.figure.Figure
        One axes (two with ``kl``), bars labelled with the dims' numbers (from 0), log scale.
    """
    var = check_array(variance, "variance", ndim=1, bounds=(0.0, np.inf))
    d = len(var)
    kls = None if kl is None else check_array(kl, "kl", shape=(d,))
    order = np.lexsort((np.arange(d), -var))[: max(1, int(max_dims))]
    n = len(order)
    panels = 2 if kls is not None else 1
    fig = Figure(figsize=(min(max(5.5, 2.5 + 0.28 * n), 14.0), 2.8 * panels + 0.4),
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    pos = np.arange(n)
    floor = max(float(var[var > 0].min()) if (var > 0).any() else 1e-6, 1e-8) / 2
    colors = ["#1f77b4" if var[i] > threshold else "#bbbbbb" for i in order]
    axes[0].bar(pos, np.maximum(var[order], floor), color=colors)
    axes[0].axhline(threshold, color="black", linestyle="--", linewidth=1)
    axes[0].set_yscale("log")
    # plain numbers: the report draws every text without mathtext (plots.plain_text)
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0].yaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel("variance of\nposterior means")
    axes[0].annotate(f"active above {threshold:g}", (n - 0.5, threshold), ha="right",
                     va="bottom", fontsize=8)  # fmt: skip
    if kls is not None:
        axes[1].bar(pos, kls[order], color=colors)
        axes[1].set_ylabel("mean KL to N(0,1)\n(nats)")
    for ax in axes:
        ax.set_xticks(pos, labels=[str(int(i)) for i in order], fontsize=7)
        ax.set_xlim(-0.6, n - 0.4)
    axes[-1].set_xlabel("latent dim (numbered from 0), by variance")
    cut = f" (the {n} largest of {d})" if n < d else ""
    fig.suptitle(title_text((title or "Per-dimension variance") + cut, 90), fontsize=10)
    return fig


def pair_grid_figure(
    codes: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    dims: Sequence[int],
    title: str = "",
    max_points: int = 2000,
    seed: int = 0,
) -> Figure:
    """Pairwise scatter of the codes along ``dims``, coloured by class: histograms on the
    diagonal, one scatter per pair below it (a pair grid, as seaborn's ``pairplot``).

    Parameters
    ----------
    codes : array_like, shape [N, d]
        Test embeddings (posterior means).
    labels : array_like of int, shape [N]
        Class of each code.
    class_names : sequence of str, length K
    dims : sequence of int, length 2..8
        Which dims, in the order drawn (e.g. the most active first).
    title : str, optional
    max_points : int, default 2000
        A seeded random subset of at most this many points is drawn (every class kept in
        proportion); the histograms use all.
    seed : int, default 0

    Returns
    -------
    matplotlib.figure.Figure
        ``len(dims)²`` axes; the legend names the classes present.
    """
    z = check_array(codes, "codes", shape=("N", "d"))
    lab = check_labels(labels, n_classes=len(class_names), shape=(z.shape[0],))
    k = len(dims)
    if not 2 <= k <= 8:
        raise AtlasError(f"dims: {k} given, expected 2 to 8 dims for a pair grid")
    for i in dims:
        check_int(i, "dims", lo=0, hi=z.shape[1] - 1)
    check_int(max_points, "max_points", lo=1)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(z))[:max_points]
    colors = np.array([class_color(c) for c in range(len(class_names))])
    fig = Figure(figsize=(1.9 * k + 1.8, 1.9 * k + 0.5), layout="constrained")
    axes = fig.subplots(k, k, squeeze=False)
    for r in range(k):
        for c in range(k):
            ax = axes[r, c]
            if c > r:
                ax.set_axis_off()
                continue
            if r == c:
                ax.hist(z[:, dims[r]], bins=40, color="#777777")
                ax.set_yticks([])
            else:
                ax.scatter(z[pick, dims[c]], z[pick, dims[r]], c=colors[lab[pick]], s=3,
                           alpha=0.6, linewidths=0)  # fmt: skip
            ax.tick_params(labelsize=6)
            if r == k - 1:
                ax.set_xlabel(_z(dims[c]))
            if c == 0:
                ax.set_ylabel(_z(dims[r]) if r > 0 else f"{_z(dims[0])} (histogram)")
    present = np.unique(lab)
    handles = [Line2D([], [], linestyle="", marker="o", markersize=6, markerfacecolor=colors[i],
                      markeredgewidth=0) for i in present]  # fmt: skip
    fig.legend(handles, [plain(class_names[int(i)]) for i in present], loc="upper right",
               title="class", frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title_text(title, 80), fontsize=10)
    return fig


def _subset(codes: ArrayLike, max_points: int, seed: int, what: str) -> tuple[NDArray, NDArray]:
    """The checked codes ``[N, d]`` and a seeded random subset of at most ``max_points`` rows
    of them (increasing row numbers)."""
    z = check_array(codes, "codes", shape=("N", "d"))
    check_int(max_points, "max_points", lo=5)
    if len(z) < 5:
        raise AtlasError(f"codes: {len(z)} rows, expected at least 5 for a{what} map")
    rng = np.random.default_rng(seed)
    return z, np.sort(rng.permutation(len(z))[:max_points]).astype(np.int64)


def umap_installed() -> bool:
    """Whether ``umap-learn`` can be imported (``pip install 'latent-atlas[umap]'``)."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def umap_map(codes: ArrayLike, max_points: int = 2000, seed: int = 0) -> tuple[NDArray, NDArray]:
    """A 2-D UMAP map of the full codes (McInnes, Healy & Melville 2018; ``umap-learn``'s
    ``UMAP``, 15 neighbours, min_dist 0.1, seeded), where ``umap-learn`` is installed.

    Parameters and returns as :func:`tsne_map`.

    Raises
    ------
    AtlasError
        ``umap-learn`` is not installed (see :func:`umap_installed`).
    """
    if not umap_installed():
        raise AtlasError("UMAP map: umap-learn is not installed; install it with "
                         "`pip install 'latent-atlas[umap]'`")  # fmt: skip
    import umap

    z, index = _subset(codes, max_points, seed, " UMAP")
    n_neighbors = int(min(15, len(index) - 1))
    # n_jobs=1: a seeded UMAP runs on one thread anyway (and warns when asked for more)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=0.1,
                        random_state=seed, n_jobs=1)  # fmt: skip
    return np.asarray(reducer.fit_transform(z[index]), np.float64), index


def tsne_map(codes: ArrayLike, max_points: int = 2000, seed: int = 0) -> tuple[NDArray, NDArray]:
    """A 2-D t-SNE map of the full codes (van der Maaten & Hinton 2008; scikit-learn's
    ``TSNE``, perplexity 30, PCA initialisation).

    Parameters
    ----------
    codes : array_like, shape [N, d]
        Codes, d >= 2; N >= 5.
    max_points : int, default 2000
        A seeded random subset of at most this many codes is mapped (t-SNE is O(N log N) per
        iteration and for a picture a few thousand points are enough).
    seed : int, default 0

    Returns
    -------
    coords : numpy.ndarray, shape [n, 2]
        The map (arbitrary units: only neighbourhoods mean something).
    index : numpy.ndarray, shape [n], int64
        Which rows of ``codes`` were mapped, increasing.
    """
    from sklearn.manifold import TSNE

    z, index = _subset(codes, max_points, seed, " t-SNE")
    perplexity = min(30.0, (len(index) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(z[index]), index
