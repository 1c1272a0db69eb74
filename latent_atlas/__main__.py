"""``python -m latent_atlas`` is the ``latent-atlas`` command."""

from latent_atlas.cli import console

console()
