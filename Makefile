# make book: build the book into _build/html, executing only the chapters whose code changed since
#            the last build (Jupyter Book's execution cache; a change in the package alone does not
#            re-run a chapter: use book-fresh then);
# make book-fresh: the same with every chapter executed from scratch (what CI runs);
# make book-student: the student edition (same book, exercise solutions removed) into _build/student;
# make test: run the test suite (with ruff first).
# The book targets drop MPLBACKEND: a shell's MPLBACKEND=Agg would reach the notebook kernel and
# every chapter would be built without its figures.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book book-fresh book-student test lint install clean

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

# MathJax served from the built book, so formulas render with no network (from the npm registry)
MATHJAX := _build/mathjax_static/mathjax/tex-mml-chtml.js
$(MATHJAX):
	npm install --no-audit --no-fund --silent --prefix _build/mathjax mathjax@3.2.2
	rm -rf _build/mathjax_static && mkdir -p _build/mathjax_static
	cp -r _build/mathjax/node_modules/mathjax/es5 _build/mathjax_static/mathjax

book: $(STAMP) $(MATHJAX)
	env -u MPLBACKEND $(VENV)/bin/jupyter-book build . --all -W --keep-going

book-fresh: $(STAMP) $(MATHJAX)
	rm -rf _build/.jupyter_cache
	env -u MPLBACKEND $(VENV)/bin/jupyter-book build . --all -W --keep-going

book-student: $(STAMP) $(MATHJAX)
	$(PY) book/_ext/student_edition.py _build/student_src
	mkdir -p _build/student_src/_build && cp -r _build/mathjax_static _build/student_src/_build/
	cd _build/student_src && env -u MPLBACKEND $(abspath $(VENV))/bin/jupyter-book build . --all -W --keep-going --path-output $(abspath _build/student)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	MPLBACKEND=Agg $(PY) -m pytest -p no:cacheprovider

clean:
	rm -rf _build  # the execution cache and MathJax too
