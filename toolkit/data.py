"""The dataset seam: ``load_dataset(source)`` returns an :class:`ImageDataset` whatever the
source is — a folder of IDX files, a Keras-style ``.npz``, an image folder in torchvision's
``ImageFolder`` layout, or ``sklearn:digits``.

The default source is Debian's ``dataset-fashion-mnist`` folder. The CLI reads
``LATENT_ATLAS_DATA`` and passes it in; this module reads no environment.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from latent_atlas.toolkit.dataset import ImageDataset, Split, shown
from latent_atlas.toolkit.digits import SOURCE as DIGITS
from latent_atlas.toolkit.digits import load_digits_dataset
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.idx import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_SHA256,
    is_fashion_mnist_test,
    is_idx_folder,
    load_idx_folder,
)
from latent_atlas.toolkit.imagefolder import is_image_folder, load_image_folder
from latent_atlas.toolkit.npz import load_npz

__all__ = [
    "ACCEPTED",
    "DATA_ENV_VAR",
    "DEFAULT_DATA_DIR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SHA256",
    "ImageDataset",
    "Split",
    "load_dataset",
]
# Names that select a shipped classifier ("auto"): only the data they name may carry them.
RECOGNISED = ("fashion-mnist", "digits")

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV_VAR = "LATENT_ATLAS_DATA"
ACCEPTED = (
    "a folder of IDX files (train-images-idx3-ubyte[.gz], …, t10k-labels-idx1-ubyte[.gz]), "
    "an .npz file (x_train, y_train, x_test, y_test), an image folder "
    f"(train/<class>/*.png, test/<class>/*.png) or {DIGITS}"
)
MISSING_HINT = (
    "install it with `apt-get install -y dataset-fashion-mnist` or pass --data "
    f"(or set {DATA_ENV_VAR}) to another dataset: {ACCEPTED}"
)


def load_dataset(
    source: str | Path | None = None, *, train: bool = True, class_names: Path | None = None
) -> ImageDataset:
    """Load the dataset at ``source`` (default: Debian's Fashion-MNIST folder).

    ``train=False`` loads the test split only (analysis needs no more); ``class_names`` is a
    text file with one name per line, taking precedence over the names the data carries.
    """
    kind, path = check_source(source)
    if kind == "digits":
        return load_digits_dataset(train, class_names)
    if kind == "npz":
        return _recognised(load_npz(path, train, class_names), class_names)
    if kind == "idx":
        hint = MISSING_HINT if source is None else ""
        return _recognised(load_idx_folder(path, train, class_names, hint), class_names)
    return _recognised(load_image_folder(path, train, class_names), class_names)


def check_source(source: str | Path | None = None) -> tuple[str, Path]:
    """What kind of dataset ``source`` is (``digits``, ``npz``, ``idx`` or ``images``) and its
    path, from the path alone (nothing is read): one line when it cannot be one. A command
    that may not need the data (``grid`` over a fixed range) still answers a wrong --data."""
    if source is not None and str(source).startswith("sklearn:"):
        if str(source) != DIGITS:
            raise AtlasError(f"dataset {source}: unknown; expected {DIGITS}")
        return "digits", Path(str(source))
    default = source is None
    path = DEFAULT_DATA_DIR if source is None else Path(source)
    try:
        exists, is_dir, is_file = path.exists(), path.is_dir(), path.is_file()
    except OSError as exc:  # a name too long, a loop of links
        raise AtlasError(
            f"dataset {shown(path)}: cannot be read ({exc}); expected {ACCEPTED}"
        ) from None
    if not exists:
        if default:
            raise AtlasError(f"dataset folder {path}: does not exist; {MISSING_HINT}")
        raise AtlasError(f"dataset {shown(path)}: does not exist; expected {ACCEPTED}")
    if is_file:
        if path.suffix.lower() != ".npz":
            raise AtlasError(
                f"dataset {shown(path)}: a file that is not an .npz; expected {ACCEPTED} "
                "(for IDX files, pass the folder that holds them)"
            )
        return "npz", path
    if not is_dir:
        raise AtlasError(
            f"dataset {shown(path)}: not a regular file or folder; expected {ACCEPTED}"
        )
    if is_idx_folder(path):
        return "idx", path
    if is_image_folder(path):
        return "images", path
    raise AtlasError(
        f"dataset folder {shown(path)}: holds neither IDX files nor train/ and test/ class "
        f"folders; " + (MISSING_HINT if default else f"expected {ACCEPTED}")
    )


def _recognised(data: ImageDataset, class_names: Path | None) -> ImageDataset:
    """Fashion-MNIST is named so, whatever file holds it (by the sha256 of its test split);
    any other data never carries a recognised name, whatever its file is called."""
    if is_fashion_mnist_test(data.test):
        numbered = data.class_names == tuple(str(k) for k in range(len(data.class_names)))
        names = FASHION_MNIST_CLASSES if numbered and class_names is None else data.class_names
        return replace(data, name="fashion-mnist", class_names=names)
    if data.name in RECOGNISED:
        return replace(data, name=f"{data.name}-user")
    return data
