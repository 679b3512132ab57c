"""Repository checks: the README's commands, requirements, the synced repository URL, notebook hygiene."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = ".venv/bin/python -m pytest -n auto --dist loadfile --nbval lessons tests"
NOTEBOOKS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_LESSONS = ["00_setup", "01_forward_process", "02_noise_schedules", "03_posterior_and_elbo",
                    "04_toy_2d_diffusion", "05_objectives_and_variances", "06_unet", "07_mnist", "08_cifar10_gpu",
                    "09_sampling_and_gifs", "10_guidance", "11_evaluation", "12_paper_weights",
                    "13_score_based_view"]


def readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_quickstart_is_two_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2, commands
    install = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
    assert commands[0] == f"{install} && .venv/bin/jupyter lab lessons/"
    assert commands[1] == f"{install} && {TEST_COMMAND}"
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_requirements_have_lower_bounds_only():
    lines = [l.split("#")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [l for l in lines if l]
    names = {re.split(r"[<>=!~ \[]", l)[0].lower() for l in lines if not l.startswith("-")}
    for needed in ("torch", "torchvision", "jupyterlab", "matplotlib", "ipywidgets", "nbval", "einops", "tqdm", "mlxtend"):
        assert needed in names, needed
    assert "-e ." in lines
    for line in lines:
        assert "==" not in line and "<" not in line and "+cpu" not in line, f"no pins or caps: {line}"


def test_repository_url_is_synced():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_repo_url.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_lessons_exist():
    stems = {nb.stem for nb in NOTEBOOKS}
    assert set(REQUIRED_LESSONS) <= stems


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(nb_path):
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert "REPO_URL = " in "".join(code[0]["source"]), "the first code cell is the Colab setup cell"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(counts) + 1)), "executed top to bottom in one fresh kernel"
    abs_path = re.compile(r"(/work/|/tmp/|/root/|/home/\w+/|[A-Z]:\\\\Users)")
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} has an error output"
            text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            assert not abs_path.search(text), f"cell {i} prints an absolute path"
            assert not re.search(r"at 0x[0-9a-f]{6,}", text), f"cell {i} prints a memory address"
    markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "summary" in markdown.lower(), "every lesson ends with a summary"
    assert nb_path.stat().st_size < 5 * 2**20


@pytest.mark.parametrize("nb_path", [p for p in NOTEBOOKS if not p.stem.startswith("00")], ids=lambda p: p.stem)
def test_lessons_check_against_ddpm_core_and_have_exercises(nb_path):
    nb = json.loads(nb_path.read_text())
    source = "".join("".join(c["source"]) for c in nb["cells"])
    assert "assert_close" in source and "ddpm_core" in source
    assert "exercise" in source.lower()


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbval_markers_are_exact_and_give_a_reason(nb_path):
    # nbval recognises a marker only when the comment line is exactly "# NBVAL_..."; anything appended is ignored.
    markers = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP"}
    for cell in json.loads(nb_path.read_text())["cells"]:
        lines = "".join(cell["source"]).splitlines()
        for i, line in enumerate(lines):
            if "NBVAL_" in line:
                assert line.strip().lstrip("#").strip() in markers, f"not a marker nbval recognises: {line!r}"
                reason = lines[i + 1] if i + 1 < len(lines) else ""
                assert reason.strip().startswith("#") and "reason" in reason.lower(), f"no reason after {line!r}"


def test_every_file_the_package_writes_goes_through_io():
    """Atomic writes live in ddpm_core/io.py; no other module writes a file directly (or imports upwards into it)."""
    direct = re.compile(r"\.write_text\(|\.write_bytes\(|torch\.save\(|np\.savez\(\s*(?!f\b)|savefig\(\s*(?!f\b)|"
                        r"open\([^)]*[\"'][wa]b?[\"']")
    for path in sorted((ROOT / "ddpm_core").rglob("*.py")):
        if path.name == "io.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not direct.search(line), f"{path.relative_to(ROOT)}:{number} writes a file directly: {line.strip()}"


def test_imports_run_downhill():
    """io and config import nothing from the package; data does not import training (no import circle)."""
    for low in ("io.py", "config.py"):
        assert "from ." not in (ROOT / "ddpm_core" / low).read_text()
    assert not re.search(r"from \.training|import training", (ROOT / "ddpm_core" / "data.py").read_text())
