import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from xai_lab import plot
from xai_lab.explain import Explanation


def test_to_image_undoes_the_input_scaling(lite0):
    x = lite0.from_pixels(torch.full((3, 4, 4), 0.25))
    assert np.allclose(plot.to_image(x, lite0), 0.25)


def test_grid_has_one_row_per_image_and_one_column_per_method():
    images = [np.zeros((8, 8, 3)), np.ones((8, 8, 3))]
    maps = Explanation(saliency=torch.rand(2, 8, 8), target=torch.zeros(2, dtype=torch.long), method="m")
    fig = plot.grid(images, {"a": maps, "b": torch.rand(2, 8, 8)}, row_titles=["x", "y"])
    assert len(fig.axes) == 6
    assert fig.axes[1].get_title() == "a" and fig.axes[0].get_title() == "x"
