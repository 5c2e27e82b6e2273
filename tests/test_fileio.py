import os
import stat

import pytest

from hailo_ort.fileio import write_bytes_atomic, write_text_atomic


def test_atomic_write_creates_file_with_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "sub" / "out.txt", "hello")
    finally:
        os.umask(old)
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_atomic_write_failure_leaves_old_content_and_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_bytes_atomic(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_unwritable_target_raises_output_error_naming_the_path(tmp_path):
    from hailo_ort.errors import HailoOrtError, OutputError

    folder = tmp_path / "adir"
    folder.mkdir()
    with pytest.raises(OutputError, match=r"adir: it is a folder") as info:
        write_text_atomic(folder, "x")
    assert isinstance(info.value, HailoOrtError) and isinstance(info.value, OSError)

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"cannot write .*file/out\.txt: "):
        write_text_atomic(blocker / "out.txt", "x")  # a file where the folder should be
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "file"]


def test_check_writable_fails_early_on_clear_problems(tmp_path):
    from hailo_ort.errors import OutputError
    from hailo_ort.fileio import check_writable

    assert check_writable(tmp_path / "new" / "deeper" / "out.onnx").name == "out.onnx"
    with pytest.raises(OutputError, match="it is a folder"):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"file is a file, not a folder"):
        check_writable(tmp_path / "file" / "sub" / "out.onnx")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="no permission"):
            check_writable(locked / "out.onnx")
