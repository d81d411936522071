"""``kseg`` command line: a thin click shell over the library (kseg.train, kseg.export, ...)."""

import functools
import json
import os
import sys

import click


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out


def _default(field):
    """``TrainConfig``'s default for ``field``: the one source of the defaults ``kseg train``
    shows and uses (tests/test_cli_output.py checks every option against it)."""
    import dataclasses

    from kseg.train.config import TrainConfig

    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == field)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _parse_options(items):
    """``("depth=3", "upsampling=bilinear")`` -> ``{"depth": 3, "upsampling": "bilinear"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--option")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:  # Python spellings too: -o separable=False is not a string
            out[key] = {"True": True, "False": False, "None": None}.get(value, value)
    return out


def _split_classes(text):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _remap(text):
    from kseg.data import parse_remap

    try:
        return parse_remap(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--remap") from None


def _floats(text, hint):
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected comma-separated numbers", param_hint=hint) from None


def _class_weights(text):
    from kseg.data.balance import METHODS

    return text if text is None or text in METHODS else _floats(text, "--class-weights")


def _tta(text):
    from kseg.tta import TTA

    try:
        return TTA.parse(text) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tta") from None


def _fail(exc):
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


DATA_OPTION_NAMES = ("classes", "remap", "ignore_index", "val_fraction", "val_split",
                     "tfds_data_dir", "coco_images")


def data_options(f):
    """Options that describe how to read a dataset (shared by train, evaluate and data check);
    the command receives them as one dict, ``data_opts``, ready for ``kseg.data.open_source``."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        opts = {name: kwargs.pop(name) for name in DATA_OPTION_NAMES}
        opts["classes"] = _split_classes(opts["classes"])
        opts["remap"] = _remap(opts["remap"])
        return f(*args, data_opts=opts, **kwargs)

    for opt in reversed([
        click.option("--classes", help="Comma-separated class names (default: classes.txt)."),
        click.option("--remap", help="Label value rewrites FROM:TO[,...]; TO may be 'ignore' "
                     "(e.g. 11:ignore for CamVid, 255:1 for ISBI)."),
        click.option("--ignore-index", type=int, default=_default("ignore_index"), show_default=True),
        click.option("--val-fraction", type=float, default=_default("val_fraction"), show_default=True,
                     help="Share of a single folder (or COCO file) held out for validation."),
        click.option("--val-split", type=click.Choice(["random", "first", "last"]),
                     default=_default("val_split"), show_default=True,
                     help="Which pairs --val-fraction holds out: a seeded random draw, or a "
                     "contiguous block at the start/end in natural name order (serial data: "
                     "EM sections, video frames, whose neighbours would flatter the score)."),
        click.option("--tfds-data-dir", help="tensorflow-datasets folder holding prepared data."),
        click.option("--coco-images", help="Folder of the images a COCO JSON names."),
    ]):
        wrapper = opt(wrapper)
    return wrapper


# commands that run on TensorFlow (imported quietly up front unless --verbose)
TENSORFLOW_COMMANDS = ("train", "evaluate", "predict", "export", "benchmark", "report",
                       "quickstart", "data", "upgrade", "pack", "orientation", "models")


@click.group()
@click.version_option(package_name="kseg")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines (device set-up, "
              "converter warnings), which kseg hides by default.")
@click.pass_context
def main(ctx, verbose):
    """Train semantic-segmentation models and ship them as verified TFLite files."""
    if not verbose and ctx.invoked_subcommand in TENSORFLOW_COMMANDS:
        from kseg.quiet import quiet_tensorflow

        quiet_tensorflow()


@main.command()
@click.option("--data", default=_default("data"), show_default=True,
              help="Dataset: shapes[:N] (built in), a folder with images/ and labels/, "
              "camvid:PATH[:split], voc:PATH[:split], cityscapes:PATH, coco:FILE.json, tfds:NAME[:split]; "
              "camvid:PATH:train+val joins splits (also voc, cityscapes).")
@click.option("--val-data", help="Separate validation dataset (default: the data's val split).")
@data_options
@click.option("--model", default=_default("model"), show_default=True,
              help="unet | fcn32s | fcn16s | fcn8s | deeplabv3 | deeplabv3plus | fastscnn")
@click.option("--backbone", help="mobilenetv2 | resnet18 | resnet50 (FCN and DeepLab).")
@click.option("--output-stride", type=click.Choice(["8", "16", "32"]), help="DeepLab output stride.")
@click.option("--weights", help="Backbone weights: 'imagenet' (downloads) or a keras.applications "
              "weights file; default none.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Model option, e.g. -o depth=4 -o base_filters=32 (repeatable).")
@click.option("--sigmoid", is_flag=True, help="Binary task: one sigmoid output channel "
              "(trained with ce = binary cross-entropy, focal or dice) instead of two softmax ones.")
@click.option("--epochs", type=int, default=_default("epochs"), show_default=True)
@click.option("--batch-size", type=int, default=_default("batch_size"), show_default=True)
@click.option("--image-size", type=int, nargs=2, default=_default("image_size"), show_default=True,
              metavar="H W")
@click.option("--repeat", type=click.IntRange(min=1), default=_default("repeat"), show_default=True,
              help="Passes over the training data per epoch (a small dataset: fewer, longer "
              "epochs, so less time validating; whatever counts epochs — warm-up, early "
              "stopping, precise BN — counts these longer ones).")
@click.option("--crop", type=int, nargs=2, default=None, metavar="H W",
              help="Train on random H x W windows of the --image-size examples (after "
              "augmentation); validation and export stay at --image-size.")
@click.option("--loss", default=_default("loss"), show_default=True,
              help="ce | focal | dice | tversky | lovasz, or a sum such as focal+dice.")
@click.option("--loss-weights", help="Comma-separated weights of a summed loss, e.g. 1,1.")
@click.option("--focal-gamma", type=float, default=_default("focal_gamma"), show_default=True)
@click.option("--class-weights", help="inverse | median-frequency | enet (computed from the "
              "training labels), or one comma-separated weight per class.")
@click.option("--learning-rate", type=float, default=_default("learning_rate"), show_default=True)
@click.option("--weight-decay", type=float, default=_default("weight_decay"), show_default=True)
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=_default("optimizer"), show_default=True)
@click.option("--momentum", type=float, default=_default("momentum"), show_default=True, help="SGD momentum.")
@click.option("--schedule", type=click.Choice(["poly", "cosine", "constant"]), default=_default("schedule"),
              show_default=True, help="Learning-rate schedule over the run (poly: DeepLab's).")
@click.option("--poly-power", type=float, default=_default("poly_power"), show_default=True)
@click.option("--warmup-epochs", type=float, default=_default("warmup_epochs"), show_default=True,
              help="Linear warm-up from 0 over this many epochs.")
@click.option("--early-stopping", type=int, default=_default("early_stopping"),
              help="Stop after this many epochs without a better val mIoU.")
@click.option("--precise-bn", type=int, default=_default("precise_bn"), show_default=True,
              help="Recompute batch-norm statistics on N training batches after every epoch.")
@click.option("--ema", type=float, default=_default("ema"), show_default=True, metavar="DECAY",
              help="Keep a moving average of the weights (decay per step, e.g. 0.99; 0 = off) "
              "and validate, checkpoint and export it instead of the last step's weights.")
@click.option("--init-from", type=click.Path(exists=True), help="Start from the weights of this "
              "run folder or .keras file (layers matched by name and shape; a new head is fine).")
@click.option("--augment", default=_default("augment"), show_default=True,
              help="none | flip | light | strong, or an albumentations pipeline file (JSON/YAML).")
@click.option("--copy-paste", type=float, default=_default("copy_paste"), show_default=True,
              help="Probability of pasting objects cut from another training image.")
@click.option("--copy-paste-classes", help="Comma-separated classes whose objects are pasted or "
              "moved (default: all).")
@click.option("--object-transform", type=float, default=_default("object_transform"), show_default=True,
              help="Probability of shifting/scaling/mirroring one object (the hole is inpainted "
              "and ignored).")
@click.option("--cache", "cache", default=None, help="Cache decoded examples: 'memory' or a file path.")
@click.option("--fast-data", is_flag=True, help="Let parallel decoding reorder examples (resume no "
              "longer reproduces the exact batches).")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multiworker"]),
              default=_default("strategy"), show_default=True, help="tf.distribute strategy; --batch-size is per "
              "replica. multiworker reads TF_CONFIG (every worker runs the same command).")
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 on a TensorFlow GPU, "
              "mixed_bfloat16 on CPU and under JAX.")
@click.option("--backend", type=click.Choice(["tensorflow", "jax"]), default=None,
              help="Keras backend to train with (default: KERAS_BACKEND or tensorflow). jax feeds "
              "a TensorFlow-free input pipeline; its .keras checkpoints export as usual.")
@click.option("--jit-compile", is_flag=True, help="XLA-compile the train step under TensorFlow "
              "(always on under JAX).")
@click.option("--time-budget", help="Wall-clock budget for the whole run (5400, 90m, 2h, "
              "1h30m): after a 3-epoch probe the epoch count (at most --epochs) is fitted to it "
              "and the schedule rebuilt to end on time; kept in RUN/budget.json on resume.")
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option("--stop-after", type=click.IntRange(min=1), help="End this call after N more epochs; "
              "the schedule still spans --epochs and the same command without it resumes.")
@click.option("--out", required=True, help="Run folder, e.g. runs/NAME.")
@click.option("--overwrite", is_flag=True, help="Replace a run folder of another configuration.")
def train(data, val_data, data_opts, model, backbone,
          output_stride, weights, options, sigmoid, epochs,
          batch_size, repeat, image_size, crop, loss, loss_weights, focal_gamma, class_weights, learning_rate,
          weight_decay, optimizer, momentum, schedule, poly_power, warmup_epochs, early_stopping,
          precise_bn, ema, init_from,
          augment, copy_paste, copy_paste_classes, object_transform, cache,
          fast_data, strategy, mixed_precision, backend, jit_compile, time_budget, seed,
          stop_after, out, overwrite):
    """Train a model; the same command resumes an interrupted run."""
    current = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend and backend != current:  # the backend is fixed when keras is imported: re-run
        import subprocess

        if "train" not in sys.argv:
            raise click.UsageError("--backend needs the kseg command line (set KERAS_BACKEND "
                                   "when calling the library)")
        env = {**os.environ, "KERAS_BACKEND": backend}
        args = [sys.executable, "-m", "kseg.cli", *sys.argv[sys.argv.index("train"):]]
        sys.exit(subprocess.call(args, env=env))
    from kseg.data import DatasetError
    from kseg.models import ModelConfigError
    from kseg.train import RunConflictError, TrainConfig
    from kseg.train import train as run_training

    options = _parse_options(options)
    if time_budget is not None:
        from kseg.train.budget import parse_duration

        try:
            time_budget = parse_duration(time_budget)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--time-budget") from None
    for key, value in (("backbone", backbone), ("output_stride", output_stride), ("weights", weights)):
        if value is not None:
            options[key] = int(value) if key == "output_stride" else value
    try:
        config = TrainConfig(
            data=data, val_data=val_data, **data_opts, image_size=image_size, crop=crop or None,
            model=model, model_options=options, sigmoid=sigmoid, epochs=epochs,
            batch_size=batch_size, repeat=repeat, loss=loss, loss_weights=_floats(loss_weights, "--loss-weights"),
            focal_gamma=focal_gamma, class_weights=_class_weights(class_weights),
            learning_rate=learning_rate, weight_decay=weight_decay, optimizer=optimizer,
            momentum=momentum, schedule=schedule, poly_power=poly_power,
            warmup_epochs=warmup_epochs, early_stopping=early_stopping, precise_bn=precise_bn,
            ema=ema, init_from=init_from,
            augment=augment, copy_paste=copy_paste, object_transform=object_transform,
            object_classes=_split_classes(copy_paste_classes),
            cache=True if cache == "memory" else cache, deterministic=not fast_data, seed=seed,
            strategy=strategy, mixed_precision=mixed_precision, jit_compile=jit_compile,
            time_budget=time_budget,
        )
        result = run_training(config, out, overwrite=overwrite, stop_after=stop_after)
    except (DatasetError, ModelConfigError, RunConflictError, ValueError) as exc:
        _fail(exc)
    if not result.get("chief", True):
        click.echo("worker finished (the chief writes the run folder)")
        return
    click.echo(f"best val mIoU {result['best_val_miou']:.4f} (epoch {result['best_epoch']}); "
               f"run folder {result['run']}")


def _source_for(ref, data, split, data_opts):
    from kseg.data import open_source

    if data is None:
        if ref.config is None:
            raise click.UsageError("this model has no run folder; give --data")
        return ref.config.open_source(split)
    size = ref.input_size or (ref.config.image_size if ref.config else (128, 128))  # any size: the run's
    return open_source(data, split, **data_opts, image_size=size)


@main.command()
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
    """Score MODELS (run folders or .keras files): per-class IoU, mIoU, pixel accuracy. Several
    models are scored as one ensemble (the mean of their class probabilities)."""
    from kseg.data import DatasetError
    from kseg.inference import Ensemble, ModelRef, evaluate as run_eval, format_scores
    from kseg.models import ModelConfigError

    model = models[0] if len(models) == 1 else f"ensemble of {len(models)}"
    try:
        refs = [ModelRef(m) for m in models]
        ref = refs[0] if len(refs) == 1 else Ensemble(refs)
        if output_stride:
            ref = ref.rebuilt(output_stride=int(output_stride))
        source = _source_for(ref, data, split, data_opts)
        source.scan().raise_if_bad()
        result = run_eval(ref, source, tta=_tta(tta))
    except (DatasetError, FileNotFoundError, ValueError, ModelConfigError) as exc:
        _fail(exc)
    click.echo(format_scores(result, f"{ref.model_path} on {result['data']} ({result['images']} images)"))
    if json_path:
        from kseg.report.figures import save_confusion_matrix

        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
        png = os.path.splitext(json_path)[0] + "_confusion.png"
        save_confusion_matrix(result["confusion_matrix"], result["classes"], png,
                              title=f"{os.path.basename(str(model))} on {result['data']}")
        click.echo(f"wrote {json_path} and {png}")


@main.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--out", required=True, help="Folder for masks and overlays.")
@click.option("--tta", help="Test-time augmentation, e.g. flip,rotate=-5,5,scales=0.75,1,1.25; "
              "flip,turns: all 8 symmetries of the square.")
@click.option("--native", is_flag=True, help="Segment at each photo's own resolution (up to 4 "
              "megapixels) instead of at the model's size, which is what the exported files and "
              "kseg.runtime do.")
def predict(model, images, out, tta, native):
    """Segment IMAGES with MODEL; writes coloured masks, overlays and label PNGs."""
    from kseg.inference import ModelRef, predict_files

    try:
        written = predict_files(ModelRef(model), images, out, tta=_tta(tta), native=native)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    click.echo(f"wrote {len(written)} files to {out}")


@main.command()
@click.argument("run")
@click.option("--tflite", is_flag=True, help="Also write TFLite file(s) (SavedModel always).")
@click.option("--quantize", default="float32", show_default=True,
              help="Comma-separated TFLite modes: float32, float16, dynamic, int8.")
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
@click.option("--no-rescue", is_flag=True, help="Fail an int8 file over the budget instead of "
              "keeping its most quantization-hurt layers in float.")
def export(run, tflite, quantize, representative, output_kind, kseg_runtime_only, model_name,
           license_text, max_miou_drop, out, overwrite, verify_images, output_stride, no_rescue):
    """Export RUN's best model (SavedModel + TFLite), verified before it is kept."""
    from kseg.data import DatasetError
    from kseg.export import ExportError, export_run
    from kseg.report.tables import format_export
    from kseg.models import ModelConfigError

    try:
        modes = tuple(m.strip() for m in quantize.split(",") if m.strip()) if tflite else ()
        meta = export_run(run, out, modes=modes, overwrite=overwrite, output=output_kind,
                          representative=representative, max_miou_drop=max_miou_drop,
                          max_images=verify_images,
                          output_stride=int(output_stride) if output_stride else None,
                          rescue=not no_rescue, name=model_name, license=license_text,
                          kseg_runtime_only=kseg_runtime_only)
    except (ExportError, DatasetError, FileNotFoundError, ModelConfigError, ValueError) as exc:
        _fail(exc)
    click.echo(format_export(meta, out))


@main.command()
@click.argument("folder")
@click.option("--name", "model_name", help="Model name to embed (default: the folder's name).")
@click.option("--license", "license_text", default="", help="Licence text to embed.")
def upgrade(folder, model_name, license_text):
    """Make an exported FOLDER from an older kseg readable by MediaPipe and the Task Library
    (probabilities, signature, embedded metadata), without its run; scores do not change."""
    from kseg.contract import ContractError
    from kseg.export.upgrade import upgrade_folder

    try:
        done = upgrade_folder(folder, name=model_name, license=license_text, log=click.echo)
    except (ContractError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
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
    from kseg.contract import ContractError
    from kseg.demo import DemoError, build_demo, make_server

    out = out or os.path.join("demo", os.path.basename(os.path.normpath(folder)))
    try:
        build_demo(folder, out, runtime_dir=runtime_dir, sample=sample,
                   overwrite=overwrite or serve, log=click.echo)
    except (ContractError, DemoError, FileNotFoundError) as exc:
        _fail(exc)
    if not serve:
        click.echo(f"serve it with: kseg demo {folder} --out {out} --serve "
                   "(browsers refuse WASM from file://)")
        return
    try:
        server = make_server(out, port)
    except OSError as exc:
        _fail(f"cannot listen on 127.0.0.1:{port} ({exc}); try --port")
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

    try:
        rows = compare_runs(runs, last=last, upto=upto)
    except ValueError as exc:
        _fail(exc)
    click.echo(format_comparison(rows, last))


@main.command()
@click.argument("run")
@click.argument("dest")
def pack(run, dest):
    """Copy RUN to DEST without its optimizer state (to move a result off a training machine;
    DEST evaluates and exports, it cannot resume)."""
    from kseg.train.runs import pack as pack_run

    try:
        path = pack_run(run, dest)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    click.echo(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


@main.command()
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
    from kseg.data import DatasetError
    from kseg.orientation import report as orientation_report

    try:
        orientation_report(run, cls=cls, shift=shift, split=split, batch=batch,
                           no_model=no_model, per_image=per_image, log=click.echo)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        _fail(exc)


@main.command()
@click.argument("name", required=False)
def models(name):
    """The model families (or model NAME): what each is, and every -o option of `kseg train`
    with its default and meaning."""
    from kseg.models import ModelConfigError, registry

    try:
        click.echo(registry.catalogue(name))
    except ModelConfigError as exc:
        _fail(exc)


@main.command()
@click.argument("run")
def report(run):
    """(Re)write RUN/report.html: curves, per-class IoU, confusion matrix, sample overlays."""
    from kseg.data import DatasetError
    from kseg.report.run_page import write_report

    try:
        write_report(run, log=click.echo)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        _fail(exc)


@main.command()
@click.argument("folder")
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs per file.")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--threads", default="1,2", show_default=True, help="Thread counts to time.")
@click.option("--no-keras", is_flag=True, help="Skip the Keras baseline.")
@click.option("--doc", default=None, help="Also append the table, with the command, to this "
              "Markdown file (e.g. docs/benchmarks.md); by default it is only printed.")
def benchmark(folder, runs, warmup, threads, no_keras, doc):
    """Latency of every file in an exported FOLDER (median, p90) beside the Keras model."""
    from kseg.contract import ContractError
    from kseg.export.benchmark import benchmark_folder, command_line, format_rows

    try:
        counts = tuple(int(t) for t in threads.split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"{threads!r}: expected e.g. 1,2", param_hint="--threads") from None
    if runs < 1 or not counts or min(counts) < 1:
        raise click.BadParameter("runs and thread counts must be positive")
    try:
        rows = benchmark_folder(folder, runs=runs, warmup=warmup, threads=counts,
                                keras=not no_keras, log=lambda m: click.echo(m, err=True))
    except (ContractError, FileNotFoundError) as exc:
        _fail(exc)
    table = format_rows(rows, folder, runs, command=command_line())
    click.echo(table)
    if doc:
        from kseg.report.tables import write_section

        write_section(doc, f"kseg benchmark {folder}", table, replace=False)
        click.echo(f"appended to {doc}")


@main.group()
def data():
    """Dataset tools."""


@data.command("check")
@click.argument("path")
@click.option("--split", default=None, help="Check only this split (default: every split the "
              "dataset has: train, val, test).")
@data_options
def data_check(path, split, data_opts):
    """Scan a dataset: counts, sizes, per-class pixel shares; exit 1 if anything is wrong."""
    from kseg.data import DatasetError, check_splits

    try:
        reports = check_splits(path, [split] if split else None, **data_opts)
    except DatasetError as exc:
        _fail(exc)
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
        _fail("\n".join(bad))


@main.command()
@click.option("--out", default="runs/quickstart", show_default=True)
@click.option("--epochs", type=int, default=None, help="Override the recipe's epoch count.")
def quickstart(out, epochs):
    """The main job on the built-in data: train -> export -> verify -> results table."""
    from kseg.quickstart import run

    try:
        run(out, epochs=epochs)
    except Exception as exc:  # report, do not dump a traceback at a first-time user
        _fail(exc)


if __name__ == "__main__":
    main()
