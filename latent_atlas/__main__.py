"""``python -m latent_atlas`` is the ``latent-atlas`` command."""

import sys

from latent_atlas.cli import main

sys.exit(main())
