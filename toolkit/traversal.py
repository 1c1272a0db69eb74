"""Latent traversals and interpolations: which codes to decode, and decoding them.

A *traversal* of dimension ``i`` holds every other dimension at a base point (the test
embeddings' mean, or the embedding of one test image) and moves ``z_i`` over the aggregate
posterior's range of that dimension: by default the 1st to 99th percentile of the test
embeddings' ``z_i`` (the β-VAE literature's figure, e.g. Higgins et al. 2017; disentanglement_lib's
``latent_traversal``). An *interpolation* decodes the straight line between two codes.

Dimensions are numbered from 0, as in ``--plane axes I J``. What to traverse (the most active
dims) is decided above this layer, from ``analysis.dimensions``; this module only places codes
and decodes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.runtime import DEFAULT_BATCH, OnnxModel

DEFAULT_K = 8
DEFAULT_STEPS = 11


@dataclass(frozen=True)
class TraversalSpec:
    """What to traverse.

    ``k``: how many dims (the ``k`` most active, chosen by the caller) unless ``dims`` names
    them; ``steps``: images per row (>= 2); ``percentiles``: the range of each dim over the
    test embeddings, unless ``value_range`` gives it in latent units; ``base``: ``"mean"`` (the
    test embeddings' mean) or the index of a test image whose embedding is the base point.
    """

    k: int = DEFAULT_K
    steps: int = DEFAULT_STEPS
    percentiles: tuple[float, float] = (1.0, 99.0)
    value_range: tuple[float, float] | None = None
    base: str | int = "mean"
    dims: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not _is_int(self.k) or self.k < 1:
            raise AtlasError(f"traversal k {self.k!r}: expected an integer >= 1 (dims to show)")
        if not _is_int(self.steps) or self.steps < 2:
            raise AtlasError(f"traversal steps {self.steps!r}: expected an integer >= 2")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise AtlasError(
                f"traversal percentiles {self.percentiles}: expected 0 <= low < high <= 100"
            )
        if self.value_range is not None:
            a, b = self.value_range
            if not (math.isfinite(a) and math.isfinite(b) and a < b):
                raise AtlasError(
                    f"traversal range {self.value_range}: expected finite numbers, low < high"
                )
        if isinstance(self.base, str):
            if self.base != "mean":
                raise AtlasError(
                    f"traversal base {self.base!r}: expected 'mean' or a test image index"
                )
        elif not _is_int(self.base) or self.base < 0:
            raise AtlasError(f"traversal base {self.base!r}: expected a test image index >= 0")
        if len(set(self.dims)) != len(self.dims) or any(not _is_int(d) or d < 0 for d in self.dims):
            raise AtlasError(f"traversal dims {self.dims}: expected distinct integers >= 0")

    def check(self, latent_dim: int, n_test: int) -> None:
        """Refuse what this spec cannot do for a model of ``latent_dim`` dims and a test set
        of ``n_test`` images."""
        if latent_dim < 2:
            raise AtlasError(
                f"latent dim {latent_dim}: a traversal needs at least 2 latent dims (one moves, "
                "the others hold the base point); a 1-D model is its own traversal"
            )
        if not self.dims and self.k > latent_dim:
            raise AtlasError(
                f"--k {self.k}: the model has {latent_dim} latent dims; expected k <= {latent_dim}"
            )
        if self.dims and max(self.dims) >= latent_dim:
            raise AtlasError(
                f"--dims {' '.join(map(str, self.dims))}: the model has {latent_dim} latent dims "
                f"(0..{latent_dim - 1})"
            )
        if isinstance(self.base, int) and self.base >= n_test:
            raise AtlasError(
                f"--base {self.base}: the test set has {n_test} images; expected an index in "
                f"0..{n_test - 1}"
            )

    def describe_base(self) -> str:
        if self.base == "mean":
            return "the mean test embedding"
        return f"the embedding of test image {self.base}"


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def base_point(embeddings: np.ndarray, base: str | int) -> np.ndarray:
    """The code ``[d]`` every other dimension holds: the embeddings' mean, or row ``base``."""
    emb = np.asarray(embeddings, np.float64)
    if base == "mean":
        return emb.mean(axis=0)
    if not _is_int(base) or not 0 <= int(base) < len(emb):
        raise AtlasError(f"base {base!r}: expected 'mean' or an index in 0..{len(emb) - 1}")
    return emb[int(base)].copy()


def traversal_values(
    embeddings: np.ndarray, dims: np.ndarray | list[int], spec: TraversalSpec
) -> np.ndarray:
    """``[k, steps]``: evenly spaced values of each dim over its range (``spec.value_range``,
    else the ``spec.percentiles`` of the embeddings' values of that dim). A dim whose
    embeddings do not vary gets ``steps`` copies of its one value."""
    if spec.value_range is not None:
        lo_hi = np.tile(np.asarray(spec.value_range, np.float64), (len(dims), 1))
    else:
        emb = np.asarray(embeddings, np.float64)[:, list(dims)]
        lo_hi = np.percentile(emb, spec.percentiles, axis=0).T  # [k, 2]
    return np.stack([np.linspace(lo, hi, spec.steps) for lo, hi in lo_hi])


def traversal_codes(
    base: np.ndarray, dims: np.ndarray | list[int], values: np.ndarray
) -> np.ndarray:
    """Codes ``[k, steps, d]`` (float32): ``base`` everywhere but ``z[r, s, dims[r]] =
    values[r, s]``."""
    base = np.asarray(base, np.float64)
    values = np.asarray(values, np.float64)
    z = np.tile(base, (len(dims), values.shape[1], 1))
    for r, dim in enumerate(dims):
        z[r, :, dim] = values[r]
    return z.astype(np.float32)


def interpolation_codes(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` codes ``[steps, d]`` (float32) evenly spaced on the straight line from ``a``
    to ``b``, both ends included (``t = 0 … 1``)."""
    if not _is_int(steps) or steps < 2:
        raise AtlasError(f"interpolation steps {steps!r}: expected an integer >= 2")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * a[None] + t * b[None]).astype(np.float32)


@dataclass
class Traversal:
    """Decoded traversals: ``images[r, s]`` ``[C, H, W]`` is decoded at ``base`` with dim
    ``dims[r]`` set to ``values[r, s]``."""

    dims: np.ndarray  # [k] int
    values: np.ndarray  # [k, steps] latent units
    base: np.ndarray  # [d]
    images: np.ndarray  # [k, steps, C, H, W] in [0, 1]
    spec: TraversalSpec


def decode_traversal(
    decoder: OnnxModel,
    embeddings: np.ndarray,
    dims: np.ndarray | list[int],
    spec: TraversalSpec,
    batch_size: int = DEFAULT_BATCH,
) -> Traversal:
    """Decode the traversals of ``dims`` (from the caller: the most active dims, or
    ``spec.dims``) around ``spec.base`` over the test ``embeddings`` ``[N, d]``."""
    emb = np.asarray(embeddings)
    spec.check(decoder.latent_dim, len(emb))
    if emb.ndim != 2 or emb.shape[1] != decoder.latent_dim:
        raise AtlasError(
            f"embeddings: shape {emb.shape}, expected [N, {decoder.latent_dim}] (the decoder's "
            "latent dim)"
        )
    dims = np.asarray(dims, np.int64)
    base = base_point(emb, spec.base)
    values = traversal_values(emb, dims, spec)
    z = traversal_codes(base, dims, values)
    k, steps, d = z.shape
    images = decoder(z.reshape(k * steps, d), batch_size)
    return Traversal(dims, values, base, images.reshape(k, steps, *images.shape[1:]), spec)
