"""Rewrite everything derived from the repository URL in pyproject.toml ([project.urls] Repository).

* the lesson table in README.md (between the `lessons:start` / `lessons:end` markers), with an
  "Open in Colab" badge per lesson;
* the `REPO_URL = "..."` line of each lesson's Colab setup cell.

Run it after changing the URL (e.g. in a fork):  python scripts/sync_repo_url.py
`python scripts/sync_repo_url.py --check` exits 1 if anything is out of date (the tests run it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- lessons:start -->", "<!-- lessons:end -->"
# The line as it appears inside the notebook's JSON (quotes escaped); edited as text so the file's formatting stays.
REPO_URL_LINE = re.compile(r'(REPO_URL = \\")[^"\\]*(\\")')

# (notebook stem, title, what you learn, where it runs)
LESSONS = [
    ("00_setup", "Setup and the map of the course", "environment check, the quick/full switch, the data, the notation", "CPU"),
    ("01_forward_process", "The forward process", "noising digits and points, the closed-form jump to any t, its mean and variance", "CPU"),
    ("02_noise_schedules", "Noise schedules", "linear, cosine, jsd and five more: betas, alpha-bar, SNR, what T changes", "CPU"),
    ("03_posterior_and_elbo", "The posterior and the ELBO", "Bayes' rule for q(x_{t-1} given x_t, x_0), the four parameterisations, the bound, bits/dim", "CPU"),
    ("04_toy_2d_diffusion", "Training on 2-D data", "Algorithms 1 and 2 from scratch, then with ddpm_core; GIFs of the reverse process; measured sample quality", "CPU"),
    ("05_objectives_and_variances", "Objectives and variances compared", "eps, x0, v and mean; four variances; mse, kl and hybrid; schedules: a measured comparison", "CPU"),
    ("06_unet", "The DDPM UNet", "time embedding, residual and attention blocks, the down/up path piece by piece; the 35.7M count; inside a trained network", "CPU"),
    ("07_mnist", "Training on MNIST", "Algorithm 1 on images: configs, EMA, warm-up, clipping, checkpoints and exact resume; sample grids, a denoising GIF; the pretrained model", "CPU / GPU"),
    ("08_cifar10_gpu", "The CIFAR-10 recipe on a GPU", "the paper's recipe, throughput and projected time, bf16 and torch.compile, resume, many GPUs (quick: generated shapes on a CPU)", "GPU"),
    ("09_sampling_and_gifs", "Faster sampling", "respacing, DDIM and eta, quality vs steps, denoising and predicted-x0 GIFs, interpolation, the sample command", "CPU"),
    ("10_guidance", "Classifier-free guidance", "class conditioning, the null label, the guidance formula, the guidance-scale sweep measured (FID_clf, precision/recall) and what too much does", "CPU"),
    ("11_evaluation", "Measuring sample quality", "FID and KID derived and implemented, measurement floors and FID's bias with N, precision/recall and density/coverage, bits/dim on held-out digits with its terms, memorisation, the papers' CIFAR-10 protocol", "CPU / GPU"),
    ("12_paper_weights", "The paper's own weights", "the diffusers format in and out, TensorFlow's 'SAME' padding, exact parity with UNet2DModel and the schedulers, google/ddpm-cifar10-32 samples, GIFs, Fig. 6 and 8, FID on a GPU, exporting the MNIST model", "GPU / CPU"),
    ("13_score_based_view", "The score-based view", "eps-prediction as denoising score matching, Tweedie's formula, closed-form scores against the model's, Langevin and annealed Langevin sampling, the history, guidance as a score", "CPU"),
]


def repo_url() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', text, flags=re.MULTILINE)
    if not match:
        raise SystemExit("pyproject.toml has no [project.urls] Repository = \"...\" line")
    return match.group(1).rstrip("/")


def colab_link(url: str, stem: str) -> str:
    path = re.sub(r"^https://github\.com/", "", url)
    return f"https://colab.research.google.com/github/{path}/blob/main/lessons/{stem}.ipynb"


def lesson_table(url: str) -> str:
    rows = ["| # | Lesson | What you learn | Runs on | Colab |", "|---|---|---|---|---|"]
    for stem, title, learn, where in LESSONS:
        if not (ROOT / "lessons" / f"{stem}.ipynb").exists():
            continue
        badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_link(url, stem)})"
        rows.append(f"| {stem[:2]} | [{title}](lessons/{stem}.ipynb) | {learn} | {where} | {badge} |")
    return "\n".join(rows)


def synced_readme(url: str) -> str:
    text = (ROOT / "README.md").read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{lesson_table(url)}\n{END}{tail}"


def synced_notebook(path: Path, url: str) -> str:
    return REPO_URL_LINE.sub(lambda m: f"{m.group(1)}{url}{m.group(2)}", path.read_text())


def main(check: bool) -> int:
    url = repo_url()
    targets = {ROOT / "README.md": synced_readme(url)}
    for nb in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
        targets[nb] = synced_notebook(nb, url)
    stale = [p for p, text in targets.items() if p.read_text() != text]
    if check:
        for p in stale:
            print(f"out of date with the repository URL {url}: {p.relative_to(ROOT)}")
        return 1 if stale else 0
    for p in stale:
        p.write_text(targets[p])
        print(f"updated {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if set(args) - {"--check"}:
        print(__doc__)
        sys.exit(0 if set(args) <= {"--check", "-h", "--help"} else 2)
    sys.exit(main(check="--check" in args))
