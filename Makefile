# Two user-facing targets: `make run` (main job on a small default) and `make test`.
# Everything below is idempotent: stamps under .venv/ stop a second run from rebuilding.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PETSC_VERSION := 3.26.1
DEBS := build-essential gfortran python3-dev python3-venv libopenblas-dev liblapack-dev libmpich-dev mpich pkg-config
export PETSC_CONFIGURE_OPTIONS ?= --with-debugging=0 --with-cuda=0 COPTFLAGS=-O3 CXXOPTFLAGS=-O3 FOPTFLAGS=-O3
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# PETSc and OpenBLAS must not oversubscribe the 2-core machines we test on.
export OMP_NUM_THREADS ?= 1

.PHONY: run test docs setup lint bench clean-venv

run: $(VENV)/.installed
	$(VENV)/bin/datagen generate darcy --n 16 --grid 32 --solver gcrodr --order greedy --chunk 8 --seed 0 --out runs/darcy-small.h5 --overwrite
	$(VENV)/bin/datagen inspect runs/darcy-small.h5

# tests/linsolve/petsc_support/test_mpi.py runs its workers under MPICH's `mpiexec -n 2` (Hydra; from the mpich package above).
# tests/docs/test_docs_site.py builds the documentation site with warnings as errors, so `make test` checks it too.
# `make test` runs `make lint` first (ruff on the same paths) and stops on a lint error before pytest.
test: $(VENV)/.installed lint
	LINSOLVE_REQUIRE_PETSC=1 $(PY) -m pytest -q tests

# The documentation site (Sphinx, warnings are errors) -> docs/_build/html/index.html
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check linsolve datagen operators tests benchmarks

setup: $(VENV)/.installed

# Debian packages PETSc and mpi4py link against; installed only when missing.
$(VENV)/.debs:
	@if ! dpkg -s $(DEBS) >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $(DEBS); \
	fi
	@mkdir -p $(VENV) && touch $@

$(VENV)/bin/python: | $(VENV)/.debs
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# PETSc is compiled once from PyPI (about 10 minutes); petsc4py is then built against
# that very installation (no build isolation) so PETSc is not compiled a second time.
# mpi4py is built from source against Debian's MPICH: its PyPI wheel looks for
# libmpi.so.12, which MPICH does not ship, and fails to import.
$(VENV)/.petsc: $(VENV)/bin/python $(VENV)/.debs
	$(PIP) install -q "numpy<2.5" "cython>=3" "setuptools" "wheel"
	$(PIP) install "petsc==$(PETSC_VERSION)"
	$(PIP) install --no-build-isolation --no-binary mpi4py "petsc4py==$(PETSC_VERSION)" "mpi4py"
	$(PY) -c "import mpi4py.MPI, petsc4py; petsc4py.init(); from petsc4py import PETSc; print('PETSc', PETSc.Sys.getVersion(), mpi4py.MPI.Get_library_version().split(chr(10))[0])"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.petsc
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[petsc,dev,docs]"
	touch $@

clean-venv:
	rm -rf $(VENV)
