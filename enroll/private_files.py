"""Writing files only their owner may read: passphrases, generated credentials, keys.

The file appears complete and with mode 0600 or not at all: the content goes to a
temporary file in the same directory (created 0600 by `tempfile.mkstemp`), is flushed to
disk, and is renamed over the target. An existing file, whatever its mode, is replaced
rather than rewritten in place, so a file once world-readable does not stay so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path | str, data: str | bytes) -> None:
    """Write `data` (text is UTF-8 encoded) to `path` with mode 0600, atomically.

    The parent directory is created if needed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp already made it 0600; say so in case the platform's default differs.
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename still happened
    finally:
        os.close(fd)
