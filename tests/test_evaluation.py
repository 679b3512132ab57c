"""ddpm_core.evaluation against independent float64 computations: closed forms, brute force, known limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_core import evaluation as ev


def _spd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return v @ torch.diag(w.clamp_min(0).sqrt()) @ v.T


def _frechet_closed_form(mu1, s1, mu2, s2) -> float:
    """tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2): symmetric square roots by eigh, not torch-fidelity's eigvals."""
    r1 = _sqrtm_psd(s1)
    cross = torch.linalg.eigvalsh(r1 @ s2 @ r1).clamp_min(0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * cross)


# ---------------------------------------------------------------------------------------------------- FID
def test_frechet_distance_matches_the_closed_form_for_two_gaussians():
    g = torch.Generator().manual_seed(0)
    d = 6
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = _spd(d, g), _spd(d, g)
    got = ev.frechet_distance(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    assert got == pytest.approx(_frechet_closed_form(mu1, s1, mu2, s2), rel=1e-9)
    # Diagonal covariances: the distance is |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2.
    a, b = torch.rand(d, generator=g, dtype=torch.float64) + 0.1, torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    diag = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert ev.frechet_distance(mu1.numpy(), np.diag(a.numpy()), mu2.numpy(), np.diag(b.numpy())) == \
        pytest.approx(diag, rel=1e-9)


def test_fid_of_features_is_the_float64_fit_and_approaches_the_closed_form_for_gaussian_samples():
    g = torch.Generator().manual_seed(1)
    d, n = 3, 100_000
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64)
    s1, s2 = _spd(d, g), _spd(d, g)
    x = mu1 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    y = mu2 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    fitted = _frechet_closed_form(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T))
    assert ev.fid(x, y) == pytest.approx(fitted, rel=1e-8)
    assert ev.fid(x, y) == pytest.approx(_frechet_closed_form(mu1, s1, mu2, s2), rel=0.02)
    # float32 features give the same number: the fit is always float64.
    assert ev.fid(x.float(), y.float()) == pytest.approx(ev.fid(x, y), rel=1e-5)


def test_identical_sets_have_fid_0_and_precision_recall_coverage_1():
    f = torch.randn(300, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert ev.fid(f, f) < 1e-6
    assert ev.precision_recall(f, f) == {"precision": 1.0, "recall": 1.0}
    assert ev.density_coverage(f, f)["coverage"] == 1.0


def _clusters(centres: torch.Tensor, n_each: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c + 0.1 * torch.randn(n_each, centres.shape[1], generator=g, dtype=torch.float64)
                      for c in centres])


def test_a_dropped_mode_lowers_recall_not_precision():
    centres = 10 * torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    real = _clusters(centres, 250, 0)
    full = ev.precision_recall(_clusters(centres, 250, 1), real)
    dropped = ev.precision_recall(_clusters(centres[:3], 333, 2), real)
    assert full["precision"] > 0.95 and full["recall"] > 0.95
    assert dropped["precision"] > 0.95
    assert dropped["recall"] == pytest.approx(0.75, abs=0.03)
    dc = ev.density_coverage(_clusters(centres[:3], 333, 2), real)
    assert dc["coverage"] < 0.76


def test_precision_recall_is_the_brute_force_definition():
    g = torch.Generator().manual_seed(3)
    fake, real = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.randn(50, 3, generator=g,
                                                                                   dtype=torch.float64) + 0.3

    def radius(points, i, k=3):
        d = sorted(math.dist(points[i], points[j]) for j in range(len(points)) if j != i)
        return d[k - 1]

    f, r = fake.tolist(), real.tolist()
    rr, rf = [radius(r, i) for i in range(len(r))], [radius(f, i) for i in range(len(f))]
    precision = np.mean([any(math.dist(y, r[i]) <= rr[i] for i in range(len(r))) for y in f])
    recall = np.mean([any(math.dist(x, f[j]) <= rf[j] for j in range(len(f))) for x in r])
    got = ev.precision_recall(fake, real)
    assert got["precision"] == pytest.approx(precision, abs=1e-6)  # torch-fidelity averages in float32
    assert got["recall"] == pytest.approx(recall, abs=1e-6)


# ---------------------------------------------------------------------------------------------------- KID
def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - kxx.diag().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
                 - 2 * kxy.mean())


def test_kid_is_the_unbiased_mmd2_with_the_cubic_kernel():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(60, 5, generator=g, dtype=torch.float64), torch.randn(60, 5, generator=g, dtype=torch.float64)
    got = ev.kid(x, y + 0.5, subsets=1, subset_size=60)  # one subset of everything: a permutation, same value
    assert got["kid"] == pytest.approx(_mmd2_unbiased(x, y + 0.5), rel=1e-9)
    assert got["kid_std"] == 0.0


def test_kid_is_unbiased_on_samples_of_one_distribution_where_the_biased_estimate_is_not():
    g = torch.Generator().manual_seed(5)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randn(20, 4, generator=g,
                                                                               dtype=torch.float64)
        unbiased.append(ev.kid(x, y, subsets=1, subset_size=20)["kid"])
        k = lambda a, b: (a @ b.T / 4 + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
    u, b = torch.tensor(unbiased), torch.tensor(biased)
    se = float(u.std()) / math.sqrt(len(u))
    assert abs(float(u.mean())) < 4 * se
    assert float(b.mean()) > 10 * se  # the plug-in estimate is biased upwards: the test can tell the two apart


def test_kid_subset_size_defaults_to_the_smaller_set_and_refuses_too_large():
    f = torch.randn(30, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert ev.kid(f, f[:25], subsets=3)["kid_subset_size"] == 25
    with pytest.raises(ValueError, match="KID subset size 50 is larger than the smaller set"):
        ev.kid(f, f, subset_size=50)


# ---------------------------------------------------------------------------------------------------- IS
def test_inception_score_is_exp_of_the_mean_kl_to_the_marginal():
    logits = torch.randn(100, 10, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 3
    p = logits.softmax(1)
    marginal = p.mean(0)
    expected = math.exp(float((p * (p.log() - marginal.log())).sum(1).mean()))
    assert ev.inception_score(logits, splits=1)["is"] == pytest.approx(expected, rel=1e-10)
    confident = torch.eye(10, dtype=torch.float64).repeat(10, 1) * 50  # sure of itself, every class equally often
    assert ev.inception_score(confident, splits=1)["is"] == pytest.approx(10, rel=1e-6)
    assert ev.inception_score(confident[:, :1].expand(-1, 10) * 0 + confident[0], splits=1)["is"] == \
        pytest.approx(1, rel=1e-6)  # one class only


# ------------------------------------------------------------------------------------------- density/coverage
def test_density_and_coverage_are_the_brute_force_definitions():
    g = torch.Generator().manual_seed(8)
    fake, real = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.randn(30, 3, generator=g,
                                                                                   dtype=torch.float64)
    r, f, k = real.tolist(), fake.tolist(), 5
    radii = [sorted(math.dist(r[i], r[j]) for j in range(len(r)) if j != i)[k - 1] for i in range(len(r))]
    inside = [[math.dist(r[i], y) <= radii[i] for y in f] for i in range(len(r))]
    density = sum(map(sum, inside)) / (k * len(f))
    coverage = sum(any(row) for row in inside) / len(r)
    got = ev.density_coverage(fake, real)
    assert got["density"] == pytest.approx(density, abs=1e-12)
    assert got["coverage"] == pytest.approx(coverage, abs=1e-12)


def test_density_and_coverage_of_one_distribution_match_their_expected_values():
    g = torch.Generator().manual_seed(9)
    real, fake = torch.randn(1000, 8, generator=g, dtype=torch.float64), torch.randn(1000, 8, generator=g,
                                                                                     dtype=torch.float64)
    got = ev.density_coverage(fake, real)
    # Naeem et al. 2020: E[density] = 1, E[coverage] = 1 - prod_{j<k} (N - 1 - j) / (M + N - 1 - j) ~ 1 - 2^-5.
    n = m = 1000
    expected_coverage = 1 - math.prod((n - 1 - j) / (m + n - 1 - j) for j in range(5))
    assert got["density"] == pytest.approx(1.0, abs=0.06)
    assert got["coverage"] == pytest.approx(expected_coverage, abs=0.02)


# ---------------------------------------------------------------------------------------------------- memorisation
def test_memorisation_flags_copies_of_training_images_and_not_fresh_ones():
    g = torch.Generator().manual_seed(10)
    train = torch.randint(0, 256, (200, 1, 8, 8), generator=g, dtype=torch.uint8)
    fresh = torch.randint(0, 256, (50, 1, 8, 8), generator=g, dtype=torch.uint8)
    copies = train[:40].clone()
    copies[:, :, 0, 0] ^= 1  # a one-grey-level change: still a copy
    got = ev.memorisation(torch.cat([copies, fresh[:10]]), train, fresh)
    assert got["memorised"] == pytest.approx(40 / 50)
    assert got["memorised_held_out"] == 0.0
    assert got["nearest_index"][:40].tolist() == list(range(40))


# ---------------------------------------------------------------------------------------------------- inputs
def test_images_are_quantised_like_png_and_bad_images_are_refused():
    x = torch.tensor([-1.0, -0.999, 0.0, 1.0]).reshape(1, 1, 2, 2)
    assert ev.to_uint8(x).flatten().tolist() == [0, 0, 128, 255]
    with pytest.raises(ValueError, match=r"floats must lie in \[-1, 1\], found \[0, 255\]"):
        ev.to_uint8(x * 0 + torch.tensor([0.0, 1, 2, 255]).reshape(1, 1, 2, 2))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        ev.to_uint8(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        ev.to_uint8(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="1 channel"):
        ev.match_to_reference(torch.zeros(1, 1, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32))
    assert ev.match_to_reference(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 28, 28)).shape[-1] == 28
    with pytest.raises(ValueError, match="32x32 samples against a 28x28"):
        ev.match_to_reference(torch.zeros(1, 1, 30, 30), torch.zeros(1, 1, 28, 28))


def test_load_images_reads_npz_and_png_folders(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(11)
    x = torch.randint(0, 256, (5, 8, 8, 3), generator=g, dtype=torch.uint8)
    np.savez(tmp_path / "s.npz", arr_0=x.numpy())
    assert torch.equal(ev.load_images(tmp_path / "s.npz"), x.permute(0, 3, 1, 2))
    (tmp_path / "png").mkdir()
    for i, img in enumerate(x[..., 0].numpy()):
        Image.fromarray(img).save(tmp_path / "png" / f"{i:03d}.png")
    assert torch.equal(ev.load_images(tmp_path / "png"), x[..., :1].permute(0, 3, 1, 2))
    np.savez(tmp_path / "f.npz", arr_0=x.numpy().astype(np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        ev.load_images(tmp_path / "f.npz")
    np.savez(tmp_path / "k.npz", other=x.numpy())
    with pytest.raises(ValueError, match="no 'arr_0' or 'images'"):
        ev.load_images(tmp_path / "k.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        ev.load_images(tmp_path / "missing.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .png files"):
        ev.load_images(tmp_path / "empty")


def test_evaluate_checks_its_inputs_before_any_work(monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("features were computed before the inputs were checked")

    monkeypatch.setattr(ev, "extract_features", no_work)
    monkeypatch.setattr(ev, "feature_extractor", no_work)
    s, r = torch.zeros(20, 1, 28, 28, dtype=torch.uint8), torch.zeros(30, 1, 28, 28, dtype=torch.uint8)
    cases = [
        (dict(metrics="fid,bogus"), "unknown metrics"),
        (dict(metrics="kid", kid_subset_size=25), "KID subset size 25 is larger"),
        (dict(metrics="memorisation"), "needs the training images"),
        (dict(metrics="fid", features="vgg"), "unknown features 'vgg'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ev.evaluate(s, r, **kwargs)
    with pytest.raises(ValueError, match="pr needs more than k = 3"):
        ev.evaluate(s[:3], r, metrics="pr")
    with pytest.raises(ValueError, match="channel"):
        ev.evaluate(torch.zeros(20, 3, 28, 28), r)


# ------------------------------------------------------------------------------------------- feature extractors
def test_classifier_features_separate_digits_from_noise_and_the_cache_is_reused(tmp_path, monkeypatch):
    from ddpm_core import data

    train = data.from_unit_range(data.load_mnist(train=True, download=False, verbose=False).images[:300])
    test = data.from_unit_range(data.load_mnist(train=False, download=False, verbose=False).images[:300])
    noise = torch.randint(0, 256, test.shape, generator=torch.Generator().manual_seed(12), dtype=torch.uint8)
    ref = ev.Reference("mnist-test-300", test)
    real = ev.evaluate(train, ref, metrics="fid,kid,pr", cache_dir=tmp_path)
    fake = ev.evaluate(noise, ref, metrics="fid,kid,pr", cache_dir=tmp_path)
    assert real["fid"] < fake["fid"] / 10 and real["kid"] < fake["kid"] / 10
    assert real["recall"] > 0.8 and fake["recall"] < 0.1
    assert real["features"].startswith("FID_clf")
    assert len(list(tmp_path.glob("mnist-test-300-*.pt"))) == 1  # the reference's features, cached once
    calls = []
    original = ev.ClassifierFeatures.forward
    monkeypatch.setattr(ev.ClassifierFeatures, "forward", lambda self, x: calls.append(len(x)) or original(self, x))
    again = ev.evaluate(train, ref, metrics="fid", cache_dir=tmp_path)
    assert again["fid"] == real["fid"] and sum(calls) == len(train)  # only the samples were run


def _random_inception_weights(path):
    """An Inception-shaped network with random weights, written to a file: proves the plumbing, not the numbers."""
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)


def test_inception_features_run_offline_from_a_local_weights_file(tmp_path):
    weights = tmp_path / "inception.pth"
    _random_inception_weights(weights)
    extractor = ev.InceptionFeatures(weights)
    grey = torch.randint(0, 256, (2, 1, 28, 28), generator=torch.Generator().manual_seed(13), dtype=torch.uint8)
    out = ev.extract_features(grey, extractor)
    assert out["features"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    assert out["features"].dtype == torch.float64 and torch.isfinite(out["features"]).all()
    colour = grey.expand(-1, 3, -1, -1)
    torch.testing.assert_close(ev.extract_features(colour, extractor)["features"], out["features"])


def test_missing_inception_weights_offline_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--inception-weights PATH"):
        ev.inception_weights(download=False)

    def offline(*a, **k):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError, match="could not be downloaded"):
        ev.inception_weights()
    assert list((tmp_path / "inception").iterdir()) == []  # no partial file left behind
    with pytest.raises(FileNotFoundError, match="no such file"):
        ev.inception_weights(tmp_path / "nope.pth")

    def fake_download(url, dst, hash_prefix=None, progress=True):
        assert url == ev.INCEPTION_URL and hash_prefix == ev.INCEPTION_HASH_PREFIX
        torch.save({"fc.weight": torch.zeros(1)}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert ev.inception_weights() == tmp_path / "inception" / ev.INCEPTION_FILE


def test_unsafe_inception_weights_are_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": argparse.Namespace(a=1)}, path)  # a Python object a weights-only load refuses
    with pytest.raises(ValueError, match="cannot be read"):
        ev.InceptionFeatures(path)


# ---------------------------------------------------------------------------------------------------- bits/dim
class _Zero(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


def test_the_timestep_subset_estimate_of_bits_per_dim_is_unbiased(monkeypatch):
    from ddpm_core.diffusion import GaussianDiffusion

    diffusion = GaussianDiffusion.from_schedule("linear", 50, 1e-4, 0.02)
    x = torch.zeros(2, 1, 2, 2)

    def fake_terms(model_output, x_start, x_t, t, **kwargs):  # term t is worth t + 1 bits, whatever the noise
        return {"output": (t + 1).to(torch.float64), "pred_xstart": x_start}

    monkeypatch.setattr(diffusion, "vb_terms_bpd", fake_terms)
    monkeypatch.setattr(diffusion, "prior_bpd", lambda x0: torch.zeros(len(x0), dtype=torch.float64))
    exact_sum = sum(t + 1 for t in range(50))
    estimates = [ev.bits_per_dim(_Zero(), diffusion, x, timesteps_subset=7, seed=s)["bpd"] for s in range(300)]
    assert float(np.mean(estimates)) == pytest.approx(exact_sum, rel=0.01)
    one = ev.bits_per_dim(_Zero(), diffusion, torch.zeros(1, 1, 2, 2), timesteps_subset=7, seed=0)
    assert one["decoder_bpd"] == 1.0 and (one["terms"] != 0).sum() == 8  # t = 0 and 7 others, one in each stratum
    chosen = one["terms"].nonzero().flatten().tolist()[1:]
    assert [(t - 1) * 7 // 49 for t in chosen] == list(range(7)) and one["timesteps"].tolist() == [chosen]
    assert ev.bits_per_dim(_Zero(), diffusion, x, timesteps_subset=49)["bpd"] == exact_sum  # every t once


def test_exact_bits_per_dim_is_the_full_loop_and_its_terms_add_up():
    from ddpm_core.diffusion import GaussianDiffusion

    diffusion = GaussianDiffusion.from_schedule("linear", 20, 1e-4, 0.2)
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(14)) * 2 - 1
    out = ev.bits_per_dim(_Zero(), diffusion, x, seed=1)
    expected = diffusion.calc_bpd_loop(_Zero(), x, generator=torch.Generator().manual_seed(1))
    assert out["bpd"] == pytest.approx(float(expected["total_bpd"].double().mean()), rel=1e-6)
    assert out["bpd"] == pytest.approx(out["prior_bpd"] + out["decoder_bpd"] + out["diffusion_bpd"], rel=1e-12)
    assert float(out["terms"].sum()) == pytest.approx(out["bpd"] - out["prior_bpd"], rel=1e-9)
    with pytest.raises(ValueError, match=r"x_0 in \[-1, 1\]|\[-1, 1\]"):
        ev.bits_per_dim(_Zero(), diffusion, x * 255)
    with pytest.raises(ValueError, match="timesteps_subset must be an integer in"):
        ev.bits_per_dim(_Zero(), diffusion, x, timesteps_subset=20)


# ---------------------------------------------------------------------------------------------------- commands
def test_evaluate_command_prints_and_writes_one_json_line(tmp_path, capsys, monkeypatch):
    import json

    from ddpm_core import data
    from ddpm_core.cli import main

    monkeypatch.setenv("DDPM_DATA_DIR", str(tmp_path))  # the reference cache goes there, not into the repository
    digits = data.from_unit_range(data.load_mnist(train=True, download=False, verbose=False).images[:60])
    padded = torch.nn.functional.pad(digits, (2, 2, 2, 2))  # 32x32, as the course's models draw them
    np.savez(tmp_path / "s.npz", arr_0=padded.permute(0, 2, 3, 1).numpy())
    out = tmp_path / "m.json"
    assert main(["evaluate", "--samples", str(tmp_path / "s.npz"), "--metrics", "fid,kid,is,pr,dc,memorisation",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(out.read_text())
    assert printed["n_samples"] == 60 and printed["n_reference"] == 500 and printed["kid_subset_size"] == 60
    assert printed["memorised"] == 1.0  # they are training images
    assert printed["memorised_held_out"] < 0.05
    for key in ("fid", "kid", "kid_std", "is", "precision", "recall", "density", "coverage"):
        assert math.isfinite(printed[key])


def test_evaluate_command_errors_are_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    from ddpm_core.cli import main

    np.savez(tmp_path / "rgb.npz", arr_0=np.zeros((20, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "few.npz", arr_0=np.zeros((3, 28, 28, 1), np.uint8))
    monkeypatch.setenv("DDPM_DATA_DIR", str(tmp_path / "data"))  # no Inception weights, no CIFAR-10 here
    cases = [
        (["--samples", str(tmp_path / "rgb.npz")], "channel"),
        (["--samples", str(tmp_path / "few.npz"), "--metrics", "pr"], "pr needs more than k = 3"),
        (["--samples", str(tmp_path / "few.npz"), "--kid-subset-size", "10", "--metrics", "kid"],
         "KID subset size 10 is larger"),
        (["--samples", str(tmp_path / "rgb.npz"), "--reference", "cifar10-test", "--features", "inception"],
         "CIFAR-10 is not in"),
        (["--samples", str(tmp_path / "missing.npz")], "no such file"),
        (["--samples", str(tmp_path / "few.npz"), "--metrics", "fid,psnr"], "unknown metrics"),
        (["--samples", str(tmp_path / "few.npz"), "--out", str(tmp_path)], "is a folder"),
    ]
    for args, message in cases:
        assert main(["evaluate", *args, "--no-progress", "--device", "cpu"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "grey.npz", arr_0=np.zeros((20, 28, 28, 1), np.uint8))
    assert main(["evaluate", "--samples", str(tmp_path / "grey.npz"), "--features", "inception", "--metrics", "fid",
                 "--no-progress", "--device", "cpu"]) == 2
    assert "--inception-weights PATH" in capsys.readouterr().err


def test_bpd_command_on_the_pretrained_model(capsys):
    import json

    from ddpm_core.cli import main

    assert main(["bpd", "--pretrained", "mnist", "--n", "4", "--timesteps-subset", "3", "--no-progress",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n"] == 4 and out["timesteps_subset"] == 3 and 0 < out["bpd"] < 8
    assert out["bpd"] == pytest.approx(out["prior_bpd"] + out["decoder_bpd"] + out["diffusion_bpd"])
    assert main(["bpd", "--pretrained", "mnist", "--timesteps-subset", "1000", "--device", "cpu"]) == 2
    assert "give at most 999" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- training
def test_training_time_evaluation_goes_into_history_summary_and_resume(tmp_path):
    import json

    from ddpm_core import images
    from test_images import TINY_UNET, write_config

    exp = {"dataset": "mnist", "data_limit": 64, "unet": "mnist_cpu", "unet_overrides": TINY_UNET, "timesteps": 20,
           "grid_size": 4, "grid_steps": 2, "eval_every": 2, "eval_samples": 12, "eval_steps": 2}
    path = write_config(tmp_path / "e.json", experiment=exp,
                        train={"steps": 2, "batch_size": 4, "warmup_steps": 1, "ema_decay": 0.9, "log_every": 1})
    config, train = images.load_config(path, quick=False)
    logs = []
    images.run(config, train, tmp_path / "run", device="cpu", progress=False, log=logs.append)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [e["step"] for e in history["eval"]] == [2] and math.isfinite(history["eval"][0]["fid"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["eval"] == history["eval"][0]
    assert any("FID_clf" in line for line in logs)
    config, train = images.load_config(path, {"train.steps": 4, "experiment.eval_samples": 16}, quick=False)
    tr = images.run(config, train, tmp_path / "run", device="cpu", progress=False, resume=True, log=logs.append)
    assert [e["step"] for e in tr.eval_history] == [2, 4]  # the first evaluation survived the resume
    assert any("eval_samples: 12 -> 16" in line for line in logs)


def test_training_time_evaluation_without_inception_weights_fails_before_training(tmp_path, monkeypatch):
    from ddpm_core import images
    from test_images import tiny_config_file

    monkeypatch.setenv("DDPM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    config, train = images.load_config(tiny_config_file(tmp_path, eval_every=2, eval_samples=10), quick=False)
    assert config.eval_feature_kind() == "inception"
    with pytest.raises(FileNotFoundError, match="--inception-weights PATH"):
        images.run(config, train, tmp_path / "run", device="cpu", progress=False, log=lambda *a: None)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="eval_features 'classifier' .* needs grey digits"):
        images.load_config(tiny_config_file(tmp_path, eval_features="classifier", dataset="cifar10"), quick=False)
    with pytest.raises(ValueError, match="eval_samples must be an integer >= 10"):
        images.load_config(tiny_config_file(tmp_path, eval_samples=3), quick=False)
