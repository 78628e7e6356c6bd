"""`check_output`, the one check of every output path, and the atomic writes' temporary names."""
import os

import pytest

from hypertiny_keras.utils.fileio import atomic_write, check_output


def test_check_output_refuses_what_a_rename_would_lose(tmp_path):
    (tmp_path / "in.bin").write_bytes(b"input")
    os.link(tmp_path / "in.bin", tmp_path / "hard.bin")
    (tmp_path / "link.bin").symlink_to("in.bin")
    os.mkfifo(tmp_path / "fifo.bin")
    (tmp_path / "dir.bin").mkdir()
    (tmp_path / "mine.json").write_text('{"mine": 1}')
    cases = {
        "in.bin": "is the input", "hard.bin": "is the input", "link.bin": "symbolic link",
        "fifo.bin": "not a regular file", "dir.bin": "is a directory", "missing/x.bin": "does not exist",
        "n" * 300: "the name has 300 bytes",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            check_output(tmp_path / name, [tmp_path / "in.bin"])
    with pytest.raises(ValueError, match="not written by hypertiny"):
        check_output(tmp_path / "mine.json", replaceable=lambda path: b"report" in path.read_bytes())
    assert check_output(tmp_path / "new.bin", [tmp_path / "in.bin"]) == tmp_path / "new.bin"
    assert check_output(tmp_path / "mine.json", replaceable=lambda path: True) == tmp_path / "mine.json"
    assert os.stat(tmp_path / "link.bin").st_size == 5 and (tmp_path / "in.bin").read_bytes() == b"input"


def test_atomic_write_of_a_long_name_keeps_its_temporary_name_short(tmp_path):
    """A name near the file system's limit: the temporary file's name is cut, not the write refused."""
    name = "n" * 250
    atomic_write(tmp_path / name, b"data")
    assert (tmp_path / name).read_bytes() == b"data" and os.listdir(tmp_path) == [name]
