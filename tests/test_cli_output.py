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


def _train_config(*args):
    """The TrainConfig that `kseg train ARGS --out run` would train (parsed, not run)."""
    from kseg.cli import main, train_config

    ctx = main.commands["train"].make_context("train", [*args, "--out", "run"])
    return train_config(ctx.params)


def test_kseg_train_without_options_trains_the_default_config():
    """One source of truth: the CLI's options are generated from TrainConfig's fields, so a
    command line that gives none is the dataclass's defaults, field for field."""
    from kseg.train.config import TrainConfig

    assert _train_config().to_json() == TrainConfig().to_json()


def test_every_train_config_field_is_an_option_with_help():
    import dataclasses

    from kseg.cli import main
    from kseg.train.config import TrainConfig

    params = {p.name: p for p in main.commands["train"].params}
    for f in dataclasses.fields(TrainConfig):
        assert f.name in params, f"TrainConfig.{f.name} has no kseg train option"
        assert len(params[f.name].help or "") > 10, f"--{f.name}: no help"


def test_kseg_train_options_reach_the_config():
    cfg = _train_config("--fast-data", "--copy-paste-classes", "car, Pedestrian", "--cache",
                        "memory", "-o", "depth=3", "-o", "batch_norm=False", "--remap",
                        "11:ignore", "--time-budget", "1h30m", "--image-size", "64", "96",
                        "--class-weights", "1,2.5", "--schedule", "poly", "--sigmoid",
                        "--backbone", "resnet18")
    assert cfg.deterministic is False
    assert cfg.object_classes == ["car", "Pedestrian"]
    assert cfg.cache is True
    assert cfg.model_options == {"depth": 3, "batch_norm": False, "backbone": "resnet18"}
    assert cfg.remap == {11: "ignore"}
    assert cfg.time_budget == 5400
    assert cfg.image_size == (64, 96)
    assert cfg.class_weights == [1.0, 2.5]
    assert cfg.schedule == "poly" and cfg.sigmoid is True
    assert _train_config("--object-classes", "Car", "--cache", "c.npy").object_classes == ["Car"]
    assert _train_config("--cache", "c.npy").cache == "c.npy"


def test_bad_option_values_name_the_option():
    from click.testing import CliRunner

    from kseg.cli import main

    for args, flag in ((["--remap", "11-ignore"], "--remap"),
                       (["--time-budget", "soon"], "--time-budget"),
                       (["--class-weights", "1,x"], "--class-weights"),
                       (["-o", "depth"], "--option"),
                       (["--schedule", "step"], "--schedule")):
        result = CliRunner().invoke(main, ["train", *args, "--out", "run"])
        assert result.exit_code == 2, (args, result.output)
        assert flag in result.output, (args, result.output)


def test_user_errors_print_a_message_and_no_traceback(tmp_path):
    """A KsegError anywhere below a command is `error: ...` and exit status 1; the same goes
    for invalid values that only TrainConfig can judge."""
    from click.testing import CliRunner

    from kseg.cli import main

    runner = CliRunner()
    cases = [["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r1")],
             ["train", "--epochs", "0", "--out", str(tmp_path / "r2")],
             ["evaluate", str(tmp_path / "no-run")],
             ["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "e")]]
    for args in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert "error: " in result.output and "Traceback" not in result.output, result.output


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
    from kseg.train.config import parse_model_options

    assert parse_model_options(["separable=False", "ppm_bins=[1,2]", "backbone=resnet18",
                           "width=0.5", "weights=None", "batch_norm=true"]) == {
        "separable": False, "ppm_bins": [1, 2], "backbone": "resnet18", "width": 0.5,
        "weights": None, "batch_norm": True}
