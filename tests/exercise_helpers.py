"""Shared by the exercise tests: load a lesson's hidden solution, and read a check's verdicts with its printed line."""

import importlib.util
from pathlib import Path

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def solution(lesson):
    spec = importlib.util.spec_from_file_location(f"solution_{lesson}", LESSONS / "solutions" / f"{lesson}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def verdicts(capsys, check, answers, *args):
    """The check's verdict on each answer, and that its printed line agrees with it."""
    out = []
    for answer in answers:
        verdict = check(answer, *args)
        line = capsys.readouterr().out
        assert line.count("\n") == 1, line
        assert ("Correct!" in line) == (verdict is True) and ("Not yet:" in line) == (verdict is False), line
        out.append(verdict)
    return out
