"""One spelling throughout: American English in names, docstrings, comments and the book.

The word list holds the British forms that once appeared in the project (and their close
relatives); a new one fails here with the file and line. Paper titles in ``references.bib`` keep
their own spelling, this file lists the forms it looks for, and ImageNet class ids
(``n01817953_african_grey``) are names, not prose."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BRITISH = {
    "colour": "color", "colours": "colors", "coloured": "colored", "grey": "gray", "greyscale": "grayscale",
    "greyish": "grayish", "normalise": "normalize", "normalised": "normalized", "normalises": "normalizes",
    "normalisation": "normalization", "localisation": "localization", "localise": "localize",
    "maximise": "maximize", "maximises": "maximizes", "maximisation": "maximization", "minimise": "minimize",
    "factorise": "factorize", "factorised": "factorized", "factorisation": "factorization",
    "randomise": "randomize", "randomised": "randomized", "randomises": "randomizes",
    "randomisation": "randomization", "neighbour": "neighbor", "neighbours": "neighbors",
    "neighbouring": "neighboring", "neighbourhood": "neighborhood", "regularise": "regularize",
    "regularised": "regularized", "regulariser": "regularizer", "regularisers": "regularizers",
    "regularisation": "regularization", "licence": "license", "licences": "licenses",
    "visualise": "visualize", "visualisation": "visualization", "visualisations": "visualizations",
    "standardise": "standardize", "standardised": "standardized", "standardisation": "standardization",
    "centre": "center", "centred": "centered", "centres": "centers", "parametrisation": "parametrization",
    "recognise": "recognize", "recognised": "recognized", "recognises": "recognizes", "labelled": "labeled",
    "labelling": "labeling", "initialise": "initialize", "initialised": "initialized",
    "initialises": "initializes", "initialisation": "initialization", "reinitialise": "reinitialize",
    "vectorised": "vectorized", "serialise": "serialize", "serialised": "serialized",
    "serialises": "serializes", "parallelise": "parallelize", "optimise": "optimize", "optimised": "optimized",
    "optimising": "optimizing", "favour": "favor", "favours": "favors", "cancelled": "canceled",
    "summarise": "summarize", "behaviour": "behavior", "analyse": "analyze", "modelling": "modeling",
    "artefact": "artifact", "artefacts": "artifacts", "catalogue": "catalog", "defence": "defense",
    "defences": "defenses", "offence": "offense", "practise": "practice", "judgement": "judgment",
    "aluminium": "aluminum",
}
SUFFIXES = (".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".css", ".js")
IMAGENET_ID = re.compile(r"n\d{8}_\w+")
# Word pieces: split snake_case and CamelCase ("NearestNeighbours" -> Nearest, Neighbours).
PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _sources() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in listed.split()
            if (f.endswith(SUFFIXES) or Path(f).name in ("Makefile", "run"))
            and f not in ("references.bib", "tests/test_spelling.py") and not f.startswith("benchmarks/results/")]


def british_words(text: str) -> list[tuple[int, str]]:
    """(line, word) of each British form in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for piece in PIECE.findall(IMAGENET_ID.sub("", line)):
            if piece.lower() in BRITISH:
                found.append((number, piece))
    return found


def test_the_word_list_finds_british_forms_in_every_casing():
    text = "a Colour map\nclass NearestNeighbours:\nlocalisation_scores = 1\nn01817953_african_grey\ncolor"
    assert british_words(text) == [(1, "Colour"), (2, "Neighbours"), (3, "localisation")]


def test_the_project_uses_one_spelling():
    sources = _sources()
    if len(sources) < 50:
        pytest.fail(f"git lists only {len(sources)} source files; run the tests from a clone")
    problems = [f"{path.relative_to(ROOT)}:{line}: {word} (write {BRITISH[word.lower()]})"
                for path in sources for line, word in british_words(path.read_text(encoding="utf-8"))]
    assert not problems, "British spelling (the project writes American English):\n" + "\n".join(problems)
