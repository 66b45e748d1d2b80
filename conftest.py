"""Settings for every pytest run in this checkout: the unit tests, and nbval over the notebooks, so that a
plain ``pytest --nbval notebooks/`` (as graders run it) behaves as ``make test`` does.

The notebook kernels inherit this environment: no progress bars (they would break nbval's comparison of
stderr), one thread (the setting the committed outputs were made with), and figures written to a temporary
folder (``PA3_FIGURES``) instead of the committed ``figures/``, so testing leaves the checkout as it was.
The nbval options themselves (cell timeout, sanitize file, current env) are in pytest.ini.

``make test`` runs on two cores with pytest-xdist (``-n 2 --dist loadgroup``): the notebooks are one group,
run in order by one worker (a later notebook shows the runs an earlier one trained), and every test module
is one unit too (its module fixtures are built once).
"""
import atexit
import os
import shutil
import tempfile

import pytest

for name, value in {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "PYTHONHASHSEED": "0"}.items():
    os.environ.setdefault(name, value)
if "PA3_FIGURES" not in os.environ:
    os.environ["PA3_FIGURES"] = tempfile.mkdtemp(prefix="pa3-figures-")
    atexit.register(shutil.rmtree, os.environ["PA3_FIGURES"], ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the mark into the test id's "@<group>"
def pytest_collection_modifyitems(items):
    """One xdist work unit per test module (its module fixtures built once), one for all the notebooks."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group("notebooks" if item.path.suffix == ".ipynb" else item.path.name))
