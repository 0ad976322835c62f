import subprocess
import sys

import numpy as np
from PIL import Image

from xai_lab import cli


def test_explain_prints_top5_and_writes_the_grid(tmp_path, capsys):
    from skimage import data

    image = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(image)
    out = tmp_path / "fig.png"
    assert cli.main(["explain", str(image), "--method", "gradcam,saliency", "--target", "espresso", "--out", str(out)]) == 0
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
    out = subprocess.run([sys.executable, "-m", "xai_lab.cli", "info"], capture_output=True, text=True, check=True).stdout
    assert "efficientnet_lite0" in out and "gradcam" in out and "data:" in out
