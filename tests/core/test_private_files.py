"""Secret files appear complete, 0600, and never with another mode along the way."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from enroll.private_files import write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_and_bytes_are_written_0600_in_a_new_directory(tmp_path: Path) -> None:
    target = tmp_path / "new" / "secret"
    write_private(target, "päss\n")
    assert target.read_bytes() == "päss\n".encode() and _mode(target) == 0o600
    write_private(str(target), b"\x00raw")
    assert target.read_bytes() == b"\x00raw" and _mode(target) == 0o600


def test_a_world_readable_file_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    target.chmod(0o644)
    before = target.stat().st_ino
    write_private(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o600
    assert target.stat().st_ino != before


def test_the_content_is_never_visible_under_another_mode(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    target = tmp_path / "secret"
    seen: list[tuple[str, int]] = []
    real_replace = os.replace

    def spy(src: str, dst: Path) -> None:
        # At the moment of the rename the temporary file is complete and already 0600.
        seen.append((Path(src).read_text(), _mode(Path(src))))
        assert Path(src).parent == tmp_path
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_private(target, "s3cret")
    assert seen == [("s3cret", 0o600)]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path,
                                                             monkeypatch: Any) -> None:
    target = tmp_path / "secret"
    write_private(target, "old")

    def broken(src: str, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_private(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]
