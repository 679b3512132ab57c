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


def test_gif_makers_write_animations(tmp_path):
    from PIL import Image

    from ddpm_core import GaussianDiffusion

    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.3)
    frames = viz.forward_process_frames(d, torch.randn(100, 2), [0, 10, 49], size=2, dpi=40)
    assert len(frames) == 3 and frames[0].ndim == 3 and not (frames[0] == frames[-1]).all()
    path = viz.save_gif(frames, tmp_path / "fwd.gif", fps=5, hold_last=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 3  # Pillow merges the held copies of the last frame into one longer frame
        gif.seek(2)
        assert gif.info["duration"] == 3 * 200
    grid_frames = viz.image_grid_frames(torch.rand(3, 4, 1, 8, 8) * 2 - 1, nrow=2, scale=2)
    assert grid_frames[0].shape == (2 * (2 * 8 + 3 * 2), 2 * (2 * 8 + 3 * 2))
    viz.save_gif(grid_frames, tmp_path / "grid.gif")
    with pytest.raises(ValueError, match="at least one frame"):
        viz.save_gif([], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="one title per frame"):
        viz.scatter_frames(torch.zeros(2, 5, 2), ["a"])
