"""``python -m qfx`` runs the command line."""

import sys

from qfx.cli import main

sys.exit(main())
