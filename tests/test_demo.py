"""kseg demo: the page built for a short shapes export is served on 127.0.0.1 and opened in
headless Chromium; MediaPipe's web runtime segments the bundled sample in the page, and the mask
read back from the page must agree with kseg.runtime. Skips, saying why, where no browser, driver
or web runtime can be had (CI installs Debian's chromium and chromium-driver)."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import SHAPES_EXPORT_SIZE as SIZE
from kseg.cli import main
from kseg.contract import read_metadata
from kseg.runtime import TFLiteModel

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _runtime():
    from kseg.demo import DemoError, find_runtime

    try:
        return find_runtime(log=lambda *_: None)
    except DemoError as exc:
        pytest.skip(f"MediaPipe web runtime unavailable: {exc}")


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.skip(f"{path} missing: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_demo_refuses_a_runtime_dir_without_the_package(shapes_export, tmp_path):
    r = CliRunner().invoke(main, ["demo", str(shapes_export), "--out", str(tmp_path / "d"),
                                  "--runtime-dir", str(tmp_path)])
    assert r.exit_code == 1 and "npm pack @mediapipe/tasks-vision@" in r.output
    assert not (tmp_path / "d").exists()


def _stub_runtime(root):
    """An unpacked @mediapipe/tasks-vision package of the right name and version whose files hold
    nothing: enough for ``find_runtime``, so that a refusal comes from the guard under test."""
    import json

    from kseg.demo import RUNTIME_FILES, RUNTIME_PACKAGE, RUNTIME_VERSION

    package = root / "package"
    for rel in RUNTIME_FILES:
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_bytes(b"stub")
    (package / "package.json").write_text(json.dumps({"name": RUNTIME_PACKAGE,
                                                      "version": RUNTIME_VERSION}))
    return root


def test_demo_never_replaces_a_folder_that_is_not_a_demo(shapes_export, tmp_path):
    import shutil

    export = tmp_path / "shapes"  # a copy: a broken guard must not destroy the session's export
    shutil.copytree(shapes_export, export)
    runtime = _stub_runtime(tmp_path / "runtime")

    def demo(out, *more):
        return CliRunner().invoke(main, ["demo", str(export), "--out", str(out),
                                         "--runtime-dir", str(runtime), *more])

    # the stub runtime is enough to build a demo: what is refused below is refused by a guard
    r = demo(tmp_path / "d")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / "demo.json").is_file()
    r = demo(tmp_path / "d")  # a demo is replaced only when asked to
    assert r.exit_code == 1 and "pass --overwrite to replace it" in r.output
    assert demo(tmp_path / "d", "--overwrite").exit_code == 0

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for out, refusal in ((other, "is not a kseg demo"),
                         (export, "write the demo outside the exported folder"),
                         (export / "demo", "write the demo outside the exported folder")):
        r = demo(out, "--overwrite")
        assert r.exit_code == 1 and refusal in r.output, (out, r.output)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in export.iterdir()) == sorted(p.name for p in shapes_export.iterdir())
    assert not list(tmp_path.glob(".*partial*")) and not list(export.glob(".*"))


@pytest.mark.slow
def test_the_page_segments_its_sample_as_the_runtime_does(shapes_export, tmp_path):
    from kseg.data.shapes import ShapesSource
    from kseg.demo import RUNTIME_FILES, make_server

    runtime = _runtime()
    sample = ShapesSource("val", count=1, height=SIZE, width=SIZE, seed=11).load_numpy(0)[0]
    Image.fromarray(sample).save(tmp_path / "sample.png")
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", str(shapes_export), "--out", str(out), "--sample",
                                  str(tmp_path / "sample.png"), "--runtime-dir", str(runtime)])
    assert r.exit_code == 0, r.output
    for rel in ("index.html", "app.js", "demo.json", "sample.png", "model_float32.tflite",
                "model_int8.tflite", *(f"mediapipe/{f}" for f in RUNTIME_FILES)):
        assert (out / rel).is_file(), rel

    driver = _browser()
    server = make_server(out, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        state, t0 = None, time.time()
        while time.time() - t0 < 180:
            state = driver.execute_script("return window.kseg && {ready: window.kseg.ready, "
                                          "error: window.kseg.error}")
            if state and (state["ready"] or state["error"]):
                break
            time.sleep(0.5)
        assert state and state["ready"], state
        result = driver.execute_script("return window.kseg.result")
        legend = [li.text for li in driver.find_elements("css selector", "#legend li")]
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    classes = read_metadata(shapes_export)["classes"]
    assert result["labels"] == classes
    assert [line.split("\n")[0].split(" ")[0] for line in legend] == classes
    page = np.asarray(result["mask"], np.int32).reshape(result["height"], result["width"])
    ours = TFLiteModel(shapes_export / "model_float32.tflite").labels(sample)
    assert page.shape == ours.shape
    assert np.mean(page == ours) >= 0.99
    assert (tmp_path / "page.png").stat().st_size > 1000


def test_demo_refuses_another_version_of_the_web_runtime(shapes_export, tmp_path, monkeypatch):
    import io
    import json
    import tarfile

    from kseg.demo import RUNTIME_FILES, RUNTIME_VERSION

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tgz = tmp_path / "tasks-vision-0.10.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in [("package/package.json", json.dumps(
                {"name": "@mediapipe/tasks-vision", "version": "0.10.0"}).encode()),
                           *((f"package/{f}", b"x") for f in RUNTIME_FILES)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    r = CliRunner().invoke(main, ["demo", str(shapes_export), "--out", str(tmp_path / "d"),
                                  "--runtime-dir", str(tgz)])
    assert r.exit_code == 1 and "@mediapipe/tasks-vision@0.10.0" in r.output
    assert RUNTIME_VERSION in r.output and not (tmp_path / "d").exists()
    assert not list((tmp_path / "cache").rglob("vision_bundle.mjs"))  # not cached as the right one
