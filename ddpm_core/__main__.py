"""``python -m ddpm_core``: see :mod:`ddpm_core.cli`."""

import sys

from .cli import main

sys.exit(main())
