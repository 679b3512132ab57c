"""ddpm_core.io: atomic writes, orphaned temporary files, checksummed checkpoints, finiteness, path checks."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile

import pytest
import torch

from ddpm_core import io


def state(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    return {"model": {"w": torch.randn(n, generator=g), "b": torch.zeros(3, dtype=torch.float16),
                      "count": torch.tensor(7)},
            "step": 12, "config": {"lr": 2e-4, "betas": [0.9, 0.999], "name": "x", "flag": True, "none": None}}


# --------------------------------------------------------------------------- atomic writes
def test_atomic_write_survives_a_crash_mid_write(tmp_path):
    path = tmp_path / "c.json"
    io.atomic_write_json(path, {"a": 1})
    before = path.read_bytes()

    def crash(f):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(path, crash)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"], "no temporary file left behind"


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    io.save_checkpoint(state(0), path)
    before = path.read_bytes()

    def full(f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(io.WriteError, match=r"could not write .*ckpt.pt: No space left on device; "
                                            r"the previous file is kept") as info:
        io.atomic_write(path, full)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_json_is_written_with_nan_as_null(tmp_path):
    path = io.atomic_write_json(tmp_path / "h.json", {"loss": float("nan"), "x": [1.5, float("inf")]})
    assert json.loads(path.read_text()) == {"loss": None, "x": [1.5, None]}


def test_orphans_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f".ckpt.pt.{dead_pid}.abcd1234.tmp"
    live = tmp_path / f".ckpt.pt.{os.getpid()}.abcd1234.tmp"
    unknown_old = tmp_path / ".ckpt.pt.k3j2h1x9.tmp"  # the naming of older versions: no process id
    unknown_new = tmp_path / ".other.json.zz.tmp"
    for p in (orphan, live, unknown_old, unknown_new):
        p.write_bytes(b"partial")
    old = time.time() - 2 * io.ORPHAN_AGE_S
    os.utime(unknown_old, (old, old))
    removed = io.remove_orphans(tmp_path)
    assert sorted(p.name for p in removed) == sorted([orphan.name, unknown_old.name])
    assert live.exists() and unknown_new.exists()


def test_kill_9_during_a_save_leaves_a_loadable_file_and_the_orphan_goes_at_the_next_save(tmp_path):
    path = tmp_path / "big.pt"
    script = textwrap.dedent(f"""
        import sys, torch
        from ddpm_core import io
        io.save_checkpoint({{"model": {{"w": torch.ones(4)}}, "step": 1}}, {str(path)!r})
        print("first save done", flush=True)
        big = {{"model": {{"w": torch.randn(50_000_000)}}, "step": 2}}   # 200 MB: long enough to be caught
        while True:
            io.save_checkpoint(big, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "first save done"
        deadline = time.time() + 120
        while not list(tmp_path.glob(".big.pt.*.tmp")):
            assert time.time() < deadline and proc.poll() is None, "the second save never started"
            time.sleep(0.005)
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    orphans = list(tmp_path.glob(".big.pt.*.tmp"))
    assert len(orphans) == 1, "the killed save left its temporary file"
    ckpt = io.load_checkpoint(path)  # the first checkpoint, intact
    assert ckpt["step"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(4))
    io.save_checkpoint(state(), path)  # the next save of the same file cleans up
    assert not list(tmp_path.glob("*.tmp")) and io.load_checkpoint(path)["step"] == 12


# --------------------------------------------------------------------------- checksums
def test_checksum_is_an_independent_sha256_of_the_content():
    s = {"model": {"w": torch.arange(4, dtype=torch.float32)}, "step": 3}
    h = hashlib.sha256()
    h.update(b"D2|")
    h.update(b"K'model'|D1|K'w'|")
    h.update(b"Ttorch.float32(4,)|" + torch.arange(4, dtype=torch.float32).numpy().tobytes())
    h.update(b"K'step'|Vint:3|")
    assert io.checksum(s) == "sha256:" + h.hexdigest()
    assert io.checksum({**s, "checksum": "anything"}) == io.checksum(s)


def test_checksum_changes_with_any_value_and_not_with_key_order():
    base = state()
    assert io.checksum(base) == io.checksum(dict(reversed(list(base.items()))))
    for change in (lambda s: s["model"]["w"].__setitem__(5, s["model"]["w"][5] + 1e-7),
                   lambda s: s.__setitem__("step", 13),
                   lambda s: s["config"].__setitem__("lr", 2.0000001e-4),
                   lambda s: s["model"].__setitem__("b", s["model"]["b"].float()),  # same values, other dtype
                   lambda s: s["config"].__setitem__("betas", (0.9, 0.999))):  # a tuple is not a list
        other = state()
        change(other)
        assert io.checksum(other) != io.checksum(base)


def test_roundtrip_with_checksum_and_weights_only(tmp_path):
    path = io.save_checkpoint(state(), tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["checksum"].startswith("sha256:") and raw["checksum"] == io.checksum(raw)
    assert raw["format"] == io.FORMAT
    loaded = io.load_checkpoint(path)
    assert set(loaded) == set(state()) and loaded["config"] == state()["config"]
    assert torch.equal(loaded["model"]["w"], state()["model"]["w"])


def _data_offsets(path):
    """Byte ranges of each tensor's storage inside torch's (uncompressed) zip file."""
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            if "/data/" in info.filename:
                f.seek(info.header_offset + 26)
                n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
                start = info.header_offset + 30 + n + m
                yield start, start + info.file_size


def test_a_byte_flipped_in_the_weights_is_reported_as_damage(tmp_path):
    path = io.save_checkpoint(state(n=1000), tmp_path / "c.pt")
    start, end = max(_data_offsets(path), key=lambda r: r[1] - r[0])  # the 1000-float tensor
    data = bytearray(path.read_bytes())
    data[start + 1234] ^= 0x10  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(io.CheckpointError, match="checksum mismatch: the file is damaged"):
        io.load_checkpoint(path)


def test_no_byte_flip_anywhere_loads_silently_changed_content(tmp_path):
    path = io.save_checkpoint(state(n=200), tmp_path / "c.pt")
    good = path.read_bytes()
    reference = io.load_checkpoint(path)
    outcomes = {"damaged": 0, "unchanged": 0}
    for pos in range(0, len(good), max(1, len(good) // 300)):
        flipped = bytearray(good)
        flipped[pos] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            loaded = io.load_checkpoint(path)
        except io.CheckpointError as err:
            assert "damaged" in str(err) or "Python object" in str(err), str(err)
            outcomes["damaged"] += 1
            continue
        # a flip in bytes the loader never reads (zip padding, CRCs) may load: then nothing may have changed
        assert io.checksum(loaded) == io.checksum(reference), f"flip at byte {pos} changed the content silently"
        outcomes["unchanged"] += 1
    assert outcomes["damaged"] > 100


def test_an_old_checkpoint_without_checksum_loads_with_a_notice(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(state(), path)
    with pytest.warns(io.ChecksumMissingWarning, match="old.pt has no checksum"):
        ckpt = io.load_checkpoint(path)
    assert ckpt["step"] == 12
    # a new file whose checksum entry was lost is damaged, not old
    raw = torch.load(io.save_checkpoint(state(), path), weights_only=True)
    del raw["checksum"]
    torch.save(raw, path)
    with pytest.raises(io.CheckpointError, match="checksum mismatch: the file is damaged"):
        io.load_checkpoint(path)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        io.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(io.CheckpointError, match="is a folder, not a checkpoint file"):
        io.load_checkpoint(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(io.CheckpointError, match="cannot be read: the file is damaged or not a checkpoint"):
        io.load_checkpoint(corrupt)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "payload": io.WriteError(1, "x")}, unsafe)  # an arbitrary pickled object
    with pytest.raises(io.CheckpointError, match="cannot be read"):
        io.load_checkpoint(unsafe)
    other = tmp_path / "other.pt"
    io.save_checkpoint({"weights": torch.ones(1)}, other)
    with pytest.raises(io.CheckpointError, match="is not a ddpm_core checkpoint: it has no 'model' entry"):
        io.load_checkpoint(other)
    with pytest.raises(io.CheckpointError, match="not a training checkpoint: it has no 'ema', 'optimizer' entries"):
        io.load_checkpoint(other, required=("weights", "ema", "optimizer"), what="training checkpoint")


# --------------------------------------------------------------------------- finiteness
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensors_are_never_written(tmp_path, bad):
    path = tmp_path / "c.pt"
    io.save_checkpoint(state(), path)
    before = path.read_bytes()
    broken = state()
    broken["model"]["b"][1] = bad
    with pytest.raises(io.NonFiniteError, match=r"holds NaN or infinite values \(in model.b\)"):
        io.save_checkpoint(broken, path)
    assert path.read_bytes() == before
    assert io.non_finite_entries(state()) == []


# --------------------------------------------------------------------------- checks before work
def test_output_folder_checks(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="--out-dir .*file is a file, not a folder"):
        io.check_output_dir(a_file, "--out-dir")
    with pytest.raises(ValueError, match="--out-dir .*cannot create the folder"):
        io.check_output_dir(a_file / "sub", "--out-dir")
    assert io.check_output_dir(tmp_path / "new" / "run", "--out-dir").is_dir()

    class Usage:
        free = 5 * 2**20

    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: Usage)
    with pytest.raises(ValueError, match="only 5 MiB free on its disk; a checkpoint needs about 100 MiB"):
        io.check_output_dir(tmp_path, "--out-dir", need_bytes=100 * 2**20)
    io.check_output_dir(tmp_path, "--out-dir", need_bytes=2**20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "new"], "the write probe leaves nothing behind"


def test_unwritable_folder_is_reported(tmp_path, monkeypatch):
    real_open = open

    def refuse(path, *a, **k):
        if "write-test" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(ValueError, match="the folder is not writable \\(Permission denied\\)"):
        io.check_output_dir(tmp_path, "--out-dir")


def test_output_file_checks(tmp_path):
    with pytest.raises(ValueError, match="--out .* is a folder; give a file path"):
        io.check_output_file(tmp_path, "--out")
    with pytest.raises(ValueError, match=r"unsupported file type '.txt'; accepted: .gif, .webp"):
        io.check_output_file(tmp_path / "a.txt", "--animation", suffixes=(".gif", ".webp"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="--out .*a.npz: its folder .*f is a file, not a folder"):
        io.check_output_file(tmp_path / "f" / "a.npz", "--out")


def test_state_dict_mismatch_summary():
    expected = {"a.w": torch.zeros(2, 3), "b.w": torch.zeros(4)}
    assert io.state_dict_mismatch(expected, {"a.w": torch.ones(2, 3), "b.w": torch.ones(4)}) == ""
    msg = io.state_dict_mismatch(expected, {"a.w": torch.ones(3, 3), "c.w": torch.ones(1)})
    assert msg == "1 missing, e.g. b.w; 1 unexpected, e.g. c.w; 1 of another shape, e.g. a.w is (3, 3), expected (2, 3)"


def test_io_imports_nothing_else_from_the_package():
    source = (io.__file__ and open(io.__file__).read())
    assert "from ." not in source and "import ddpm_core" not in source
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        subprocess.run([sys.executable, "-c", "import ddpm_core.data, ddpm_core.training, ddpm_core.images"], check=True)
