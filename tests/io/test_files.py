"""Atomic writes: temporary files of killed writers are cleared, live writers' are not."""

import os
import subprocess
import sys

from aerialseg.io.files import atomic_path, remove_stale_temps, write_text


def test_a_killed_writers_temporary_files_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".a.json.{dead}-0123abcd.json"
    nested = tmp_path / f"..a.json.{dead}-0123abcd.json.{dead}-0123abce.json"  # a temp's temp
    mine = tmp_path / f".a.json.{os.getpid()}-4567cdef.json"  # a live writer's
    other = tmp_path / f".b.json.{dead}-89abcdef.json"  # another file's
    for p in (stale, nested, mine, other):
        p.write_text("partial")
    write_text(tmp_path / "a.json", "{}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([mine.name, other.name, "a.json"])
    assert remove_stale_temps(tmp_path) == [other]
    (tmp_path / "user.json.123-0123abcd.json").write_text("a user's file, not hidden")
    assert remove_stale_temps(tmp_path) == []


def test_temporary_names_carry_the_writer(tmp_path):
    with atomic_path(tmp_path / "x.png") as tmp:
        assert tmp.name.startswith(f".x.png.{os.getpid()}-") and tmp.suffix == ".png"
        tmp.write_bytes(b"done")
    assert (tmp_path / "x.png").read_bytes() == b"done"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
