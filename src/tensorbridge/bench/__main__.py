"""``python -m tensorbridge.bench`` runs the benchmark suite (same as ``tensorbridge bench``)."""

import sys

from . import main

sys.exit(main())
