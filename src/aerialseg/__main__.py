"""``python -m aerialseg``: the same as the ``aerialseg`` command."""

import sys

from .cli import main

sys.exit(main())
