"""``kseg demo``: a self-contained web page that runs an exported model in the browser.

``build_demo(exported/NAME, out)`` writes a static folder: ``index.html`` + ``app.js``, the
model's ``.tflite`` file(s), a sample image, ``demo.json`` (the files, the palette of
``kseg predict``), and the MediaPipe Tasks web runtime (``@mediapipe/tasks-vision``: its JS bundle
and WASM files, Apache-2.0). Nothing is fetched from a CDN when the page is viewed: it works offline
and behind firewalls. The page reads class names from each file's embedded TFLite metadata, so any
kseg export works without configuration.

The runtime comes from ``runtime_dir`` (an unpacked ``@mediapipe/tasks-vision`` package, or its
``.tgz``), else from ``npm pack @mediapipe/tasks-vision@RUNTIME_VERSION`` (cached under
``~/.cache/kseg``). Browsers refuse WASM from ``file://``: ``serve(out)`` serves the folder on
127.0.0.1.
"""

import logging
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.contract import ContractError, embedded_labels, read_metadata
from kseg.errors import KsegError
from kseg.files import atomic_folder
from kseg.runtime import palette

logger = logging.getLogger(__name__)

RUNTIME_PACKAGE = "@mediapipe/tasks-vision"
RUNTIME_VERSION = "1.1.0"
# what the page loads: the ES module and the two WASM builds (SIMD, and a fallback without it)
RUNTIME_FILES = ("vision_bundle.mjs", "wasm/vision_wasm_internal.js",
                 "wasm/vision_wasm_internal.wasm", "wasm/vision_wasm_nosimd_internal.js",
                 "wasm/vision_wasm_nosimd_internal.wasm")
STATIC = Path(__file__).parent / "static"


class DemoError(KsegError, RuntimeError):
    """A demo that cannot be built (no runtime, a folder that is not an export)."""


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kseg" / f"tasks-vision-{RUNTIME_VERSION}"


def _unpack(tgz, dest):
    with tarfile.open(tgz) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202  (npm's own package tarball)
    return Path(dest) / "package"


def find_runtime(runtime_dir=None, log=logger.info):
    """The folder of an unpacked ``@mediapipe/tasks-vision`` package holding ``RUNTIME_FILES``."""
    how = (f"get it with `npm pack {RUNTIME_PACKAGE}@{RUNTIME_VERSION}` (npm from Node.js) and "
           "pass the .tgz or its unpacked package/ folder as --runtime-dir")
    if runtime_dir is not None:
        path = Path(runtime_dir)
        if path.is_file() and path.name.endswith(".tgz"):  # unpacked once into the cache
            cached = _cache_dir() / "package"
            if not _complete(cached):
                _install(path, cached)
            path = cached
        elif (path / "package").is_dir():
            path = path / "package"
        missing = [f for f in RUNTIME_FILES if not (path / f).is_file()]
        if missing:
            raise DemoError(f"{runtime_dir}: not the {RUNTIME_PACKAGE} package (missing "
                            f"{', '.join(missing)}); {how}")
        _check_version(path, runtime_dir, how)
        return path
    cached = _cache_dir() / "package"
    if _complete(cached):
        return cached
    npm = shutil.which("npm")
    if npm is None:
        raise DemoError(f"the MediaPipe web runtime is needed and npm is not installed; {how}")
    log(f"fetching {RUNTIME_PACKAGE}@{RUNTIME_VERSION} with npm (once; cached in {cached.parent})")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", f"{RUNTIME_PACKAGE}@{RUNTIME_VERSION}", "--silent"],
                              cwd=tmp, capture_output=True, text=True)
        tgz = next(Path(tmp).glob("*.tgz"), None)
        if proc.returncode != 0 or tgz is None:
            raise DemoError(f"npm pack {RUNTIME_PACKAGE}@{RUNTIME_VERSION} failed "
                            f"({proc.stderr.strip()[-300:]}); {how}")
        _install(tgz, cached)
    return cached


def _complete(cached):
    """Whether the cache holds the whole runtime package of the right version."""
    return (all((cached / f).is_file() for f in RUNTIME_FILES)
            and _package_id(cached) == f"{RUNTIME_PACKAGE}@{RUNTIME_VERSION}")


def _package_id(package):
    """``name@version`` of an unpacked npm package (``?`` for what its package.json lacks)."""
    try:
        info = json.loads((Path(package) / "package.json").read_text())
    except (OSError, ValueError):
        info = {}
    return f"{info.get('name', '?')}@{info.get('version', '?')}"


def _check_version(package, where, how):
    """Refuse an unpacked npm package other than ``RUNTIME_PACKAGE@RUNTIME_VERSION``: the page is
    written against that version's API, and the cache is named after it."""
    got = _package_id(package)
    if got != f"{RUNTIME_PACKAGE}@{RUNTIME_VERSION}":
        raise DemoError(f"{where}: holds {got}, the page needs {RUNTIME_PACKAGE}@{RUNTIME_VERSION}; "
                        f"{how}")


def _install(tgz, cached):
    """Unpack npm package ``tgz`` beside ``cached`` and swap its package/ folder into place."""
    with atomic_folder(cached) as staging:
        package = _unpack(tgz, staging)
        _check_version(package, tgz, f"get it with `npm pack {RUNTIME_PACKAGE}@{RUNTIME_VERSION}`")
        for entry in os.listdir(package):  # the package's files, one level up
            os.replace(package / entry, staging / entry)
        package.rmdir()


def _mkdir(path):
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def _sample_from_validation(meta, folder):
    """The first image under the export's validation data folder, when it is on this machine
    (a relative path is tried from here and from the folder that holds ``exported/``)."""
    where = str(meta.get("metrics", {}).get("validation_data", ""))
    if not where:
        return None
    given = Path(where.split(" (")[0])
    candidates = [given] if given.is_absolute() else [given, Path(folder).resolve().parent.parent / given]
    root = next((c for c in candidates if c.exists()), None)
    if root is None:
        return None
    for pattern in ("val/images/*", "images/*", "**/images/*", "*"):
        found = sorted(p for p in root.glob(pattern)
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        if found:
            return found[0]
    return None


def _pattern(height, width):
    """A placeholder sample when no image is at hand: colour bands and a disk."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                      np.full_like(x, 128)], axis=-1).astype(np.uint8)
    disk = (y - height / 2) ** 2 + (x - width / 2) ** 2 < (min(height, width) / 4) ** 2
    image[disk] = (230, 230, 230)
    return image


def build_demo(folder, out, *, runtime_dir=None, sample=None, overwrite=False, log=logger.info):
    """Write the demo of exported ``folder`` to ``out``; returns ``out``."""
    folder, out = Path(folder), Path(out)
    meta = read_metadata(folder)
    files = sorted(folder.glob("model_*.tflite"))
    if not files:
        raise ContractError(f"{folder}: no model_*.tflite file")
    unreadable = [f.name for f in files if embedded_labels(f) is None]
    if unreadable:
        raise DemoError(f"{folder}: {', '.join(unreadable)} carry no embedded TFLite metadata, "
                        f"so the browser runtime cannot name the classes; run `kseg upgrade "
                        f"{folder}` first")
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise DemoError(f"{out}: write the demo outside the exported folder {folder}")
    if out.exists() and any(out.iterdir()):
        if not (out / "demo.json").is_file():
            raise DemoError(f"{out} exists, is not empty and is not a kseg demo; choose another --out")
        if not overwrite:
            raise DemoError(f"{out} exists; pass --overwrite to replace it")
    runtime = find_runtime(runtime_dir, log=log)

    with atomic_folder(out) as tmp:
        for name in ("index.html", "app.js"):
            shutil.copy(STATIC / name, tmp / name)
        for rel in RUNTIME_FILES:
            _mkdir((tmp / "mediapipe" / rel).parent)
            shutil.copy(runtime / rel, tmp / "mediapipe" / rel)
        (tmp / "mediapipe" / "NOTICE.txt").write_text(
            f"{RUNTIME_PACKAGE} {RUNTIME_VERSION} (MediaPipe Tasks for the web), Apache License "
            "2.0, copied unchanged from its npm package.\n")
        models = []
        for f in files:
            shutil.copy(f, tmp / f.name)
            mode = f.stem.split("_", 1)[1]
            models.append({"file": f.name, "mode": mode, "size_bytes": f.stat().st_size})
        models.sort(key=lambda m: (m["mode"] != "float32", m["mode"]))
        h, w = meta["input"]["height"], meta["input"]["width"]
        source = Path(sample) if sample else _sample_from_validation(meta, folder)
        if source is not None:
            try:
                with Image.open(source) as im:
                    im.convert("RGB").save(tmp / "sample.png")
            except OSError as exc:
                raise DemoError(f"{source}: cannot read the sample image ({exc})") from None
            sample_note = source.name
        else:
            Image.fromarray(_pattern(h, w)).save(tmp / "sample.png")
            sample_note = "a generated test pattern (pass --sample IMAGE for a real one)"
        for license_file in ("NOTICE.md", "LICENSE"):
            if (folder / license_file).is_file():
                shutil.copy(folder / license_file, tmp / license_file)
        config = {
            "name": meta.get("embedded", {}).get("name") or folder.name,
            "models": models,
            "input": {"height": h, "width": w},
            "palette": palette(len(meta["classes"])).tolist(),
            "sample": "sample.png",
            "sample_note": sample_note,
            "runtime": f"{RUNTIME_PACKAGE} {RUNTIME_VERSION}",
            "license": meta.get("embedded", {}).get("license", ""),
        }
        (tmp / "demo.json").write_text(json.dumps(config, indent=2))
    log(f"wrote {out} ({len(models)} model file(s), sample: {sample_note})")
    return out


def make_server(folder, port=8000, host="127.0.0.1"):
    """An HTTP server for ``folder`` on ``host``:``port`` (port 0: any free one), with the WASM
    and ES-module types browsers insist on."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".wasm": "application/wasm", ".mjs": "text/javascript",
                          ".js": "text/javascript", ".tflite": "application/octet-stream"}

        def log_message(self, *args):  # quiet: the CLI prints the URL
            pass

    handler = functools.partial(Handler, directory=str(folder))
    return http.server.ThreadingHTTPServer((host, int(port)), handler)
