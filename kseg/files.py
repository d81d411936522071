"""Crash-safe file handling shared by runs, exports, caches, reports and demos (standard library
only).

Three rules, stated here once:

- **Complete or absent.** Everything kseg writes appears under its name complete or not at all:
  ``atomic_file`` (one file) and ``atomic_folder`` (a folder) hand out a temporary name beside the
  target, flush it to disk (``fsync_file``), rename it into place and make the rename durable
  (``fsync_dir``). Any failure, ``KeyboardInterrupt`` included, removes the temporary. A folder
  that replaces an older one is swapped in one atomic exchange where Linux offers it, else by
  renaming the old one aside first; an aside left by a kill between the two renames is put back
  (or removed, once the new folder is in place) by the next call: the target never goes missing
  for good.
- **Temporary names carry the writer's process id**: ``.NAME.<pid>-<n>.partial`` (with NAME's
  suffix repeated: Keras insists on ``.keras``) and ``.NAME.<pid>-<n>.old``. A leftover of a
  process that is gone (``process_alive`` false) is cleaned by the next writer of the same target;
  another live process's work in progress is left alone.
- **One writer per target.** ``Lock(target)`` holds ``.NAME.lock`` beside the target (an advisory
  ``flock``, which the kernel drops when its process dies, however it dies: a lock of a dead
  process is taken over, never obeyed forever). A second writer is refused at once with
  ``InUseError`` naming the target and the process that holds it, or waits (``wait=True``).

Writes that fail for a reason of the machine (no space left, quota, permission, read-only disk)
become ``StorageError`` naming the path (``storage_error``); ``ensure_space`` refuses a large
write of known size before it starts.
"""

import contextlib
import ctypes
import ctypes.util
import datetime
import errno
import glob
import itertools
import json
import os
import shutil
import socket
import sys
import zipfile
from pathlib import Path

from kseg.errors import KsegError, StorageError

_COUNTER = itertools.count()
_HELD_LOCK_FDS = set()  # closed in forked children: a lock belongs to the process that took it

# errno -> what the user reads; any of these while writing is a StorageError
STORAGE_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class InUseError(KsegError, RuntimeError):
    """Another live process is writing the same run folder, export folder or cache file."""


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


# -- storage errors --------------------------------------------------------------------------

def _free_bytes(path):
    path = Path(path)
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _mb(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _problem_code(exc):
    """The errno of ``exc`` when it is a storage problem: an ``OSError`` with one of
    ``STORAGE_PROBLEMS``, or a library's own error saying so (TensorFlow's file writer raises
    ``ResourceExhaustedError: ...; No space left on device``)."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and code in STORAGE_PROBLEMS:
        return code
    text = str(exc)
    return next((c for c in _SPACE + (errno.EROFS,) if os.strerror(c) in text), None)


def storage_error(exc, path):
    """A ``StorageError`` naming ``path`` for ``exc``, a failed write for a reason of the machine
    (no space, quota, permission, read-only); None for any other exception."""
    if isinstance(exc, StorageError):
        return exc
    code = _problem_code(exc)
    if code is None:
        return None
    name = Path(str(getattr(exc, "filename", None) or path)).name  # a file inside a folder
    where = "" if name == Path(path).name or name.startswith(f".{Path(path).name}.") \
        else f" (writing {name})"
    if code in _SPACE:
        free = _free_bytes(Path(path).parent)
        left = f" ({_mb(free)} free there now)" if free is not None else ""
        todo = f"free some space{left} and run the same command again"
    else:
        todo = "make it writable, or write somewhere else"
    err = StorageError(f"cannot write {path}: {STORAGE_PROBLEMS[code]}{where}; nothing under that "
                       f"name was changed. {todo[0].upper()}{todo[1:]}.")
    err.errno = code
    return err


def ensure_space(path, nbytes, margin=1 << 20):
    """Refuse (``StorageError``) to write about ``nbytes`` at ``path`` when its file system has
    less than that plus ``margin`` free: fail before a long write, not at its end."""
    free = _free_bytes(Path(path).parent)
    if free is not None and free < int(nbytes) + int(margin):
        err = StorageError(f"cannot write {path}: it needs about {_mb(nbytes)} and only "
                           f"{_mb(free)} is free on that disk; free some space and run the same "
                           f"command again.")
        err.errno = errno.ENOSPC
        raise err


# -- temporary names and their leftovers ------------------------------------------------------

def temporary_name(path, kind="partial"):
    """``.NAME.<pid>-<n>.<kind>`` beside ``path`` (plus NAME's suffix for files: ``.keras``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{next(_COUNTER)}.{kind}{path.suffix}")


def _owner(path, leftover):
    """The pid in the temporary name ``leftover`` of ``path``."""
    return leftover.name[len(path.name) + 2:].split("-", 1)[0]


def leftovers(path, kind="partial"):
    """Temporaries of ``path`` (``temporary_name``) whose process is gone."""
    path = Path(path)
    found = glob.glob(str(path.parent / f".{glob.escape(path.name)}.*-*.{kind}*"))
    out = []
    for name in map(Path, found):
        pid = _owner(path, name)
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(pid):
            out.append(name)
    return sorted(out)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(path):
    """Remove what killed writers of ``path`` left (``.partial`` temporaries); a folder's ``.old``
    aside is put back first if ``path`` itself went missing (see ``atomic_folder``)."""
    path = Path(path)
    for old in leftovers(path, "old"):
        if not path.exists():
            os.replace(old, path)  # killed between "old aside" and "new in": the old comes back
            fsync_dir(path.parent)
        else:
            _remove(old)
    for partial in leftovers(path, "partial"):
        _remove(partial)


def _raise_as_storage_error(exc, path):
    err = storage_error(exc, path)
    if err is not None and err is not exc:
        raise err from None


# -- atomic writes ----------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_file(path, check=None):
    """Write file ``path`` complete or not at all: yields a temporary path beside it for the
    caller to write; then fsyncs it, runs ``check(tmp)`` (a string: what is wrong, refused as a
    ``StorageError``), renames it into place and fsyncs the folder. On any failure the temporary
    is removed and ``path`` keeps what it held; an ``OSError`` of the machine becomes a
    ``StorageError`` naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        problem = check(tmp) if check is not None else None
        if problem:
            raise StorageError(f"cannot write {path}: what was written does not read back "
                               f"({problem}); nothing under that name was changed")
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except Exception as exc:
        tmp.unlink(missing_ok=True)  # first: the message says how much is free without it
        _raise_as_storage_error(exc, path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path, data):
    with atomic_file(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text_atomic(path, text):
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


def write_json_atomic(path, obj):
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, allow_nan=True)


def _exchange_function():
    """Linux ``renameat2(..., RENAME_EXCHANGE)`` (glibc 2.28+), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _exchange_function()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a, b):
    """Swap the names ``a`` and ``b`` in one atomic step; False where the system cannot (the
    caller then renames)."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)),
                  _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # a file system without exchange (some network and FUSE ones)
    raise OSError(code, os.strerror(code), str(a))


def swap_folder(new, path):
    """Put folder ``new`` in place of ``path`` (which may exist). Never leaves neither: the two
    are exchanged atomically, or ``path`` is renamed aside to a ``.old`` name first, which the
    next ``clean_leftovers(path)`` puts back if a kill lands between the two renames."""
    new, path = Path(new), Path(path)
    if not path.exists():
        os.replace(new, path)
    elif exchange(new, path):
        _remove(new)  # now holding the old folder
    else:
        old = temporary_name(path, "old")
        os.replace(path, old)
        os.replace(new, path)
        fsync_dir(path.parent)
        _remove(old)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_folder(path, create=True):
    """Write folder ``path`` complete or not at all: yields a temporary folder beside it (made
    when ``create``; else the caller puts one there), whose files the caller writes; on success it
    is swapped in place of ``path`` (``swap_folder``: an existing ``path`` is replaced; the caller
    decides whether that is allowed). On any failure the temporary folder is removed and ``path``
    is untouched; an ``OSError`` of the machine becomes a ``StorageError`` naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = temporary_name(path)
    if create:
        tmp.mkdir()
    try:
        yield tmp
        for root, _, names in os.walk(tmp):
            for name in names:
                if not os.path.islink(os.path.join(root, name)):
                    fsync_file(os.path.join(root, name))
            fsync_dir(root)
        swap_folder(tmp, path)
    except Exception as exc:
        _remove(tmp)  # first: the message says how much is free without it
        _raise_as_storage_error(exc, path)
        raise
    finally:
        _remove(tmp)


# -- one writer per target --------------------------------------------------------------------

def _close_held_locks_in_child():
    for fd in list(_HELD_LOCK_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCK_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_locks_in_child)


class Lock:
    """Only one process writes ``target`` (a run folder, an export folder, a cache file) at a
    time. ``with Lock(target, advice=...)``: held for the block. A second writer gets
    ``InUseError`` naming ``target`` and the holder (its pid, command and start time), followed by
    ``advice`` (what to do; ``{pid}`` is filled in), or, with ``wait=True``, waits for the holder
    to finish (``log`` says so). The lock is ``.NAME.lock`` beside ``target`` (a folder may be
    removed or swapped while it is held), removed when released."""

    def __init__(self, target, advice="wait for it to finish, or stop it (kill {pid})", wait=False,
                 log=None):
        self.target = Path(target)
        self.file = self.target.with_name(f".{self.target.name}.lock")
        self.advice, self.wait, self.log = advice, wait, log
        self._fd = None

    def holder(self):
        """What the lock file says about its holder (``pid``, ``command``, ``since``, ``host``);
        {} when unreadable."""
        try:
            return json.loads(self.file.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def _refusal(self, holder):
        pid = holder.get("pid", "?")
        who = f"pid {pid}"
        if holder.get("host") and holder["host"] != socket.gethostname():
            who += f" on {holder['host']}"
        if holder.get("command"):
            who += f", `{holder['command']}`"
        if holder.get("since"):
            who += f", since {holder['since']}"
        advice = self.advice.format(pid=pid)
        return InUseError(f"{self.target} is in use by another kseg process ({who}); {advice}. "
                          f"(The lock is {self.file}; it goes away when that process ends.)")

    def acquire(self):
        import fcntl

        self.file.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = self.holder()
                    if not self.wait:
                        raise self._refusal(holder) from None
                    if self.log is not None:
                        self.log(f"{self.target} is being written by pid {holder.get('pid', '?')}; "
                                 f"waiting for it")
                    fcntl.flock(fd, fcntl.LOCK_EX)
                # the file may have been removed (released) between our open and flock
                if os.path.exists(self.file) and os.stat(self.file).st_ino == os.fstat(fd).st_ino:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        previous = self.holder()
        if previous.get("pid") and self.log is not None and previous.get("pid") != os.getpid():
            self.log(f"{self.target}: taking over the lock of pid {previous['pid']}, which ended "
                     f"without releasing it")
        self._fd = fd
        _HELD_LOCK_FDS.add(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])[:300],
                "since": datetime.datetime.now().isoformat(timespec="seconds")}
        with contextlib.suppress(OSError):  # a full disk: the lock holds, only its note is lost
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        return self

    def release(self):
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.file)  # while still held: a waiter re-checks the inode (acquire)
        _HELD_LOCK_FDS.discard(self._fd)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# -- checkpoints -------------------------------------------------------------------------------

KERAS_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")  # what a .keras zip holds


def checkpoint_problem(path):
    """What is wrong with the .keras file ``path`` (None: it is complete): missing, not a zip (a
    truncated file has lost the directory at its end), without a member Keras needs, or a member
    whose bytes fail their CRC."""
    try:
        with zipfile.ZipFile(path) as z:
            missing = [m for m in KERAS_MEMBERS if m not in z.namelist()]
            if missing:
                return f"it holds no {', '.join(missing)}"
            bad = z.testzip()
            if bad is not None:
                return f"its {bad} fails its checksum"
    except FileNotFoundError:
        return "the file is missing"
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        return f"not a complete .keras file: {exc}"
    return None
