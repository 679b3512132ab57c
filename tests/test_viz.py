import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_core import viz  # noqa: E402


def test_image_grid_maps_unit_range_to_uint8():
    images = torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0)])
    grid = viz.image_grid(images, nrow=2, padding=0)
    assert grid.shape == (4, 8, 1) and grid.dtype.name == "uint8"
    assert grid[:, :4].max() == 0 and grid[:, 4:].min() == 255
    assert viz.image_grid(torch.zeros(3, 3, 5, 5), nrow=3, padding=0).shape == (5, 15, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        viz.image_grid(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.scatter_2d(torch.zeros(5, 3))


def test_plots_draw():
    ax = viz.show_images(torch.zeros(4, 1, 8, 8), nrow=2, title="x")
    assert ax.get_title() == "x"
    ax = viz.scatter_2d(torch.randn(10, 2), title="p")
    assert ax.get_title() == "p"
    plt.close("all")
