"""Run the benchmark suite from a checkout: ``python benchmarks/run.py [--quick] [--json] ...``.

The cases live in the package (``tensorbridge.bench``) so that ``tensorbridge bench`` works from an
installed wheel; this script only forwards its arguments to ``tensorbridge.bench.main``.

>>> main(["--quick", "--filter", "leaf:"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import sys

from tensorbridge.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
