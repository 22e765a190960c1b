"""``python -m colnn``: the same as the ``colnn`` command."""

import sys

from .apps.cli import main

sys.exit(main())
