"""The int8 quality gate (``--max-miou-drop``, 1.0 mIoU point by default) on a model that has
learnt its task: a good int8 file passes the default gate as it is; a file that quantization
really hurts is refused by it, or rescued (its most hurt layer kept in float) and then kept, with
the rescue recorded in metadata.json.

One short run, trained once for the module: three colour-coded classes on noisy 32x32 images,
which a one-level U-Net learns to ~0.95 val mIoU in seconds."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kseg.cli import main
from kseg.contract import read_metadata

SIZE = 32


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def make_colour_folder(root, n=40, size=SIZE, seed=0):
    """A folder dataset: red and blue disks (classes 1, 2) on grey noise (class 0)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("background\nred\nblue\n")
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(n):
        label = np.zeros((size, size), np.uint8)
        for cls in (1, 2):
            for _ in range(2):
                cy, cx = rng.integers(0, size, 2)
                r = rng.integers(3, size // 4)
                label[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = cls
        image = rng.integers(60, 140, (size, size, 3))
        image[label == 1] = (200, 40, 40)
        image[label == 2] = (40, 40, 200)
        image = np.clip(image + rng.integers(-30, 30, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"im{i:02d}.png")
        Image.fromarray(label).save(root / "labels" / f"im{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8-gate")
    data = make_colour_folder(root / "colour")
    run = root / "run"
    r = invoke("train", "--data", data, "--image-size", SIZE, SIZE, "--batch-size", 8,
               "-o", "depth=1", "-o", "base_filters=8", "-o", "batch_norm=false",
               "--augment", "none", "--learning-rate", 0.01, "--epochs", 30, "--out", run)
    assert r.exit_code == 0, r.output
    best = max(e["val_miou"] for e in json.loads((run / "metrics.json").read_text()))
    assert best >= 0.9, best  # a model that segments, so an int8 loss would show
    return run


@pytest.fixture(scope="module")
def outlier_run(colour_run, tmp_path_factory):
    """``colour_run`` with one dead ReLU channel (dec0_a) whose outgoing weights in dec0_b are
    huge. Float does not see them (they multiply zeros), but int8 quantizes each output filter of
    dec0_b with one scale, set by its largest weight: every live weight of dec0_b rounds to zero.
    Keeping dec0_b in float repairs the file."""
    from kseg.models import load_model

    run = tmp_path_factory.mktemp("int8-outlier") / "run"
    shutil.copytree(colour_run, run)
    model = load_model(run / "best.keras", compile=False)
    a, b = model.get_layer("dec0_a_conv"), model.get_layer("dec0_b_conv")
    (wa, ba), (wb, bb) = a.get_weights(), b.get_weights()
    k = int(np.argmin(np.abs(wb).sum(axis=(0, 1, 3))))  # the channel dec0_b uses least
    wa[..., k], ba[k] = 0.0, -1.0  # ReLU(-1): zero everywhere
    wb[:, :, k, :] = 1000.0
    a.set_weights([wa, ba])
    b.set_weights([wb, bb])
    model.save(run / "best.keras")
    return run


def test_a_good_int8_file_passes_the_default_gate_as_it_is(colour_run, tmp_path):
    from kseg.export import tflite
    from kseg.export.exporter import MAX_MIOU_DROP

    out = tmp_path / "exp"
    r = invoke("export", colour_run, "--tflite", "--quantize", "float32,int8",
               "--representative", 16, "--out", out)  # the gate at its default
    assert r.exit_code == 0, r.output
    assert "rescue" not in r.output
    metrics = read_metadata(out)["metrics"]
    assert metrics["keras"]["miou"] >= 0.9
    int8 = metrics["int8"]
    assert abs(int8["miou_drop_points"]) <= MAX_MIOU_DROP == 1.0
    assert int8["agreement"] >= 0.99
    assert "float_layers" not in int8 and "rescue" not in int8
    assert tflite.float_ops(out / "model_int8.tflite") == []  # fully integer, as exported


def test_the_default_gate_refuses_an_int8_file_quantization_broke(outlier_run, colour_run,
                                                                  tmp_path):
    # in float the edited model still segments as well as before the edit
    js = tmp_path / "scores.json"
    assert invoke("evaluate", outlier_run, "--json", js).exit_code == 0
    before = max(e["val_miou"] for e in json.loads((colour_run / "metrics.json").read_text()))
    assert json.loads(js.read_text())["miou"] >= before - 0.01
    out = tmp_path / "exp"
    r = invoke("export", outlier_run, "--tflite", "--quantize", "int8", "--representative", 16,
               "--no-rescue", "--out", out)
    assert r.exit_code == 1
    lost = float(r.output.split("model_int8.tflite: loses ")[1].split(" mIoU points")[0])
    assert lost > 10, r.output  # the file is broken, not a hair over the line
    assert "against Keras (allowed 1.0)" in r.output and "rescue" not in r.output
    assert not out.exists() and not list(tmp_path.glob(".exp*"))


def test_export_run_rescues_the_int8_file_and_records_it(outlier_run, tmp_path):
    from kseg.export import export_run, tflite
    from kseg.export.exporter import MAX_MIOU_DROP

    out = tmp_path / "exp"
    lines = []
    meta = export_run(outlier_run, out, modes=("int8",), representative=16, log=lines.append)
    path = out / "model_int8.tflite"
    assert path.is_file() and not list(tmp_path.glob(".exp*"))
    assert json.loads((out / "metadata.json").read_text()) == meta
    int8 = meta["metrics"]["int8"]
    # the layer that int8 broke is the one kept in float, and it was enough
    assert len(int8["float_layers"]) == 1 and "dec0_b_conv" in int8["float_layers"][0]
    assert int8["rescue"] == [{"float_layers": 1, "miou_drop_points": int8["miou_drop_points"]}]
    assert int8["miou_drop_points"] <= MAX_MIOU_DROP and int8["agreement"] >= 0.99
    assert int8["size_bytes"] == path.stat().st_size
    assert tflite.float_ops(path) == ["CONV_2D"]  # dec0_b; every other op stays int8
    text = "\n".join(map(str, lines))
    assert "looking for the layers quantization hurts most" in text
    assert "int8 rescue: 1 layer(s) in float" in text
    first = float(text.split("int8 loses ")[1].split(" mIoU points")[0])
    assert first > 10  # what the rescue repaired
