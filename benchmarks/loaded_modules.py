"""A lesson's full import floor: every module its run loads, imported and nothing else.

    python benchmarks/loaded_modules.py record modules.txt demo.py --n-estimators 10
    python benchmarks/loaded_modules.py import modules.txt

``record`` runs the lesson as ``python demo.py --n-estimators 10`` would and writes the
names of the modules loaded by its end, in the order they were loaded: the packages' own
lazy imports (MLflow's SQLAlchemy store, its sklearn flavour, skops) as well as the
lesson's. ``import`` imports those modules in that order, which is what no run of the
lesson can do in less time.
"""

import contextlib
import importlib
import runpy
import sys
from pathlib import Path


def record(listing, script, flags):
    sys.argv = [script, *flags]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:  # the lesson's main guard ends with sys.exit on failure: recorded all the same
        names = [name for name in sys.modules if name != "__main__"]
        Path(listing).write_text("\n".join(names))


def import_all(listing):
    for name in Path(listing).read_text().split():
        # A module made by another one (six.moves, ...) cannot be imported by name: skipped.
        with contextlib.suppress(Exception):
            importlib.import_module(name)


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        import_all(sys.argv[2])
