# pa3 — the two commands of the README:
#   make report   generate the embedded data, execute every notebook in place, regenerate figures/
#   make test     unit tests + nbval over every notebook (what CI runs)
# Both create/update the virtual environment .venv from requirements.txt by themselves.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Notebook outputs are written and checked with the same settings: no progress bars, 1 thread (the default
# profile pins it too; PA3_THREADS=2 overrides).
export TQDM_DISABLE := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PYTHONHASHSEED := 0

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: venv data report test unit bench bench-smoke gpu-check lab clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: venv
	$(PY) -m pa3 generate

# Retrains the default profile's runs from scratch so the committed outputs match the code.
report: data
	rm -rf runs/default
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=7200 --ExecutePreprocessor.kernel_name=python3 \
	    --ExecutePreprocessor.record_timing=False $(NOTEBOOKS)
	@echo "notebooks executed in place; figures written to figures/"

# nbval's options (cell timeout 7200 s, sanitize file, current env) are in pytest.ini and the environment
# (figures into a temporary folder, no progress bars, one thread) in conftest.py, so that a plain
# `pytest --nbval notebooks/` behaves the same. Testing writes nothing into the checkout. Two workers
# (pytest-xdist): the notebooks in order on one, the unit test modules on the other (conftest.py).
test: data
	@command -v bwrap >/dev/null || { echo "make test needs bubblewrap (the grading sandbox): sudo apt-get install -y bubblewrap"; exit 1; }
	$(PY) -m pytest -q -n 2 --dist loadscope tests $(NOTEBOOKS) --nbval --durations=25

unit: venv
	$(PY) -m pytest -q tests

bench: data
	$(PY) -m benchmarks.run

bench-smoke: venv
	$(PY) -m benchmarks.run --smoke

# Every open GPU question in one run (benchmarks/gpu_check.py): <= 8 min on one GPU; --smoke runs on a CPU.
gpu-check: data
	$(PY) -m benchmarks.gpu_check

lab: venv
	$(PY) -m jupyter lab notebooks/

clean:
	rm -rf runs data/cache
