"""``python -m aerialseg.cli``: the same as the ``aerialseg`` command."""

import sys

from . import main

sys.exit(main())
