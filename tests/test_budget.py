import os

import pytest
import torch

from ddpm_core import budget


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), ("YES", True), ("0", False), ("off", False)])
def test_env_var_decides(monkeypatch, value, quick):
    monkeypatch.setenv(budget.QUICK_ENV, value)
    assert budget.is_quick() is quick


def test_unset_follows_the_device(monkeypatch):
    monkeypatch.delenv(budget.QUICK_ENV, raising=False)
    monkeypatch.delenv(budget.DEVICE_ENV, raising=False)
    assert budget.is_quick() is (not torch.cuda.is_available())


def test_bad_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(budget.QUICK_ENV, "maybe")
    with pytest.raises(ValueError, match="DDPM_QUICK='maybe' is not understood"):
        budget.is_quick()


def test_select_prints_which_budget(monkeypatch, capsys):
    monkeypatch.setenv(budget.QUICK_ENV, "1")
    assert budget.select(quick=10, full=1000) == 10
    assert "QUICK" in capsys.readouterr().out
    monkeypatch.setenv(budget.QUICK_ENV, "0")
    assert budget.select(quick=10, full=1000, verbose=False) == 1000


def test_the_test_run_is_quick():
    assert budget.is_quick()


# --------------------------------------------------------------------------- the device switch
def test_the_test_run_pins_the_cpu():
    assert os.environ[budget.DEVICE_ENV] == "cpu" and budget.device() == torch.device("cpu")
    assert budget.is_quick()


@pytest.mark.parametrize("value", ["", "auto", "AUTO"])
def test_auto_device_is_cuda_if_present_else_cpu(monkeypatch, value):
    monkeypatch.setenv(budget.DEVICE_ENV, value)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert budget.device().type == expected and budget.resolve_device("auto").type == expected


def test_unset_budget_follows_the_device_switch(monkeypatch):
    monkeypatch.delenv(budget.QUICK_ENV, raising=False)
    monkeypatch.setenv(budget.DEVICE_ENV, "cpu")
    assert budget.is_quick() and "the device is cpu (DDPM_DEVICE=cpu)" in budget.reason()


def test_select_device_prints_which_and_why(monkeypatch, capsys):
    monkeypatch.setenv(budget.DEVICE_ENV, "cpu")
    assert budget.select_device() == torch.device("cpu")
    assert capsys.readouterr().out == "Device: cpu because DDPM_DEVICE=cpu\n"


@pytest.mark.parametrize("value, message", [
    ("tpu", "DDPM_DEVICE 'tpu' is not understood; accepted: auto, cpu, cuda, cuda:N, mps"),
    ("cuda:99", "DDPM_DEVICE 'cuda:99'"),
    ("meta", "DDPM_DEVICE 'meta' is not supported"),
])
def test_bad_device_values_are_clear(monkeypatch, value, message):
    monkeypatch.setenv(budget.DEVICE_ENV, value)
    with pytest.raises(ValueError, match=message):
        budget.device()


def test_the_command_line_follows_the_switch(monkeypatch):
    from ddpm_core.cli import pick_device

    monkeypatch.setenv(budget.DEVICE_ENV, "cpu")
    assert pick_device("auto") == torch.device("cpu") and pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda': no CUDA GPU is available here"):
            pick_device("cuda")


def test_lessons_read_the_device_from_the_switch():
    """No lesson picks its own device: the ones that can use a GPU (00 reports it, 06-12 compute on it) call
    budget.select_device(); 01-05 compute on the CPU everywhere and mention no GPU at all."""
    import json
    import re
    from pathlib import Path

    for nb in sorted(Path(__file__).resolve().parent.parent.glob("lessons/*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert not re.search(r"=\s*(torch\.device\()?[\"']cuda[\"'] if torch\.cuda\.is_available\(\)", code), \
            f"{nb.name} picks its own device"
        if int(nb.name[:2]) in (0, 6, 7, 8, 9, 10, 11, 12):
            assert "DEVICE = budget.select_device()" in code, f"{nb.name} does not use the device switch"
        else:
            assert "cuda" not in code, f"{nb.name} computes on the CPU everywhere, yet mentions CUDA"
