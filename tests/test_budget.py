import pytest
import torch

from ddpm_core import budget


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), ("YES", True), ("0", False), ("off", False)])
def test_env_var_decides(monkeypatch, value, quick):
    monkeypatch.setenv(budget.QUICK_ENV, value)
    assert budget.is_quick() is quick


def test_unset_follows_the_device(monkeypatch):
    monkeypatch.delenv(budget.QUICK_ENV, raising=False)
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
