"""The lowest floor: atomic file writes, checksummed checkpoints, safe loading, and path checks before work.

Every file ``ddpm_core`` writes (checkpoints, exported weights, JSON, PNG grids, GIFs, ``.npz`` samples) goes
through :func:`atomic_write`: the bytes go to a temporary file in the same folder, are flushed to disk, and the
temporary file is renamed over the target (``os.replace`` is atomic on POSIX and Windows).  A crash or a kill
mid-write leaves the previous file intact.  Temporary files are named ``.<name>.<pid>.<random>.tmp``; one left
behind by a killed process is removed by :func:`remove_orphans`, which every checkpoint save and every training
run's start calls for its folder.

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) are dicts of tensors and plain values, loaded with
``torch.load(weights_only=True)``.  They carry a SHA-256 checksum of their whole content (every tensor's bytes,
dtype and shape, and every plain value), verified on load, so a damaged file is reported as damaged instead of
loading changed weights.  They are never written holding non-finite (NaN/inf) floating-point tensors.

Nothing here imports the rest of the package: every other module may use it.
"""

from __future__ import annotations

import errno
import hashlib
import io as _io
import json
import math
import os
import re
import secrets
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import torch

CHECKSUM_KEY = "checksum"
FORMAT_KEY, FORMAT = "format", "ddpm_core.checkpoint.v1"  # marks files that must carry a checksum
CHECKSUM_ALGORITHM = "sha256"
TMP_SUFFIX = ".tmp"
ORPHAN_AGE_S = 600.0  # temporary files without a readable process id count as orphans after this long


class NonFiniteError(RuntimeError):
    """Training produced NaN or infinite values (a loss, weights, or optimizer state)."""


class CheckpointError(ValueError):
    """A file is damaged, or is not the checkpoint it was expected to be."""


class WriteError(OSError):
    """A file could not be written (full disk, no permission, ...); the previous file, if any, is unchanged."""


class ChecksumMissingWarning(UserWarning):
    """A checkpoint written before checksums existed was loaded without an integrity check."""


# --------------------------------------------------------------------------- atomic writes
def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    Raises :class:`WriteError` (an ``OSError``) naming the file and the reason (for example a full disk); the
    temporary file is removed and a previous ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(err.errno, f"cannot create the folder {path.parent} for {path.name}: "
                                    f"{err.strerror or err}") from err
    if path.is_dir():
        raise WriteError(errno.EISDIR, f"cannot write {path}: it is a folder")
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        kept = "the previous file is kept" if path.exists() else "nothing was written"
        raise WriteError(err.errno, f"could not write {path}: {err.strerror or err}; {kept}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically; NaN and inf are written as null."""
    return atomic_write_text(path, json.dumps(_json_safe(obj), indent=indent, allow_nan=False) + "\n")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (no checksum; see :func:`save_checkpoint` for checkpoints)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no safe liveness probe (os.kill would terminate the process on Windows): age decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_orphans(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove temporary files left in ``folder`` by interrupted writes (of ``name`` only, if given).

    A temporary file is an orphan when the process that wrote it has ended, or, when that cannot be told
    (older files, another operating system), when it is older than :data:`ORPHAN_AGE_S`.  Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    pattern = f".{name}.*{TMP_SUFFIX}" if name else f".*{TMP_SUFFIX}"
    for tmp in folder.glob(pattern):
        parts = tmp.name[: -len(TMP_SUFFIX)].rsplit(".", 2)  # ['.name', pid, token]
        orphan = None
        if len(parts) == 3 and parts[1].isdigit():
            orphan = not _pid_alive(int(parts[1]))
        if not orphan:
            try:
                orphan = time.time() - tmp.stat().st_mtime > ORPHAN_AGE_S
            except FileNotFoundError:
                continue
        if orphan:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


# --------------------------------------------------------------------------- checksums and finiteness
def _walk_tensors(obj: Any, where: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk_tensors(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk_tensors(value, f"{where}[{i}]")


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}|".encode())
        for key in sorted(obj, key=repr):
            h.update(f"K{key!r}|".encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}|".encode())
        for value in obj:
            _feed(h, value)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}|".encode())


def checksum(obj: dict[str, Any]) -> str:
    """``"sha256:<hex>"`` of everything in ``obj`` except its ``checksum`` entry: each tensor's dtype, shape and
    bytes, and each plain value (with its type), in a fixed order (dict keys sorted)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != CHECKSUM_KEY})
    return f"{CHECKSUM_ALGORITHM}:{h.hexdigest()}"


def non_finite_entries(obj: Any, limit: int = 5) -> list[str]:
    """Names of (up to ``limit``) floating-point tensors in ``obj`` holding NaN or inf; one device sync per call."""
    tensors = [(name, t) for name, t in _walk_tensors(obj) if t.is_floating_point() and t.numel()]
    if not tensors:
        return []
    flags = [torch.isfinite(t).all() for _, t in tensors]  # queued first, then read: the reads wait once
    finite = [bool(f) for f in flags]
    return [name for (name, _), ok in zip(tensors, finite) if not ok][:limit]


def check_finite(obj: Any, what: str) -> None:
    """Raise :class:`NonFiniteError` naming the entries of ``obj`` that hold NaN or inf."""
    bad = non_finite_entries(obj)
    if bad:
        raise NonFiniteError(f"{what} holds NaN or infinite values (in {', '.join(bad)})")


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint dict atomically, with its checksum, after checking it holds only finite floats.

    Raises :class:`NonFiniteError` (nothing is written) if a floating-point tensor holds NaN/inf, and
    :class:`WriteError` if the file cannot be written (the previous one is kept).  Orphaned temporary files of
    earlier, interrupted saves of the same file are removed first.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"a checkpoint must be a dict, got {type(obj).__name__}")
    path = Path(path)
    check_finite(obj, f"the checkpoint for {path.name}")
    remove_orphans(path.parent, path.name)
    content = {k: v for k, v in obj.items() if k not in (CHECKSUM_KEY, FORMAT_KEY)}
    content[FORMAT_KEY] = FORMAT
    content[CHECKSUM_KEY] = checksum(content)
    return atomic_torch_save(content, path)


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, _to_device(v, device)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, device) for v in obj)
    return obj


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    *,
    required: tuple[str, ...] = ("model",),
    what: str = "ddpm_core checkpoint",
    quiet: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and verify its checksum.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (a ``ValueError``) for a file
    that does not load, whose checksum does not match ("the file is damaged"), or that lacks a ``required``
    entry (``what`` names the kind of file expected).  A file without a checksum (written by an older version) loads with a one-line
    :class:`ChecksumMissingWarning` (``quiet``: none, for files of other projects, which never carry one).  Tensors are verified on the CPU, then moved to ``map_location``.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the file is not usable
        raise CheckpointError(f"{path} cannot be read: {_load_failure(err)}") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a ddpm_core checkpoint (it holds a {type(ckpt).__name__}, not a dict): "
                              "the file is damaged or of another kind")
    stored = ckpt.pop(CHECKSUM_KEY, None)
    if stored is None and FORMAT_KEY not in ckpt:
        if not quiet:
            warnings.warn(f"{path.name} has no checksum (written by an older version of ddpm_core); loaded "
                          "without an integrity check", ChecksumMissingWarning, stacklevel=2)
    elif stored != checksum(ckpt):
        raise CheckpointError(f"{path}: checksum mismatch: the file is damaged (its content changed after it was "
                              "written); use another copy or an earlier checkpoint")
    ckpt.pop(FORMAT_KEY, None)
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a {what}: it has no {', '.join(map(repr, missing))} "
                              f"entr{'y' if len(missing) == 1 else 'ies'} (it has {', '.join(map(repr, sorted(ckpt)))})")
    device = torch.device(map_location)
    return ckpt if device.type == "cpu" else _to_device(ckpt, device)


def state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, Any]) -> str:
    """'' if ``given`` has exactly ``expected``'s parameter names and shapes, else a one-line summary of the
    differences (counts and one example each), for errors that would otherwise list every key."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [f"{k} is {tuple(given[k].shape)}, expected {tuple(v.shape)}" for k, v in expected.items()
             if k in given and isinstance(given[k], torch.Tensor) and given[k].shape != v.shape]
    parts = [f"{len(missing)} missing, e.g. {missing[0]}" if missing else "",
             f"{len(unexpected)} unexpected, e.g. {unexpected[0]}" if unexpected else "",
             f"{len(wrong)} of another shape, e.g. {wrong[0]}" if wrong else ""]
    return "; ".join(p for p in parts if p)


def _load_failure(err: Exception) -> str:
    """torch.load's failure in one clause (its weights-only message is long and about something else)."""
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return (f"it holds a Python object ({unsafe.group(1)}) that a safe, weights-only load refuses; ddpm_core "
                "checkpoints hold only tensors and plain values")
    if isinstance(err, EOFError) or "EOF" in text or "failed finding central directory" in text:
        return "the file is damaged (empty or cut short) or not a checkpoint"
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, re.S)
    reason = (detail.group(1) if detail else (text.splitlines() or [type(err).__name__])[0]).strip()
    return f"the file is damaged or not a checkpoint ({type(err).__name__}: {reason[:160]})"


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes the tensors of ``state`` take (an estimate of a file's size)."""
    return sum(t.numel() * t.element_size() for _, t in _walk_tensors(state))


# --------------------------------------------------------------------------- checks before work
def check_output_dir(path: str | os.PathLike, what: str, *, need_bytes: int | None = None) -> Path:
    """Make sure ``path`` is (or can be created as) a writable folder with room for ``need_bytes``; return it.

    Raises ``ValueError`` naming ``what`` (e.g. ``"--out-dir"``) and the problem: the path is a file, the folder
    cannot be created or written, or it has less free space than ``need_bytes`` (with a 10% margin).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {path}: cannot create the folder ({err.strerror or err})") from None
    probe = _tmp_path(path / "write-test")
    try:
        with open(probe, "wb") as f:
            f.write(b"0")
    except OSError as err:
        raise ValueError(f"{what} {path}: the folder is not writable ({err.strerror or err})") from None
    finally:
        probe.unlink(missing_ok=True)
    if need_bytes:
        free = shutil.disk_usage(path).free
        if free < 1.1 * need_bytes:
            raise ValueError(f"{what} {path}: only {free / 2**20:,.0f} MiB free on its disk; a checkpoint needs "
                             f"about {need_bytes / 2**20:,.0f} MiB (free some space or choose another folder)")
    return path


def check_output_file(path: str | os.PathLike, what: str, *, need_bytes: int | None = None,
                      suffixes: tuple[str, ...] | None = None) -> Path:
    """Make sure a file can be written at ``path`` (not a folder; its folder writable, with room); return it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file path")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {path}: unsupported file type {path.suffix or '(none)'!r}; "
                         f"accepted: {', '.join(suffixes)}")
    check_output_dir(path.parent if str(path.parent) else Path("."), f"{what} {path}: its folder",
                     need_bytes=need_bytes)
    return path


def save_to_buffer(save: Callable[[BinaryIO], None]) -> bytes:
    """Bytes of a writer that needs a seekable file (PIL, numpy), for :func:`atomic_write_bytes`."""
    buf = _io.BytesIO()
    save(buf)
    return buf.getvalue()
