"""The errors kseg reports to a user (standard library only: the deploy runtime imports it).

Every problem a user can cause or meet — a bad option, a file that cannot be read, a refused
export, a diverged run, a run folder in use, a full disk — is a ``KsegError``. The ``kseg``
command prints its message after ``error:`` and exits with status 1, with no traceback; any other
exception is a bug in kseg and keeps its traceback. Library callers catch ``KsegError`` (or one of
the classes below) the same way.

The classes also derive from the built-in exception a Python caller would expect, so code written
against ``ValueError`` or ``FileNotFoundError`` keeps working.
"""


class KsegError(Exception):
    """A problem the user can act on; its message says what and where."""


class ConfigError(KsegError, ValueError):
    """An option, argument or configuration value that cannot work."""


class InputError(KsegError, ValueError):
    """A file the user named exists but cannot be used (unreadable image, wrong model file)."""


class NotFoundError(KsegError, FileNotFoundError):
    """A path the user named does not exist or is not what it should be."""


class StorageError(KsegError, OSError):
    """Writing a file failed for a reason of the machine (no space left, no permission); the
    message names the path, and nothing half-written is left under the final name."""
