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


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".WebP"])
def test_save_animation_round_trips_frames_and_durations(tmp_path, suffix):
    import numpy as np
    from PIL import Image

    frames = [np.full((6, 10, 3), 40 * i, dtype=np.uint8) for i in range(4)]
    path = viz.save_animation(frames, tmp_path / "sub" / f"anim{suffix}", fps=5, hold_last=2)
    assert path.exists()
    with Image.open(path) as anim:
        assert anim.format == ("GIF" if suffix == ".gif" else "WEBP")
        assert anim.n_frames == 4 and anim.size == (10, 6)
        durations, firsts = [], []
        for i in range(anim.n_frames):
            anim.seek(i)
            anim.load()  # WebP reports a frame's duration once it is decoded
            durations.append(anim.info["duration"])
            firsts.append(int(np.asarray(anim.convert("RGB"))[0, 0, 0]))
    assert durations == [200, 200, 200, 3 * 200]  # the last frame held 2 extra frames
    assert firsts == [0, 40, 80, 120]


def test_save_animation_takes_grey_frames_and_rejects_bad_input(tmp_path):
    import numpy as np
    from PIL import Image

    grey = [np.full((5, 5), v, dtype=np.uint8) for v in (0, 100, 200)]
    for name in ("grey.gif", "grey.webp"):
        with Image.open(viz.save_animation(grey, tmp_path / name, hold_last=0)) as anim:
            assert anim.n_frames == 3
    with Image.open(viz.save_animation([g[..., None] for g in grey], tmp_path / "g1.gif")) as anim:
        assert anim.n_frames == 3
    accepted = r"unknown animation format '\.mp4' for a\.mp4; accepted suffixes: \.gif, \.webp"
    with pytest.raises(ValueError, match=accepted):
        viz.save_animation(grey, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="at least one frame"):
        viz.save_animation([], tmp_path / "a.webp")
    with pytest.raises(ValueError, match="same shape"):
        viz.save_animation([grey[0], np.zeros((4, 5), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="uint8"):
        viz.save_animation([np.zeros((4, 4), np.float32)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="fps must be positive"):
        viz.save_animation(grey, tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match="hold_last"):
        viz.save_animation(grey, tmp_path / "a.gif", hold_last=-1)
