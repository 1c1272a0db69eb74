"""latent-atlas: see, and measure, what an autoencoder's latent space has learned.

The package has four floors (``docs/architecture.md``): ``latent_atlas.toolkit`` (errors, files,
datasets, the onnxruntime wrapper, grids; models and training), ``latent_atlas.export``
(torch → ONNX), ``latent_atlas.analysis`` (metrics, plots, report rendering: arrays in, numbers
and figures out) and this top floor (the CLI, the runners, the bench and the functions below).

A notebook needs only these::

    import latent_atlas as la
    vae = la.load(la.shipped("fashion-mnist") / "vae")
    grid = la.decode_grid(vae, steps=21, value_range=(-4, 4))   # numpy [21, 21, 1, 28, 28]
    result = la.analyze([vae])                                  # numbers, per model

The names are imported lazily, so ``import latent_atlas`` stays cheap (the CLI's ``--help``
needs no onnxruntime).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("latent-atlas")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# Eager and cheap (importlib.resources only): the function must shadow its module's name, which
# a later `import latent_atlas.shipped` would otherwise bind here.
from latent_atlas.shipped import shipped  # noqa: E402

_API = {
    "AtlasError": "latent_atlas.toolkit.errors",
    "load": "latent_atlas.api",
    "load_dataset": "latent_atlas.api",
    "decode_grid": "latent_atlas.api",
    "analyze": "latent_atlas.api",
    "write_report": "latent_atlas.api",
    "jacobian": "latent_atlas.api",
    "magnification": "latent_atlas.api",
    "geodesic": "latent_atlas.api",
    "dimensions": "latent_atlas.api",
    "traverse": "latent_atlas.api",
    "interpolate": "latent_atlas.api",
    "export_model": "latent_atlas.export",
}
__all__ = ["__version__", "shipped", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'latent_atlas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
