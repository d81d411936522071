"""kseg's commands print kseg's own output: TensorFlow's start-up and converter log lines only with
--verbose."""

import os
import subprocess
import sys

NOISE = ("cuInit", "I0000", "W0000", "absl::InitializeLog", "oneDNN", "WARNING:absl",
         "INFO: Created TensorFlow Lite")
KSEG = [sys.executable, "-c", "from kseg.cli import main; main()"]


def _run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KSEG_QUIET")}
    return subprocess.run([*KSEG, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_tensorflow_noise_only_with_verbose(tmp_path):
    run = tmp_path / "run"
    proc = _run("train", "--data", "shapes:16", "--image-size", "16", "16", "-o", "depth=1",
                "-o", "base_filters=2", "--epochs", "1", "--out", str(run), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _run("export", str(run), "--tflite", "--quantize", "float32,int8", "--representative",
                "4", "--max-miou-drop", "100", "--out", str(tmp_path / "exp"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model_int8.tflite" in proc.stdout
    shown = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not shown, shown
    proc = _run("--verbose", "evaluate", str(run), cwd=tmp_path)
    assert proc.returncode == 0 and any(n in proc.stderr for n in NOISE)


def test_kseg_train_options_default_to_train_config():
    """One source of truth: every `kseg train` option that sets a TrainConfig field defaults to
    the dataclass's default (or to what turns into it)."""
    import dataclasses

    from kseg.cli import main
    from kseg.train.config import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    translated = {"fast_data": ("deterministic", lambda v: not v),
                  "copy_paste_classes": ("object_classes", lambda v: v),
                  "options": ("model_options", lambda v: dict(v) if v else {}),
                  "remap": ("remap", lambda v: v or {})}  # parsed: none given is no rewrite
    checked = 0
    for param in main.commands["train"].params:
        name, convert = translated.get(param.name, (param.name, lambda v: v))
        if name not in fields:
            continue
        f = fields[name]
        want = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = None if type(param.default).__name__ == "Sentinel" else param.default  # unset
        got = convert(default)
        if isinstance(want, tuple):
            got = tuple(got)
        assert got == want, (param.name, got, want)
        checked += 1
    assert checked >= 35


def test_kseg_models_lists_every_option_with_its_default_and_meaning():
    from click.testing import CliRunner

    from kseg import models
    from kseg.cli import main

    for name in models.names():
        summary, opts = models.registry.describe(name)
        assert len(summary) > 40, name
        assert set(opts) == set(models.options(name))
        undocumented = [o for o, (_, meaning) in opts.items() if len(meaning) < 10]
        assert not undocumented, f"{name}: options without a meaning in its Args: {undocumented}"
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    for name in models.names():
        assert f"\n{name}\n" in f"\n{result.output}"
    assert "-o ppm_bins=[1,2,3,6]" in result.output and "-o separable=true" in result.output
    assert "mobilenetv2, resnet18, resnet50" in result.output
    one = CliRunner().invoke(main, ["models", "unet"])
    assert one.exit_code == 0 and "-o base_filters=64" in one.output
    assert "\ndeeplabv3\n" not in one.output
    bad = CliRunner().invoke(main, ["models", "segformer"])
    assert bad.exit_code != 0 and "unknown model 'segformer'" in bad.output


def test_option_values_take_json_and_python_spellings():
    from kseg.cli import _parse_options

    assert _parse_options(["separable=False", "ppm_bins=[1,2]", "backbone=resnet18",
                           "width=0.5", "weights=None", "batch_norm=true"]) == {
        "separable": False, "ppm_bins": [1, 2], "backbone": "resnet18", "width": 0.5,
        "weights": None, "batch_norm": True}
