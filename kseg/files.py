"""Crash-safe file handling shared by runs, exports and caches (standard library only).

Everything kseg writes appears under its name complete or not at all: it is written under a
temporary name, flushed to disk (``fsync_file``), renamed into place and the rename made durable
(``fsync_dir``). Temporary names carry the writer's process id, so a leftover of a killed process
(``process_alive`` false) can be told apart from another live process's work in progress.
"""

import os


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path):
    """Make the entries of folder ``path`` (a rename, a new link) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid):
    """Whether process ``pid`` (an int, or a string from a file name) is another process still
    running on this machine: its temporary files are then its own business, not leftovers."""
    try:
        pid = int(pid)
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
