import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from xai_lab import cli


def test_explain_prints_top5_and_writes_the_grid(tmp_path, capsys):
    from skimage import data

    image = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(image)
    out = tmp_path / "fig.png"
    argv = ["explain", str(image), "--method", "gradcam,saliency", "--target", "espresso", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") >= 6 and "espresso" in printed.splitlines()[0]
    assert out.stat().st_size > 10_000
    assert Image.open(out).size[0] > Image.open(out).size[1]


def test_bad_input_gives_a_clear_error(tmp_path, capsys):
    assert cli.main(["explain", str(tmp_path / "none.png")]) == 2
    assert "No image" in capsys.readouterr().err
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(image)
    assert cli.main(["explain", str(image), "--method", "nope"]) == 2
    assert "Unknown method" in capsys.readouterr().err


def test_info_command_is_installed():
    out = subprocess.run([sys.executable, "-m", "xai_lab.cli", "info"], capture_output=True, text=True,
                         check=True).stdout
    assert "efficientnet_lite0" in out and "gradcam" in out and "data:" in out


# --- a user's mistake: exit status 2 and one line "xai-lab: error: ..." on stderr, no traceback ---

def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xai-lab: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.full((40, 40, 3), 128, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the CLI starts computing (loading the model is its first heavy step)."""
    import xai_lab

    def refuse(*args, **kwargs):
        raise AssertionError("the CLI loaded a model before checking its arguments")

    monkeypatch.setattr(xai_lab, "load_model", refuse)


@pytest.fixture
def lite0_cli(monkeypatch, lite0):
    """The CLI's load_model returns the session's EfficientNet-Lite0 (loaded once)."""
    import xai_lab

    monkeypatch.setattr(xai_lab, "load_model", lambda name="efficientnet_lite0", **kw: lite0)


def _png_bytes():
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("content", [b"this is text", _png_bytes()[:-300]], ids=["not an image", "truncated"])
def test_an_unreadable_image_is_one_error_line(tmp_path, capsys, no_model, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    out = tmp_path / "fig.png"
    assert cli.main(["explain", str(path), "--out", str(out)]) == 2
    assert str(path) in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("out, expected", [
    ("missing/fig.png", "does not exist"),
    (".", "is a folder"),
    ("folder.png", "is a folder"),
    ("fig.xyz", "cannot write a figure of type 'xyz'"),
    ("fig", "no extension"),
    ("x.png/fig.png", "does not exist"),
])
def test_an_output_that_cannot_be_written_is_refused_before_computing(tmp_path, capsys, image, no_model, out,
                                                                      expected):
    target = tmp_path / out if out != "." else tmp_path
    (tmp_path / "folder.png").mkdir()
    assert cli.main(["explain", str(image), "--out", str(target)]) == 2
    assert expected in _one_error_line(capsys)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_folder_without_write_permission_is_refused(tmp_path, capsys, image, no_model):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cli.main(["explain", str(image), "--out", str(locked / "fig.png")]) == 2
        assert "cannot be written" in _one_error_line(capsys)
    finally:
        locked.chmod(0o700)


def test_an_unwritable_output_file_is_refused(tmp_path, capsys, image, no_model, monkeypatch):
    import builtins

    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):
        if str(file).endswith("fig.png") and any(c in mode for c in "wa"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    assert cli.main(["explain", str(image), "--out", str(tmp_path / "fig.png")]) == 2
    assert "Permission denied" in _one_error_line(capsys)


@pytest.mark.parametrize("methods, expected", [("", "names no method"), (",", "names no method"),
                                               (" , ,", "names no method"), ("gradcam,nope", "Unknown method 'nope'")])
def test_an_empty_or_unknown_method_list_is_one_error_line(tmp_path, capsys, image, no_model, methods, expected):
    assert cli.main(["explain", str(image), "--method", methods, "--out", str(tmp_path / "f.png")]) == 2
    assert expected in _one_error_line(capsys)


def test_layer_for_a_method_without_one_is_an_error_as_in_the_api(tmp_path, capsys, image, no_model):
    argv = ["explain", str(image), "--method", "saliency", "--layer", "features", "--out", str(tmp_path / "f.png")]
    assert cli.main(argv) == 2
    assert "does not use a layer" in _one_error_line(capsys)
    argv[3] = "saliency,input_x_gradient"
    assert cli.main(argv) == 2
    assert "do not use a layer" in _one_error_line(capsys)


@pytest.mark.parametrize("extra, expected", [
    (["--target", "tabbby"], "Unknown class label 'tabbby'; close labels: tabby"),
    (["--target", "1000"], "out of range"),
    (["--target", "-1"], "out of range"),
    (["--layer", "featurez"], "Unknown layer 'featurez'"),
    (["--seed", "-3"], "--seed must be >= 0"),
])
def test_an_unknown_label_class_or_layer_exits_2(tmp_path, capsys, image, lite0_cli, extra, expected):
    out = tmp_path / "f.png"
    assert cli.main(["explain", str(image), "--out", str(out), *extra]) == 2
    assert expected in _one_error_line(capsys)
    assert not out.exists()


def test_a_label_target_is_looked_up_in_the_classifier(tmp_path, capsys, image, lite0_cli, lite0, monkeypatch):
    import xai_lab

    targets = []
    real_explain = xai_lab.explain

    def recording_explain(*args, **kwargs):
        targets.append(kwargs["target"])
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(xai_lab, "explain", recording_explain)
    out = tmp_path / "f.png"
    assert cli.main(["explain", str(image), "--method", "saliency", "--target", "Tabby", "--out", str(out)]) == 0
    assert targets == [lite0.categories.index("tabby")]
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_info_prints_every_line_and_reports_a_bad_data_folder(tmp_path, capsys, monkeypatch, folder):
    from xai_lab import data

    root = tmp_path / folder
    if folder == "empty":
        root.mkdir()
    monkeypatch.setenv(data.DATA_ENV, str(root))
    assert cli.main(["info"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 1)[0].split()[0] for line in lines] == [
        "xai_lab", "libraries", "default", "models", "methods", "user", "data", "cuda"]
    data_line = next(line for line in lines if line.startswith("data:"))
    assert data_line.startswith("data: problem:") and str(root) in data_line
    assert str(data.cache_dir()) in next(line for line in lines if line.startswith("user cache"))
    assert "gradcam" in next(line for line in lines if line.startswith("methods:"))


class _Classes:
    """A classifier stand-in: only the class names, which is all ``--target`` reads."""

    categories = ["tench", "goldfish", "tabby", "tiger cat", "espresso"]


@pytest.mark.parametrize("value, kind, fields", [
    ("2", None, 2),
    ("Tabby", None, 2),
    ("logit:1", "Logit", {"classes": 1}),
    ("prob:tabby", "Probability", {"classes": 2}),
    ("probability:4", "Probability", {"classes": 4}),
    ("contrast:tabby,tiger cat", "Contrast", {"a": 2, "b": 3}),
    ("contrast:3, 0", "Contrast", {"a": 3, "b": 0}),
    ("labels:0,goldfish,4", "Labels", {"classes": (0, 1, 4)}),
])
def test_target_syntax(value, kind, fields):
    target = cli._target(_Classes(), value)
    if kind is None:
        assert target == fields
    else:
        assert type(target).__name__ == kind
        assert {name: getattr(target, name) for name in fields} == fields


@pytest.mark.parametrize("value, expected", [
    ("contrast:2,2", "with itself"),
    ("contrast:tabby,tabby", "with itself"),
    ("contrast:1", "contrast takes two classes"),
    ("prob:1,2", "prob takes one class"),
    ("logit:7", "out of range"),
    ("labels:1,9", "out of range"),
    ("labels:1,1", "distinct"),
    ("sigmoid", "model with one output"),
    ("contrast:tabby,tigger", "Unknown class label 'tigger'"),
])
def test_bad_target_syntax_is_refused_before_computing(value, expected):
    with pytest.raises(ValueError, match=expected):
        cli._target(_Classes(), value)


def test_the_help_documents_every_target_kind(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["explain", "--help"])
    text = capsys.readouterr().out
    for syntax in ("prob:C", "contrast:A,B", "labels:C1,C2", "logit:C", "sigmoid"):
        assert syntax in " ".join(text.split())


def test_a_contrast_target_reaches_explain_and_titles_the_map(tmp_path, capsys, image, lite0_cli, lite0, monkeypatch):
    import xai_lab
    from xai_lab.targets import Contrast

    seen = []
    real_explain = xai_lab.explain

    def recording_explain(*args, **kwargs):
        e = real_explain(*args, **kwargs)
        seen.append((kwargs["target"], e))
        return e

    monkeypatch.setattr(xai_lab, "explain", recording_explain)
    out = tmp_path / "f.png"
    argv = ["explain", str(image), "--method", "saliency", "--target", "contrast:tabby,tiger cat", "--out", str(out)]
    assert cli.main(argv) == 0 and out.is_file()
    (target, e), = seen
    assert isinstance(target, Contrast) and (target.a, target.b) == (lite0.categories.index("tabby"),
                                                                     lite0.categories.index("tiger cat"))
    assert e.explained.describe(lite0.categories) == "contrast: logit of tabby - logit of tiger cat"
