"""``python -m colnn``: the same as the ``colnn`` command."""

import sys

from .cli import main

sys.exit(main())
