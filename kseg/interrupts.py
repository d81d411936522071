"""SIGTERM handled as Ctrl-C: the stop a job scheduler, ``kill`` or a preemptible cloud machine
sends. Long commands (training, export) run inside ``sigterm_as_interrupt()``, so either signal
raises a ``KeyboardInterrupt`` in the main thread: ``finally`` blocks run, temporaries are removed
(``kseg.files``), locks are released, and the command says what was kept and how to go on."""

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: handled as Ctrl-C is."""


def how(exc):
    """'SIGTERM' or 'Ctrl-C': which stop ``exc`` (a ``KeyboardInterrupt``) was."""
    return "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises ``Terminated`` in the main thread (elsewhere, where Python
    cannot install a handler, the block runs unchanged). Any other exception the block ends with
    after a SIGTERM arrived becomes ``Terminated`` too (a library that caught the first one). A
    second SIGTERM during the clean-up is ignored; the previous handler comes back at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received = []

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up run
        received.append(signum)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except Exception as exc:
        # the signal landed inside library code that caught the Terminated and raised something
        # else (TensorFlow's tracing turns it into an AttributeError): still a SIGTERM
        if received:
            raise Terminated() from exc
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
