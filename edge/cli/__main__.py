"""``python -m edge.cli``: the same as ``tokensea``."""

import sys

from edge.cli import main

sys.exit(main())
