"""``export_run``: the library behind ``kseg export``.

Everything is written into a hidden temporary folder beside the destination and verified there;
only a verified export is moved into place (``kseg.files.atomic_folder``), so an interrupted or
failed export never leaves a half-written folder under the destination name, and a replaced one
is never lost. One export writes a destination at a time (``kseg.files.Lock``).
"""

import logging
import functools
import json
from pathlib import Path

from kseg import __version__, interrupts
from kseg.contract import METADATA, make_metadata, tflite_name
from kseg.data.pipeline import evaluation_dataset
from kseg.errors import KsegError
from kseg.export import gpu_delegate, savedmodel, tflite, tflite_metadata
from kseg.export import npu as npu_compiler
from kseg.export.verify import verify
from kseg.files import Lock, atomic_folder
from kseg.models import load_model, rebuild
from kseg.quiet import quiet_stderr
from kseg.train.config import TrainConfig
from kseg.train.rundir import RunDir

logger = logging.getLogger(__name__)

MIN_AGREEMENT = 0.995
MAX_MIOU_DROP = 1.0  # mIoU points a quantized file may lose against the Keras model


class ExportError(KsegError, RuntimeError):
    """An export that failed verification or could not be written."""


def _holding_out(export):
    """``export(run_path, out, ...)`` run while it holds the lock of ``out`` (a second export to
    the same folder is refused at once), with SIGTERM handled as Ctrl-C (the temporary folder is
    removed, ``out`` is left as it was)."""

    @functools.wraps(export)
    def locked(run_path, out, **kwargs):
        try:
            with interrupts.sigterm_as_interrupt(), Lock(
                    out, advice="wait for it to finish or stop it (kill {pid}), or export to "
                    "another --out"):
                return export(run_path, out, **kwargs)
        except KeyboardInterrupt as exc:
            logger.warning("interrupted (%s): %s is as it was before this export; the same "
                           "command exports again", interrupts.how(exc), out)
            raise

    return locked


def representative_images(config, count):
    """Up to ``count`` training images at the export size (for int8 calibration), spread over the
    set in a fixed pseudo-random order (read in one pass, so sources that only stream work too)."""
    import numpy as np

    from kseg.resize import resize_image

    train = config.open_source("train")
    order = np.random.default_rng(config.seed).permutation(len(train))[: int(count)]
    return [resize_image(image, config.image_size) for _, image, _ in train.iter_numpy(order)]


@_holding_out
def export_run(run_path, out, *, modes=("float32",), overwrite=False, output="scores",
               min_agreement=MIN_AGREEMENT, max_miou_drop=MAX_MIOU_DROP, representative=200,
               max_images=None, output_stride=None, rescue=True, name=None, license="",
               kseg_runtime_only=False, resolution="full", npu=None, checkpoint="best",
               log=logger.info):
    """Export the best checkpoint of the run at ``run_path`` (by val mIoU; ``checkpoint="last"``:
    the last epoch's, for a run whose validation data is inside its training data, as a final
    model trained on train+val) to the folder ``out``.

    Float files (float32, float16) must agree with the Keras argmax on ``min_agreement`` of the
    validation pixels; quantized ones (dynamic, int8, int8-npu) and every file at
    ``resolution="model"`` may lose at most ``max_miou_drop`` mIoU points against Keras; an int8 file that loses more is rescued
    (``rescue``: its most hurt layers kept in float, see ``kseg.export.rescue``) when possible.
    An ``int8-npu`` file must hold no float operator. Returns the metadata dict (also written to
    ``out/metadata.json``). Raises ``ExportError`` when a file fails; nothing is left at ``out``
    in that case.

    ``resolution="model"`` ends every file at the network's own stride (``kseg.export.forms``);
    files are scored as a client shows them (scores upsampled bilinearly to the image, then the
    argmax) against the Keras model at full resolution. ``npu`` (a Vela accelerator config, e.g.
    ``ethos-u65-256``) compiles each full-integer file with Vela and records what it reports
    (``kseg.export.npu``).

    Every ``scores`` file carries standard TFLite metadata (``kseg.export.tflite_metadata``: model
    ``name`` (default: the folder's name), description, version, ``license``, the class names as
    its labels file) and ends in probabilities, so MediaPipe Tasks and the TFLite Task Library use
    it as it is. ``output="labels"`` puts the argmax in the graph: no client reads that shape, so
    it needs ``kseg_runtime_only=True`` and its files carry no client metadata.
    """
    _check_request(modes, output, kseg_runtime_only, resolution, npu, log)
    out = Path(out)
    run, config, classes, trained = _open_run(run_path, out, overwrite)
    model, model_options, model_path = _load_model(run, config, output_stride, checkpoint)
    height, width = config.image_size
    log(f"exporting {model_path} ({height}x{width}, {len(classes)} classes) to {out}")

    with atomic_folder(out) as tmp:
        with quiet_stderr():
            savedmodel.save(model, tmp / "saved_model", height, width)
        calib = _calibration(config, modes, representative, log)
        files = _convert(model, tmp, modes, calib, output, resolution)
        results, val, ds = _verify(model, files, config, classes, max_images, log)
        held_out = _validation_held_out(config, log)
        if "int8" in modes and rescue and results["int8"]["miou_drop_points"] > max_miou_drop:
            results["int8"] = _rescue_int8(model, height, width, calib, output, files["int8"], ds,
                                           classes, config.ignore_index,
                                           results["keras"]["miou"], max_miou_drop,
                                           results["int8"], log, resolution)
        _check_budget(results, files, min_agreement, max_miou_drop, resolution)
        embedded = _describer(config, classes, name or out.name, license, output,
                              _output_note(model, resolution))(files)
        for m in modes:  # the metadata embedded after verification changed the sizes
            results[m]["size_bytes"] = files[m].stat().st_size
        compiled = _compile_npu(files, npu, log)
        scores_size, stride = _output_geometry(model, output, resolution)
        meta = make_metadata(
            classes, height, width, output, config.ignore_index,
            model={"name": config.model, "options": model_options,
                   "checkpoint": _named_in_run(model_path, run), "run": run.path.resolve().name,
                   "training": trained},
            kseg_version=__version__,
            metrics={"validation_data": val.where, "validation_held_out": held_out, **results},
            embedded=embedded, gpu_delegate={m: gpu_delegate.unsupported(files[m]) for m in modes},
            output_size=scores_size, stride=stride, npu=compiled,
        )
        (tmp / METADATA).write_text(json.dumps(meta, indent=2))
        if out.exists() and not overwrite:  # written meanwhile by something other than kseg
            raise ExportError(f"{out} already exists; pass --overwrite to replace it")
    return meta


def _check_request(modes, output, kseg_runtime_only, resolution, npu, log):
    """Refuse an export that cannot be written, before any slow work."""
    from kseg.export import forms

    if output == "labels" and not kseg_runtime_only:
        raise ExportError(
            "--output labels writes [1, H, W] class indices, which MediaPipe and the TFLite Task "
            "Library cannot read (MediaPipe misreads them without an error). The default output "
            "(probabilities) works everywhere: the category mask is its argmax, and kseg.runtime's "
            "Segmenter returns labels from it. Add --kseg-runtime-only to write a labels file anyway.")
    if output == "labels":
        log("warning: --output labels: the files are for kseg.runtime only (no client metadata; "
            "MediaPipe and the Task Library cannot read them)")
    unknown = [m for m in modes if m not in tflite.MODES]
    if unknown:
        raise ExportError(f"unknown TFLite mode(s) {', '.join(unknown)}; available: {', '.join(tflite.MODES)}")
    if resolution not in forms.RESOLUTIONS:
        raise ExportError(f"unknown output resolution {resolution!r}; available: "
                          f"{', '.join(forms.RESOLUTIONS)}")
    if resolution != "full" and output != "scores":
        raise ExportError("--output-resolution model needs --output scores (a client upsamples "
                          "the scores, then takes the argmax)")
    full_integer = [m for m in modes if m in tflite.FULL_INTEGER]
    if full_integer and output != "scores":
        raise ExportError(f"{', '.join(full_integer)} files return probabilities; use --output "
                          "scores")
    if npu:
        if not full_integer:
            raise ExportError(f"--npu compiles the full-integer file: add "
                              f"{tflite.FULL_INTEGER[0]} to --quantize")
        npu_compiler.require_vela()


def _open_run(run_path, out, overwrite):
    """(run, its TrainConfig, class names, training record) of the run folder at ``run_path``."""
    run = RunDir(run_path)
    if not run.exists:
        raise ExportError(f"{run_path}: not a kseg run folder (no config.json)")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it")
    config = TrainConfig.from_json(run.config(), where=str(run.file("config.json")))
    classes = run.config()["classes"]
    trained = training_record(run)  # a damaged sessions.json fails here, before the slow work
    return run, config, classes, trained


CHECKPOINTS = ("best", "last")


def _load_model(run, config, output_stride, checkpoint="best"):
    """(model, its options, checkpoint path): the run's best weights in a float32 model built for
    the export size (a model trained on crops takes any size; a mixed-precision run), at another
    output stride if asked (DeepLab)."""
    height, width = config.image_size
    if checkpoint not in CHECKPOINTS:
        raise ExportError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    model_path = run.best_model_path() if checkpoint == "best" else run.file("last.keras")
    if not model_path.is_file():
        raise ExportError(f"{model_path}: missing (has the run finished an epoch?)")
    model = load_model(model_path, compile=False)
    model, model_options = rebuild(model, config.model, config.model_options,
                                   input_shape=(height, width, 3), output_stride=output_stride)
    return model, model_options, model_path


def _calibration(config, modes, count, log):
    """Representative training images for the integer modes (None when no mode needs them)."""
    if not any(m in ("int8", *tflite.FULL_INTEGER) for m in modes):
        return None
    calib = representative_images(config, count)
    log(f"int8: calibrating on {len(calib)} training images")
    return calib


def _convert(model, folder, modes, calib, output, resolution):
    """{mode: path} of the converted files written into ``folder``."""
    height, width = (int(d) for d in model.input.shape[1:3])
    files = {}
    for mode in modes:
        path = folder / tflite_name(mode)
        path.write_bytes(tflite.convert(model, height, width, mode, representative=calib,
                                        output=output, resolution=resolution))
        files[mode] = path
    return files


def _verify(model, files, config, classes, max_images, log):
    """(verification results with each file's mIoU drop against Keras, the validation source,
    the dataset scored)."""
    val = config.open_source("val")
    ds = evaluation_dataset(val, config.image_size, batch_size=8)
    if max_images:
        ds = ds.unbatch().take(int(max_images)).batch(8)
    results = verify(model, files, ds, len(classes), config.ignore_index)
    log(f"verified on {results['images']} validation images of {val.where}")
    keras_miou = results["keras"]["miou"]
    for m in files:
        results[m]["miou_drop_points"] = 100 * (keras_miou - results[m]["miou"])
    return results, val, ds


def _validation_held_out(config, log):
    """False, with a note, when the run trained on its validation split too (``camvid:PATH:
    train+val``, a final model): its files are still checked against Keras on those images, but
    the scores say nothing of how the model does on new images."""
    split = str(getattr(config.open_source("train"), "split", ""))
    if "val" not in split.split("+"):
        return True
    log(f"note: the run trained on {split}: the validation scores check the files against Keras, "
        "they are not held-out scores")
    return False


def _check_budget(results, files, min_agreement, max_miou_drop, resolution="full"):
    """Raise ``ExportError`` naming every file that fails its gate: quantized files and files at
    the network's stride their mIoU budget (what a client shows against Keras at full
    resolution: upsampled scores differ from Keras' near the padded edge), full-resolution float
    files their argmax agreement, full-integer files any float operator."""
    failures = []
    for m, path in files.items():
        r = results[m]
        if (m in tflite.QUANTIZED or resolution != "full") and r["miou_drop_points"] > max_miou_drop:
            extra = (f"; {len(r['float_layers'])} layers kept in float did not rescue it"
                     if r.get("float_layers") else "")
            failures.append(f"{tflite_name(m)}: loses {r['miou_drop_points']:.2f} mIoU points "
                            f"against Keras (allowed {max_miou_drop}){extra}")
        elif (m not in tflite.QUANTIZED and resolution == "full"
              and r["agreement"] < min_agreement):
            failures.append(f"{tflite_name(m)}: argmax agrees with Keras on {r['agreement']:.2%} "
                            f"of pixels (needs {min_agreement:.2%})")
        if m in tflite.FULL_INTEGER:
            floats = tflite.float_operators(path)
            if floats:
                failures.append(f"{tflite_name(m)}: float operators {', '.join(sorted(set(floats)))} "
                                "in a full-integer file")
    if failures:
        raise ExportError("verification failed, nothing exported:\n  " + "\n  ".join(failures))


def _compile_npu(files, accelerator, log):
    """{mode: Vela's record} for each full-integer file compiled for ``accelerator`` (the
    compiled file written beside it); None without ``accelerator``."""
    if not accelerator:
        return None
    records = {}
    for mode, path in files.items():
        if mode in tflite.FULL_INTEGER:
            log(f"compiling {path.name} for {accelerator} with Vela")
            records[mode] = npu_compiler.compile_file(path, accelerator)
            log(npu_compiler.format_record(path.name, records[mode]))
    return records


def _output_geometry(model, output, resolution):
    """((h, w) of the scores, stride) an export at ``resolution`` writes."""
    from kseg.export import forms

    if output != "scores" or resolution == "full":
        return None, 1
    low, stride = forms.at_model_resolution(model)
    return tuple(int(d) for d in low.output.shape[1:3]), stride


def _output_note(model, resolution):
    """The sentence the embedded description adds for scores smaller than the input."""
    size, stride = _output_geometry(model, "scores", resolution)
    if size is None or stride == 1:
        return ""
    return (f" The probabilities come at {size[0]}x{size[1]} (1/{stride} of the input); "
            "upsample them bilinearly to the image, then take the argmax (MediaPipe Tasks "
            "does this itself).")


def _describer(config, classes, name, license, output, note=""):
    """``describe(files)``: embeds the standard TFLite metadata into each file of ``files``
    ({mode: path}, verified already; the metadata does not touch the graph) and returns what was
    embedded, for metadata.json. A labels export embeds nothing. ``note`` ends the description."""

    def describe(files):
        if output != "scores" or not files:
            return None
        record = {
            "name": name,
            "description": (f"{config.model} semantic segmentation, {len(classes)} classes "
                            f"({', '.join(classes)}); input {config.image_size[0]}x"
                            f"{config.image_size[1]} RGB uint8, output per-class probabilities. "
                            f"Trained and exported with kseg {__version__}.{note}"),
            "version": __version__,
            "author": "kseg",
            "license": license,
        }
        for path in files.values():
            data = tflite_metadata.embed(path.read_bytes(), classes=classes, **record)
            path.write_bytes(data)
        return {**record, "labels_file": tflite_metadata.LABELS_FILE, "labels": list(classes),
                "activation": "none (the graph ends in a softmax)",
                "normalization": {"mean": [0.0], "std": [1.0]}}

    return describe


def training_record(run, depth=4):
    """What trained ``run`` (its sessions.json), and the same for the run its weights started from
    (``--init-from``), followed ``depth`` runs back."""
    record = {"run": run.path.resolve().name, "sessions": run.sessions()}
    source = run.config().get("init_from")  # as typed to kseg train, from its working folder
    if source:
        found = _located(source, run.path)
        folder = found if found.is_dir() else found.parent
        if folder.name == "checkpoints":  # RUN/checkpoints/epoch-K.keras
            folder = folder.parent
        parent = RunDir(folder)
        record["init_from"] = (training_record(parent, depth - 1) if depth > 1 and parent.exists
                               else {"run": Path(source).name})
    return record


def _named_in_run(path, run):
    """``RUN_NAME/best.keras``: a file of the run by the run's name, not the training machine's
    path (metadata.json travels with the files)."""
    run_path = run.path.resolve()
    return str(Path(run_path.name) / Path(path).resolve().relative_to(run_path))


def _located(source, run_path):
    """``source``, a path as typed to ``kseg train`` in some working folder: as it stands from
    here, else from the nearest folder above ``run_path`` that holds it (``kseg train --init-from
    runs/a --out runs/b`` typed in the folder above runs/, exported from anywhere)."""
    path = Path(source)
    if path.is_absolute() or path.exists():
        return path
    for base in Path(run_path).resolve().parents:
        if (base / path).exists():
            return base / path
    return path


def _rescue_int8(model, height, width, calib, output, path, ds, classes, ignore_index, keras_miou,
                 budget, first, log, resolution="full"):
    """Selective quantization of the int8 file at ``path`` until its mIoU drop fits ``budget``;
    returns its verification entry (with ``float_layers`` and the ``rescue`` tries)."""
    from kseg.export.rescue import rescue as find_float_layers

    log(f"int8 loses {first['miou_drop_points']:.2f} mIoU points (budget {budget}): "
        "looking for the layers quantization hurts most")
    last = {}

    def measure(data):
        path.write_bytes(data)
        last["result"] = verify(model, {"int8": path}, ds, len(classes), ignore_index)["int8"]
        return 100 * (keras_miou - last["result"]["miou"])

    data, layers, drop, tries = find_float_layers(
        lambda: tflite.make_converter(model, height, width, "int8", calib, output, resolution),
        calib[:32], measure, budget, log=log, finish=lambda d: tflite.finish(d, output))
    if data is None:
        return {**first, "float_layers": layers, "rescue": tries}
    path.write_bytes(data)
    result = dict(last["result"])
    result["miou_drop_points"] = drop
    result["float_layers"] = layers
    result["rescue"] = tries
    result["size_bytes"] = path.stat().st_size
    return result
