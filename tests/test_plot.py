import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from xai_lab import plot
from xai_lab.explain import Explanation

from .conftest import RegionMean


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_to_image_undoes_the_input_scaling(lite0):
    x = lite0.from_pixels(torch.full((3, 4, 4), 0.25))
    assert np.allclose(plot.to_image(x, lite0), 0.25)


def test_grid_has_one_row_per_image_one_column_per_method_and_one_color_bar():
    images = [np.zeros((8, 8, 3)), np.ones((8, 8, 3))]
    maps = Explanation(saliency=torch.rand(2, 8, 8), target=torch.zeros(2, dtype=torch.long), method="m")
    fig = plot.grid(images, {"a": maps, "b": torch.rand(2, 8, 8)}, row_titles=["x", "y"])
    assert len(fig.axes) == 2 * 3 + 1  # 2 rows x (image + 2 maps) + the shared color bar
    assert fig.axes[1].get_title() == "a" and fig.axes[0].get_title() == "x"
    bar = fig.axes[-1]
    assert bar.get_ylabel() == plot.MIN_MAX_LABEL and "0 = its minimum, 1 = its maximum" in plot.MIN_MAX_LABEL
    overlays = [ax.get_images()[-1] for i, ax in enumerate(fig.axes[:6]) if i % 3]
    assert {(a.get_cmap().name, a.get_clim()) for a in overlays} == {(plot.UNSIGNED_CMAP, (0, 1))}
    assert sum(a.colorbar is not None for a in overlays) == 1  # one bar for the figure, not one per map
    assert len(plot.grid(images, {"a": maps}, colorbar=False).axes) == 4


def test_grid_scales_each_map_to_its_own_range():
    images = [np.zeros((2, 2, 3))]
    small = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    fig = plot.grid(images, {"small": small, "large": 10 * small})
    shown = [np.asarray(ax.get_images()[-1].get_array()) for ax in fig.axes[1:3]]
    assert np.allclose(shown[0], [[0.0, 0.25], [0.5, 1.0]]) and np.allclose(shown[1], shown[0])


def test_overlay_uses_the_unsigned_color_map_and_says_how_the_map_is_scaled():
    fig, ax = plt.subplots()
    plot.overlay(ax, np.zeros((8, 8, 3)), torch.rand(8, 8))
    artist = ax.get_images()[1]
    assert artist.get_clim() == (0, 1) and artist.get_cmap().name == plot.UNSIGNED_CMAP == "viridis"
    assert len(fig.axes) == 2 and artist.colorbar is not None
    assert artist.colorbar.ax.get_ylabel() == plot.MIN_MAX_LABEL
    assert artist.colorbar.solids.get_alpha() == 1.0
    fig, ax = plt.subplots()
    plot.overlay(ax, np.zeros((8, 8, 3)), torch.rand(8, 8), cmap="gray_r", colorbar=False)
    assert len(fig.axes) == 1 and ax.get_images()[1].get_cmap().name == "gray_r"


def test_percentile_limit_is_the_percentile_of_magnitudes():
    m = torch.arange(-50.0, 51.0)  # magnitudes 0..50, each twice except 0
    assert plot.percentile_limit(m, 100) == 50.0
    assert plot.percentile_limit(m, 99) == pytest.approx(np.percentile(np.abs(m.numpy()), 99))
    spiky = torch.ones(100, 100)
    spiky[0, 0] = 1000.0
    assert plot.percentile_limit(spiky, 99) == 1.0  # one extreme pixel does not set the scale
    clipped, limit = plot.clip_percentile(spiky, 99)
    assert limit == 1.0 and float(clipped.max()) == 1.0
    assert plot.percentile_limit(torch.zeros(3, 3)) > 0
    with pytest.raises(ValueError):
        plot.percentile_limit(m, 0)


def test_signed_maps_get_symmetric_limits_and_a_diverging_map():
    m = torch.tensor([[-1.0, 0.5], [3.0, 0.0]])
    assert plot.color_limits(m) == (-3.0, 3.0)
    assert plot.color_limits(m.abs()) == (0.0, 3.0)
    fig, ax = plt.subplots()
    artist = plot.show_map(ax, m)
    assert artist.get_clim() == (-3.0, 3.0)
    assert artist.get_cmap().name == plot.SIGNED_CMAP
    assert artist.colorbar is not None and len(fig.axes) == 2
    fig, ax = plt.subplots()
    artist = plot.show_map(ax, m.abs(), colorbar=False)
    assert artist.get_clim() == (0.0, 3.0) and artist.get_cmap().name == plot.UNSIGNED_CMAP
    assert artist.colorbar is None and len(fig.axes) == 1


def test_show_map_clips_at_the_percentile_and_overlays_an_image():
    m = torch.linspace(-1, 1, 100).view(10, 10)
    m[0, 0] = -100.0
    fig, ax = plt.subplots()
    artist = plot.show_map(ax, m, image=np.zeros((10, 10, 3)), clip=99)
    limit = plot.percentile_limit(m, 99)
    assert limit < 100 and artist.get_clim() == (-limit, limit)
    assert len(ax.get_images()) == 2 and artist.get_alpha() == 0.6
    assert artist.colorbar.solids.get_alpha() == 1.0  # the bar is opaque although the map is not


def test_map_grid_shares_one_scale_and_one_color_bar():
    small, large = torch.rand(2, 6, 6), 5 * torch.rand(2, 6, 6) - 2.5
    images = [np.zeros((6, 6, 3))] * 2
    fig = plot.map_grid({"small": small, "large": large}, images=images, row_titles=["p", "q"])
    assert len(fig.axes) == 2 * 3 + 1  # 2 rows x (image + 2 maps) + the shared color bar
    limit = float(large.abs().max())
    clims = {ax.get_images()[-1].get_clim() for r, ax in enumerate(fig.axes[:6]) if r % 3}
    assert clims == {(-limit, limit)}
    assert fig.axes[1].get_title() == "small" and fig.axes[0].get_title() == "p"
    fig = plot.map_grid({"a": small}, clip=50)
    assert fig.axes[0].get_images()[0].get_clim() == (0.0, plot.percentile_limit(small, 50))
    with pytest.raises(ValueError):
        plot.map_grid({"a": small, "b": torch.rand(3, 6, 6)})


def test_superpixel_values_are_centered_on_zero():
    segments = np.array([[0, 0, 1], [2, 2, 1]])
    fig, ax = plt.subplots()
    artist = plot.superpixel_values(ax, np.zeros((2, 3, 3)), segments, {0: 0.5, 2: -2.0})
    assert artist.get_clim() == (-2.0, 2.0)
    assert np.asarray(artist.get_array()).tolist() == [[0.5, 0.5, 0.0], [-2.0, -2.0, 0.0]]
    assert artist.colorbar is not None
    artist = plot.superpixel_values(ax, np.zeros((2, 3, 3)), segments, [1.0, 0.0, 0.0], limit=4.0, colorbar=False)
    assert artist.get_clim() == (-4.0, 4.0)


def test_superpixel_boundaries_are_drawn_and_counted():
    segments = np.array([[0, 0, 1, 1]] * 4)
    fig, ax = plt.subplots()
    artist = plot.superpixel_boundaries(ax, np.zeros((4, 4, 3)), segments)
    assert ax.get_title() == "2 superpixels"
    drawn = np.asarray(artist.get_array())
    assert drawn[:, 1:3].any() and not drawn[:, 0].any()  # yellow on the boundary only


def test_image_grid_fills_rows_and_passes_the_display_options():
    masks = [torch.full((1, 6, 6), 0.5), torch.zeros(6, 6), np.ones((6, 6, 3))]
    fig = plot.image_grid(masks, ["mask 0", None, "image"], ncols=2, cmap="gray", vmin=0, vmax=1)
    assert len(fig.axes) == 4  # 2 rows x 2 columns, the last cell blank
    assert [ax.get_title() for ax in fig.axes] == ["mask 0", "", "image", ""]
    first = fig.axes[0].get_images()[0]
    assert first.get_array().shape == (6, 6) and first.get_clim() == (0, 1) and first.get_cmap().name == "gray"
    assert fig.axes[2].get_images()[0].get_array().shape == (6, 6, 3) and not fig.axes[3].get_images()
    assert len(plot.image_grid(masks).axes) == 3  # one row by default
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        plot.image_grid(masks, ["a", "b"])
    with pytest.raises(ValueError, match="ncols"):
        plot.image_grid(masks, ncols=0)


def test_removal_gallery_titles_the_target_probability_of_each_perturbed_image():
    model, image = RegionMean(), torch.ones(3, 8, 8)
    region_first = model.mask[0, 0] + torch.linspace(0, 1e-3, 64).view(8, 8)
    fig = plot.removal_gallery(model, image, {"region": region_first, "reverse": -region_first}, target=0,
                               fractions=(4 / 64, 8 / 64), baselines=(0.0,), order="morf")
    axes = fig.axes
    assert len(axes) == 4
    # the region map removes 4 then all 8 region pixels: the logit 1 -> 0.5 -> 0; the reverse map none of them
    expected = [torch.sigmoid(torch.tensor(z)).item() for z in (0.5, 0.0, 1.0, 1.0)]
    for ax, name, f, p in zip(axes, ("region", "region", "reverse", "reverse"), ("6%", "12%") * 2, expected):
        assert ax.get_title() == f"{name}, 0.0, {f}\np = {p:.2f}"
    assert fig._suptitle.get_text() == f"MoRF removal (clean p = {torch.sigmoid(torch.tensor(1.0)).item():.2f})"
    shown = axes[1].get_images()[0].get_array()
    assert np.asarray(shown).min() == 0 and np.asarray(shown).max() == 1  # removed pixels show the baseline
    plt.close(fig)


def test_removal_curves_label_each_curve_with_its_mean_auc():
    fractions = torch.tensor([0.0, 0.5, 1.0])
    results = {"a": {"fractions": fractions, "curve": torch.tensor([[1.0, 0.5, 0.0], [1.0, 0.7, 0.2]]),
                     "auc": torch.tensor([0.5, 0.65])}}
    fig, ax = plt.subplots()
    plot.removal_curves(ax, results, title="deletion")
    line = ax.get_lines()[0]
    assert line.get_label() == "a (AUC 0.575)" and np.allclose(line.get_ydata(), [1.0, 0.6, 0.1])
    assert ax.get_title() == "deletion" and ax.get_legend() is not None
    plt.close(fig)


def test_show_pixels_draws_channels_first_tensors_clipped_to_the_unit_range():
    pixels = torch.zeros(3, 2, 4)
    pixels[0, 0, 0], pixels[1, 1, 3] = 2.0, -1.0
    fig, ax = plt.subplots()
    plot.show_pixels(ax, pixels, title="t")
    shown = np.asarray(ax.get_images()[0].get_array())
    assert shown.shape == (2, 4, 3) and shown[0, 0, 0] == 1.0 and shown[1, 3, 1] == 0.0
    assert ax.get_title() == "t" and not ax.axison
    plt.close(fig)


def test_own_scale_grid_gives_each_map_its_own_limits_at_its_resolution():
    images = [np.zeros((8, 8, 3)), np.ones((8, 8, 3))]
    fine, coarse = torch.randn(2, 8, 8), 100 * torch.randn(2, 2, 2)
    fig = plot.own_scale_grid(images, {"fine": fine, "coarse": coarse}, row_titles=["a", "b"], signed=True)
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[:, 0]] == ["a", "b"] and axes[0, 1].get_title() == "fine"
    assert axes[1, 1].get_title() == "" and axes[0, 2].get_title() == "coarse"
    for r in range(2):
        for c, m in ((1, fine), (2, coarse)):
            artist = axes[r, c].get_images()[0]
            limit = float(m[r].abs().max())
            assert artist.get_clim() == pytest.approx((-limit, limit)) and artist.get_array().shape == m[r].shape
    with pytest.raises(ValueError, match="one map per image"):
        plot.own_scale_grid(images, {"fine": fine[:1]})
    plt.close(fig)


def test_own_scale_grid_clips_each_map_at_its_percentile_and_adds_its_color_bar():
    images = [np.zeros((10, 10, 3))]
    spiky = torch.arange(100.0).reshape(1, 10, 10)
    fig = plot.own_scale_grid(images, {"spiky": spiky}, signed=False, clip=90, colorbar=True)
    artist = fig.axes[1].get_images()[0]
    assert artist.get_clim() == pytest.approx((0.0, float(np.percentile(np.arange(100.0), 90))))
    assert artist.colorbar is not None and len(fig.axes) == 3  # image, map, the map's color bar
    plt.close(fig)


def test_anchor_figure_draws_pictures_then_anchors_in_red():
    segments = np.array([[0, 0, 1], [2, 2, 1]])
    fig = plot.anchor_figure(np.zeros((2, 3, 3)), segments, {"found": [1], "none": []},
                             pictures={"copy": np.ones((2, 3, 3))})
    assert [ax.get_title() for ax in fig.axes] == ["copy", "found", "none"]
    assert np.asarray(fig.axes[0].get_images()[0].get_array()).min() == 1.0
    found, none = (np.asarray(ax.get_images()[-1].get_array()) for ax in fig.axes[1:])
    assert found.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]] and not none.any()
    assert fig.axes[1].get_images()[-1].get_clim() == (-1.0, 1.0)  # 1 is full red on the signed scale
