"""The benchmark scripts imported as modules, the one way every test of ``benchmarks/`` does it."""
import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` imported under its own module name, with ``benchmarks/`` on the
    path, as the script sees itself when run and as Ray's workers import it (``_common`` and
    ``_timing`` resolve the same way)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)
