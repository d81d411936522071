"""``kseg`` command line: a thin click shell over the library (kseg.train, kseg.export, ...)."""

import functools
import json
import logging
import os
import sys

import click


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out


def _tta(text):
    from kseg.tta import TTA

    try:
        return TTA.parse(text) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tta") from None


# --- options generated from TrainConfig's fields (kseg.train.config declares each one once) ---

def _fields():
    import dataclasses

    from kseg.train.config import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _field_default(f):
    import dataclasses

    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _parse_callback(parse):
    def callback(ctx, param, value):
        if value is None or value == ():
            return None  # not given: TrainConfig's default applies
        try:
            return parse(value)
        except ValueError as exc:  # ConfigError is one
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return callback


def _field_option(f):
    """The click option of TrainConfig field ``f``, from its metadata."""
    meta = f.metadata
    flags = meta.get("flags") or ("--" + f.name.replace("_", "-"),)
    default = _field_default(f)
    kw = {"help": meta["help"]}
    if meta.get("parse"):  # text on the command line, parsed into the field's value
        kw.update(type=meta.get("type", str), callback=_parse_callback(meta["parse"]),
                  multiple=meta.get("multiple", False))
    elif isinstance(default, bool):
        kw.update(default=default, show_default=True)
        if "/" not in flags[0]:
            kw["is_flag"] = True
    else:
        kind = meta.get("type") or (type(default) if default is not None else str)
        if meta.get("choices"):
            kind = click.Choice(meta["choices"])
        kw.update(type=kind, default=default, show_default=default is not None)
    for key in ("nargs", "metavar"):
        if key in meta:
            kw[key] = meta[key]
    return click.option(*flags, f.name, **kw)


def config_options(names):
    """Decorate a command with the options of TrainConfig fields ``names`` (in that order)."""
    fields = _fields()

    def decorate(fn):
        for name in reversed(names):
            fn = _field_option(fields[name])(fn)
        return fn
    return decorate


def config_values(values):
    """TrainConfig keyword arguments from a command's option values (options not given are left
    out, so the dataclass's defaults apply)."""
    fields = _fields()
    return {k: v for k, v in values.items() if k in fields and v is not None}


MODEL_SHORTHANDS = ("backbone", "output_stride", "weights")  # --backbone X is -o backbone=X


def train_config(params):
    """The ``TrainConfig`` of ``kseg train``'s parsed options ``params``."""
    from kseg.train import TrainConfig

    values = config_values(params)
    options = dict(values.pop("model_options", {}))
    for key in MODEL_SHORTHANDS:
        if params.get(key) is not None:
            options[key] = int(params[key]) if key == "output_stride" else params[key]
    return TrainConfig(**values, model_options=options)


DATA_OPTION_NAMES = ("classes", "remap", "ignore_index", "val_fraction", "val_split",
                     "tfds_data_dir", "coco_images")


def data_options(f):
    """The options that say how to read a dataset (shared by train, evaluate and data check); the
    command receives them as one dict, ``data_opts``, ready for ``kseg.data.open_source``."""
    fields = _fields()

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        opts = {}
        for name in DATA_OPTION_NAMES:
            value = kwargs.pop(name)
            opts[name] = _field_default(fields[name]) if value is None else value
        return f(*args, data_opts=opts, **kwargs)

    return config_options(DATA_OPTION_NAMES)(wrapper)


class KsegGroup(click.Group):
    """The ``kseg`` group: a user-facing problem (``kseg.errors.KsegError``) is printed as
    ``error: MESSAGE`` with exit status 1; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx):
        from kseg.errors import KsegError

        try:
            return super().invoke(ctx)
        except KsegError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


class TensorFlowCommand(click.Command):
    """A command that runs on Keras/TensorFlow: its ``--backend`` (where it has one) is set
    before Keras is imported, and TensorFlow is imported quietly unless ``kseg --verbose``."""

    def invoke(self, ctx):
        backend = ctx.params.get("backend")
        if backend:
            from kseg.errors import ConfigError

            current = sys.modules["keras"].backend.backend() if "keras" in sys.modules else None
            if current not in (None, backend):
                raise ConfigError(f"--backend {backend}: Keras is already loaded with the "
                                  f"{current} backend in this process; set KERAS_BACKEND={backend}")
            os.environ["KERAS_BACKEND"] = backend
        if not ctx.find_root().params.get("verbose"):
            from kseg.quiet import quiet_tensorflow

            quiet_tensorflow()
        return super().invoke(ctx)


@click.group(cls=KsegGroup)
@click.version_option(package_name="kseg")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines (device set-up, "
              "converter warnings), which kseg hides by default.")
def main(verbose):
    """Train semantic-segmentation models and ship them as verified TFLite files."""
    _show_library_log()


class _EchoHandler(logging.Handler):
    """The library's log lines (the ``kseg`` logger) as the command's own output."""

    def emit(self, record):
        click.echo(self.format(record))


def _show_library_log():
    logger = logging.getLogger("kseg")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


TRAIN_FIELDS = ("data", "val_data", *DATA_OPTION_NAMES, "image_size", "crop", "model",
                "model_options", "sigmoid", "init_from", "epochs", "batch_size", "repeat",
                "learning_rate", "weight_decay", "optimizer", "momentum", "schedule", "poly_power",
                "warmup_epochs", "early_stopping", "precise_bn", "ema", "time_budget", "loss",
                "loss_weights", "focal_gamma", "class_weights", "aux_loss_weight", "augment",
                "copy_paste", "object_transform", "object_classes", "teacher", "distill_weight",
                "distill_temperature", "cache", "deterministic", "strategy",
                "mixed_precision", "jit_compile", "seed")


@main.command(cls=TensorFlowCommand)
@config_options(TRAIN_FIELDS)
@click.option("--backbone", help="mobilenetv2 | resnet18 | resnet50 (FCN and DeepLab; "
              "the same as -o backbone=...).")
@click.option("--output-stride", type=click.Choice(["8", "16", "32"]), help="DeepLab output stride "
              "(-o output_stride=...).")
@click.option("--weights", help="Backbone weights: 'imagenet' (downloads) or a keras.applications "
              "weights file; default none (-o weights=...).")
@click.option("--backend", type=click.Choice(["tensorflow", "jax"]), default=None,
              help="Keras backend to train with (default: KERAS_BACKEND or tensorflow). jax feeds "
              "a TensorFlow-free input pipeline; its .keras checkpoints export as usual.")
@click.option("--stop-after", type=click.IntRange(min=1), help="End this call after N more epochs; "
              "the schedule still spans --epochs and the same command without it resumes.")
@click.option("--out", required=True, help="Run folder, e.g. runs/NAME.")
@click.option("--overwrite", is_flag=True, help="Replace a run folder of another configuration.")
def train(backbone, output_stride, weights, backend, stop_after, out, overwrite, **values):
    """Train a model; the same command resumes an interrupted run."""
    from kseg.train import train as run_training

    config = train_config(dict(values, backbone=backbone, output_stride=output_stride,
                               weights=weights))
    result = run_training(config, out, overwrite=overwrite, stop_after=stop_after)
    if not result.get("chief", True):
        click.echo("worker finished (the chief writes the run folder)")
        return
    click.echo(f"best val mIoU {result['best_val_miou']:.4f} (epoch {result['best_epoch']}); "
               f"run folder {result['run']}")


def _source_for(predictor, data, split, data_opts):
    from kseg.data import open_source

    if data is None:
        if predictor.config is None:
            raise click.UsageError("this model has no run folder; give --data")
        return predictor.config.open_source(split)
    size = predictor.input_size or (predictor.config.image_size if predictor.config
                                    else (128, 128))  # any size: the run's
    return open_source(data, split, **data_opts, image_size=size)


@main.command(cls=TensorFlowCommand)
@click.argument("models", nargs=-1, required=True)
@click.option("--data", help="Dataset (default: the run's validation data).")
@click.option("--split", default="val", show_default=True)
@data_options
@click.option("--output-stride", type=click.Choice(["8", "16", "32"]),
              help="Evaluate at another output stride with the same weights (DeepLab).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the scores here.")
@click.option("--tta", help="Test-time augmentation, e.g. flip,rotate=-10,-5,5,10,scales=0.75,1,1.25; "
              "flip,turns: all 8 symmetries of the square (data with no up or left; "
              "kseg orientation RUN tells).")
def evaluate(models, data, split, data_opts, output_stride, json_path, tta):
    """Score MODELS (run folders, .keras files or exported .tflite files): per-class IoU, mIoU,
    pixel accuracy. Several models are scored as one ensemble (the mean of their class
    probabilities). An exported file is scored as a client shows it (its data: --data)."""
    from kseg.inference import Ensemble, evaluate as run_eval, format_scores, load

    model = models[0] if len(models) == 1 else f"ensemble of {len(models)}"
    members = [load(m) for m in models]
    predictor = members[0] if len(members) == 1 else Ensemble(members)
    if output_stride:
        predictor = predictor.rebuilt(output_stride=int(output_stride))
    source = _source_for(predictor, data, split, data_opts)
    source.scan().raise_if_bad()
    result = run_eval(predictor, source, tta=_tta(tta))
    click.echo(format_scores(result, f"{predictor.name} on {result['data']} "
                                     f"({result['images']} images)"))
    if json_path:
        from kseg.report.figures import save_confusion_matrix

        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
        png = os.path.splitext(json_path)[0] + "_confusion.png"
        save_confusion_matrix(result["confusion_matrix"], result["classes"], png,
                              title=f"{os.path.basename(str(model))} on {result['data']}")
        click.echo(f"wrote {json_path} and {png}")


@main.command(cls=TensorFlowCommand)
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--out", required=True, help="Folder for masks and overlays.")
@click.option("--tta", help="Test-time augmentation, e.g. flip,rotate=-5,5,scales=0.75,1,1.25; "
              "flip,turns: all 8 symmetries of the square.")
@click.option("--native", is_flag=True, help="Segment at each photo's own resolution (up to 4 "
              "megapixels) instead of at the model's size, which is what the exported files and "
              "kseg.runtime do.")
def predict(model, images, out, tta, native):
    """Segment IMAGES with MODEL (a run folder, .keras or exported .tflite file); writes
    coloured masks, overlays and label PNGs."""
    from kseg.inference import load, predict_files

    written = predict_files(load(model), images, out, tta=_tta(tta), native=native)
    click.echo(f"wrote {len(written)} files to {out}")


@main.command(cls=TensorFlowCommand)
@click.argument("run")
@click.option("--tflite", is_flag=True, help="Also write TFLite file(s) (SavedModel always).")
@click.option("--quantize", default="float32", show_default=True,
              help="Comma-separated TFLite modes: float32, float16, dynamic, int8, int8-npu "
              "(full-integer for NPUs: uint8 in and out, no float operator).")
@click.option("--representative", type=int, default=200, show_default=True,
              help="Training images that calibrate int8.")
@click.option("--output", "output_kind", type=click.Choice(["scores", "labels"]), default="scores",
              show_default=True, help="scores: per-class probabilities, read by MediaPipe, the Task "
              "Library and kseg.runtime. labels: argmax inside the graph, [1, H, W], for kseg.runtime "
              "only (needs --kseg-runtime-only).")
@click.option("--kseg-runtime-only", is_flag=True,
              help="Allow --output labels, whose files no mobile client reads.")
@click.option("--name", "model_name", help="Model name embedded in the files (default: the --out "
              "folder's name).")
@click.option("--license", "license_text", default="", help="Licence text embedded in the files "
              "(e.g. the training data's terms).")
@click.option("--max-miou-drop", type=float, default=1.0, show_default=True,
              help="mIoU points a quantized file may lose against Keras before the export fails.")
@click.option("--out", required=True, help="Destination folder, e.g. exported/NAME.")
@click.option("--overwrite", is_flag=True)
@click.option("--verify-images", type=int, default=None,
              help="Verify on at most this many validation images (default: all).")
@click.option("--output-stride", type=click.Choice(["8", "16", "32"]),
              help="Export at another output stride with the same weights (DeepLab).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best",
              show_default=True, help="best: the epoch with the best val mIoU. last: the last "
              "epoch's (a final model trained on train+val has no val to select on).")
@click.option("--no-rescue", is_flag=True, help="Fail an int8 file over the budget instead of "
              "keeping its most quantization-hurt layers in float.")
@click.option("--output-resolution", type=click.Choice(["full", "model"]), default="full",
              show_default=True, help="full: probabilities at the input size. model: at the "
              "network's own stride (the client upsamples them, as MediaPipe does): skips the "
              "costliest part of the graph.")
@click.option("--npu", metavar="ACCELERATOR", help="Compile the int8-npu file with Arm's Vela for "
              "this --accelerator-config (e.g. ethos-u65-256) and record its estimates; needs "
              "pip install 'kseg[npu]'.")
def export(run, tflite, quantize, representative, output_kind, kseg_runtime_only, model_name,
           license_text, max_miou_drop, out, overwrite, verify_images, output_stride, checkpoint,
           no_rescue, output_resolution, npu):
    """Export RUN's best model (or its last: --checkpoint last) as SavedModel + TFLite, verified
    before it is kept."""
    from kseg.export import export_run
    from kseg.report.tables import format_export

    modes = tuple(m.strip() for m in quantize.split(",") if m.strip()) if tflite else ()
    meta = export_run(run, out, modes=modes, overwrite=overwrite, output=output_kind,
                      representative=representative, max_miou_drop=max_miou_drop,
                      max_images=verify_images,
                      output_stride=int(output_stride) if output_stride else None,
                      rescue=not no_rescue, name=model_name, license=license_text,
                      kseg_runtime_only=kseg_runtime_only, resolution=output_resolution, npu=npu,
                      checkpoint=checkpoint)
    click.echo(format_export(meta, out))


@main.command(cls=TensorFlowCommand)
@click.argument("folder")
@click.option("--name", "model_name", help="Model name to embed (default: the folder's name).")
@click.option("--license", "license_text", default="", help="Licence text to embed.")
def upgrade(folder, model_name, license_text):
    """Make an exported FOLDER from an older kseg readable by MediaPipe and the Task Library
    (probabilities, signature, embedded metadata), without its run; scores do not change."""
    from kseg.export.upgrade import upgrade_folder

    done = upgrade_folder(folder, name=model_name, license=license_text, log=click.echo)
    click.echo(f"upgraded {len(done)} file(s) in {folder}")


@main.command()
@click.argument("folder")
@click.option("--out", help="Folder to write the page to (default: demo/NAME).")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False),
              help="Image the page segments on load (default: the first image of the export's "
                   "validation data when it is on this machine, else a test pattern).")
@click.option("--runtime-dir", help="An unpacked @mediapipe/tasks-vision package (or its .tgz) "
              "to copy the web runtime from (default: npm pack, cached).")
@click.option("--overwrite", is_flag=True)
@click.option("--serve", is_flag=True, help="Serve the page on 127.0.0.1 until Ctrl-C.")
@click.option("--port", type=int, default=8000, show_default=True)
def demo(folder, out, sample, runtime_dir, overwrite, serve, port):
    """A web page that runs exported FOLDER in the browser (MediaPipe Tasks, offline)."""
    from kseg.demo import DemoError, build_demo, make_server

    out = out or os.path.join("demo", os.path.basename(os.path.normpath(folder)))
    build_demo(folder, out, runtime_dir=runtime_dir, sample=sample,
               overwrite=overwrite or serve, log=click.echo)
    if not serve:
        click.echo(f"serve it with: kseg demo {folder} --out {out} --serve "
                   "(browsers refuse WASM from file://)")
        return
    try:
        server = make_server(out, port)
    except OSError as exc:
        raise DemoError(f"cannot listen on 127.0.0.1:{port} ({exc}); try --port") from None
    click.echo(f"serving {out} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


@main.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--last", type=int, default=10, show_default=True, help="Epochs in the tail mean.")
@click.option("--upto", type=int, help="Summarise only the first N epochs of each run.")
def compare(runs, last, upto):
    """Compare RUNS by their validation curves: best epoch, last-N and all-epoch means."""
    from kseg.train.runs import compare as compare_runs, format_comparison

    rows = compare_runs(runs, last=last, upto=upto)
    click.echo(format_comparison(rows, last))


@main.command(cls=TensorFlowCommand)
@click.argument("run")
@click.argument("dest")
def pack(run, dest):
    """Copy RUN to DEST without its optimizer state (to move a result off a training machine;
    DEST evaluates and exports, it cannot resume)."""
    from kseg.train.runs import pack as pack_run

    path = pack_run(run, dest)
    click.echo(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


@main.command(cls=TensorFlowCommand)
@click.argument("run")
@click.option("--class", "cls", help="Class whose label alignment to check (default: all).")
@click.option("--shift", type=int, default=2, show_default=True, help="Largest label shift tried, pixels.")
@click.option("--split", default="val", show_default=True, help="The run's data split to read.")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--no-model", is_flag=True, help="The label alignment check only (no model run).")
@click.option("--per-image", is_flag=True, help="Also each image's own strongest label shift.")
def orientation(run, cls, shift, split, batch, no_model, per_image):
    """Does RUN's data have an up and a left? Label offset in the image's frame, scores under the
    8 symmetries, and where the errors lie: check before flipping or turning as augmentation."""
    from kseg.orientation import report as orientation_report

    orientation_report(run, cls=cls, shift=shift, split=split, batch=batch,
                       no_model=no_model, per_image=per_image, log=click.echo)


@main.command(cls=TensorFlowCommand)
@click.argument("name", required=False)
def models(name):
    """The model families (or model NAME): what each is, and every -o option of `kseg train`
    with its default and meaning."""
    from kseg.models import registry

    click.echo(registry.catalogue(name))


@main.command(cls=TensorFlowCommand)
@click.argument("run")
def report(run):
    """(Re)write RUN/report.html: curves, per-class IoU, confusion matrix, sample overlays."""
    from kseg.report.run_page import write_report

    write_report(run, log=click.echo)


@main.command(cls=TensorFlowCommand)
@click.argument("folder")
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs per file.")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--threads", default="1,2", show_default=True, help="Thread counts to time.")
@click.option("--no-keras", is_flag=True, help="Skip the Keras baseline.")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False),
              help="Run folder whose checkpoint is the Keras baseline (default: the one "
              "metadata.json names, looked for here and in runs/; else the SavedModel).")
@click.option("--doc", default=None, help="Also append the table, with the command, to this "
              "Markdown file (e.g. docs/benchmarks.md); by default it is only printed.")
def benchmark(folder, runs, warmup, threads, no_keras, doc, run_dir):
    """Latency of every file in an exported FOLDER (median, p90) beside the Keras model."""
    from kseg.export.benchmark import benchmark_folder, command_line, format_rows

    try:
        counts = tuple(int(t) for t in threads.split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"{threads!r}: expected e.g. 1,2", param_hint="--threads") from None
    if runs < 1 or not counts or min(counts) < 1:
        raise click.BadParameter("runs and thread counts must be positive")
    rows = benchmark_folder(folder, runs=runs, warmup=warmup, threads=counts,
                            keras=not no_keras, log=lambda m: click.echo(m, err=True),
                            run=run_dir)
    table = format_rows(rows, folder, runs, command=command_line())
    click.echo(table)
    if doc:
        from kseg.report.tables import write_section

        write_section(doc, f"kseg benchmark {folder}", table, replace=False)
        click.echo(f"appended to {doc}")


@main.group()
def data():
    """Dataset tools."""


@data.command("check", cls=TensorFlowCommand)
@click.argument("path")
@click.option("--split", default=None, help="Check only this split (default: every split the "
              "dataset has: train, val, test).")
@data_options
def data_check(path, split, data_opts):
    """Scan a dataset: counts, sizes, per-class pixel shares; exit 1 if anything is wrong."""
    from kseg.data import DatasetError, check_splits
    from kseg.errors import KsegError

    reports = check_splits(path, [split] if split else None, **data_opts)
    bad = []
    for name, report in reports.items():
        click.echo(f"[{name}] {report.where}: {report.num_examples} valid pairs")
        for (h, w), count in sorted(report.sizes.items(), key=lambda kv: -kv[1]):
            click.echo(f"  size {h}x{w} (HxW): {count}")
        freq = report.frequencies()
        click.echo(f"  {'class':<20} {'pixels':>12} {'share':>8}")
        for i, cls in enumerate(report.classes):
            click.echo(f"  {i:>2} {cls:<17} {int(report.pixel_counts[i]):>12} {freq[i]:>8.2%}")
        click.echo(f"  {'ignored':<20} {int(report.pixel_counts[-1]):>12}")
        for warning in report.warnings():
            click.echo(f"warning: [{name}] {report.where}: {warning}")
        try:
            report.raise_if_bad()
        except DatasetError as exc:
            bad.append(f"[{name} split] {exc}")
    if bad:
        raise KsegError("\n".join(bad))


@main.command(cls=TensorFlowCommand)
@click.option("--out", default="runs/quickstart", show_default=True)
@click.option("--epochs", type=int, default=None, help="Override the recipe's epoch count.")
def quickstart(out, epochs):
    """The main job on the built-in data: train -> export -> verify -> results table."""
    from kseg.quickstart import run

    run(out, epochs=epochs)


if __name__ == "__main__":
    main()
