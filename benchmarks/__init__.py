"""Benchmarks of prunebench's core against plain PyTorch. Run: ``python -m benchmarks``.

The benchmarks measure the prunebench of this checkout: its ``src/`` goes first on the path,
ahead of any installed copy (an editable install may point at another checkout).
"""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
if (_SRC / "prunebench").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))
