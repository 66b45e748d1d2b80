"""Settings for every pytest run in this checkout: the unit tests, and nbval over the notebooks, so that a
plain ``pytest --nbval notebooks/`` (as graders run it) behaves as ``make test`` does.

The notebook kernels inherit this environment: no progress bars (they would break nbval's comparison of
stderr), one thread (the setting the committed outputs were made with), and figures written to a temporary
folder (``PA3_FIGURES``) instead of the committed ``figures/``, so testing leaves the checkout as it was.
The nbval options themselves (cell timeout, sanitize file, current env) are in pytest.ini.

``make test`` runs on two cores with pytest-xdist (``-n 2 --dist loadscope``): the notebooks are one unit of
work, run in order by one worker (a later notebook shows the runs an earlier one trained), and every test
module is one unit too (its module fixtures are built once): ``pytest_xdist_make_scheduler`` below.
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


# Tests that compare the checkout's runs/ and data/ folders before and after a call: they run on the notebooks'
# worker (before the notebooks), since a notebook running beside them writes runs/default/.
WATCH_THE_CHECKOUT = {"tests/test_bad_input.py::test_nothing_is_written_outside_the_run_and_cache_folders"}


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: asked only when xdist runs (-n)
def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadscope``: one work unit per test module (its module fixtures built once) and one for all
    the notebooks, which run in order on one worker (notebook 05 shows the runs that 01-04 train)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndNotebooks(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            if path.endswith(".ipynb") or nodeid in WATCH_THE_CHECKOUT:
                return "notebooks"
            return path

    return ModulesAndNotebooks(config, log)
