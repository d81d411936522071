"""Writing measured tables into the markdown files under ``docs/``."""

import datetime
import platform
import re
from pathlib import Path


def machine():
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_section(path, heading, body, replace=True):
    """Put ``## heading`` + ``body`` into the markdown file ``path``: replace a section of that
    heading (``replace``) or append a new one; the file is created with a title if missing."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured tables, newest last.\n"
    stamp = datetime.date.today().isoformat()
    section = f"## {heading}\n\n_{stamp}, {machine()}_\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if replace and pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path


def publish(body, path, heading):
    """Print a benchmark's markdown ``body`` and, when ``path`` is given, put it into that file
    under ``## heading`` (``write_section``)."""
    print(body)
    if path:
        write_section(path, heading, body)
