# make book: build the executed book into _build/html;  make test: run the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test install clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --all -W --keep-going

test: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -p no:cacheprovider

clean:
	rm -rf _build
