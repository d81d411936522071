"""``train(config, out)``: the library behind ``kseg train``; ``Training`` holds its steps.

Data are checked before anything is built; the run folder is created or resumed (see ``rundir``);
the model is built through the registry, or reloaded with its optimizer state from the last
committed epoch; ``fit`` runs with the deterministic per-epoch input pipeline. ``Devices`` says
where (backend, tf.distribute strategy, chief or worker), explicitly.
"""

import contextlib
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

import keras

from kseg import __version__, interrupts, losses, metrics, models
from kseg.data import DatasetError
from kseg.data.balance import class_weights
from kseg.errors import ConfigError
from kseg.files import write_json_atomic
from kseg.train.callbacks import (AveragedWeights, CommitEpoch, EarlyStopOnMiou, OverlaySamples,
                                  StopOnNonFinite, epochs_since_best)
from kseg.train.config import TrainConfig
from kseg.train.distribute import fit_distributed, is_chief, is_multiworker, make_strategy
from kseg.train.precise_bn import PreciseBatchNorm, training_batches
from kseg.train import budget
from kseg.train.rundir import RunDir, read_json
from kseg.train.schedules import make_optimizer, make_schedule

logger = logging.getLogger(__name__)


def open_checked_sources(config):
    """(train, val, train report): sources of ``config``, each fully checked; raises
    ``DatasetError`` naming the files and problems of a bad dataset."""
    train_src = config.open_source("train")
    val_src = config.open_source("val")
    train_report = train_src.scan()
    train_report.raise_if_bad()
    val_src.scan().raise_if_bad()
    if tuple(train_src.classes) != tuple(val_src.classes):
        raise DatasetError(
            val_src.where,
            [(val_src.where, f"classes {list(val_src.classes)} differ from the training "
                             f"data's {list(train_src.classes)}")],
        )
    return train_src, val_src, train_report


def resolve_class_weights(config, report):
    """The per-class weights ``config.class_weights`` asks for (a method is computed from the
    training labels), or None."""
    cw = config.class_weights
    if cw is None:
        return None
    if isinstance(cw, list):
        if len(cw) != len(report.classes):
            raise ConfigError(f"{len(cw)} class weights given for {len(report.classes)} classes")
        return cw
    return class_weights(report, cw)


def build_model(config, num_classes):
    if config.sigmoid and num_classes != 2:
        raise ConfigError(f"--sigmoid is for binary tasks (2 classes); the data has {num_classes}")
    # trained on crops, validated on whole images: a model of any input size
    input_shape = (None, None, 3) if config.crop else (*config.image_size, 3)
    return models.build(
        config.model,
        num_classes=1 if config.sigmoid else num_classes,
        input_shape=input_shape,
        **config.model_options,
    )


def init_model_path(source):
    """The .keras file that ``--init-from SOURCE`` names (a run folder's best checkpoint)."""
    path = Path(source)
    if path.is_dir():
        try:
            return RunDir(path).best_model_path()
        except FileNotFoundError as exc:
            raise ConfigError(f"--init-from: {exc}") from None
    if not path.is_file():
        raise ConfigError(f"--init-from {source}: no such run folder or .keras file")
    return path


def init_weights(model, source):
    """Copy weights from ``source`` (a run folder or .keras file) into ``model``, layer by layer
    where name and weight shapes match; returns a one-line account. Fails if nothing matches."""
    path = init_model_path(source)
    try:
        donor = models.load_model(path, compile=False, training=True)  # with any heads
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source}: cannot load a model to start from ({exc})") from None
    donors = {layer.name: layer for layer in donor.layers}
    copied, skipped = 0, []
    for layer in model.layers:
        if not layer.weights:
            continue
        other = donors.get(layer.name)
        if other is None or [w.shape for w in other.weights] != [w.shape for w in layer.weights]:
            skipped.append(layer.name)
            continue
        layer.set_weights(other.get_weights())
        copied += 1
    if not copied:
        raise ConfigError(f"{source}: no layer of it matches this model by name and shape")
    return (f"weights from {path}: {copied} layers copied"
            + (f", {len(skipped)} kept fresh ({', '.join(skipped[:5])}"
               f"{', ...' if len(skipped) > 5 else ''})" if skipped else ""))


def make_loss(config, weights, aux_strides=()):
    """The training loss of ``config``; with ``--teacher``, wrapped in the distillation term;
    with auxiliary heads (their ``aux_strides``), the same loss on each, weighted by
    ``--aux-loss-weight``."""
    base = losses.get(
        config.loss, loss_weights=config.loss_weights, ignore_index=config.ignore_index,
        class_weights=weights, focal_gamma=config.focal_gamma,
    )
    loss = base
    if config.teacher:
        loss = losses.Distillation(loss, weight=config.distill_weight,
                                   temperature=config.distill_temperature,
                                   ignore_index=config.ignore_index)
    if aux_strides:
        loss = losses.DeepSupervision(loss, base, [config.aux_loss_weight] * len(aux_strides),
                                      aux_strides)
    return loss


def auxiliary_taps(config):
    """``{layer: stride}`` of the auxiliary heads that ``--aux-loss-weight`` asks for (empty
    without it); a model that has none is a ``ConfigError``."""
    if not config.aux_loss_weight:
        return {}
    taps = models.auxiliary_taps(config.model)
    if not taps:
        with_heads = [m for m in models.names() if models.auxiliary_taps(m)]
        raise ConfigError(f"--aux-loss-weight: model {config.model} has no auxiliary heads "
                          f"(models with them: {', '.join(with_heads)})")
    return taps


def build_training_model(config, num_classes):
    """The model of ``config``, with the auxiliary heads ``--aux-loss-weight`` asks for."""
    model = build_model(config, num_classes)
    taps = auxiliary_taps(config)
    return models.auxiliary.add_heads(model, taps) if taps else model


def compile_model(model, config, num_classes, steps_per_epoch, weights=None):
    aux = models.auxiliary.strides(model)
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=make_loss(config, weights, aux),
        metrics=[metrics.ConfusionMatrix(num_classes, config.ignore_index, aux_strides=aux)],
        jit_compile=use_jit(config),
    )
    return model


def use_jit(config):
    """XLA for the train step: asked for, or always under JAX, where a step that is not jitted
    runs op by op from Python (measured on an H200: 3 s per DeepLabv3+ step instead of 45-75 ms).
    Off by default under TensorFlow (slower on CPUs: docs/training.md)."""
    return bool(config.jit_compile) or keras.backend.backend() == "jax"


def precision_policy(config):
    """The Keras dtype policy of the run: float32, or mixed — float16 (with loss scaling) on a
    TensorFlow GPU, bfloat16 on CPUs and under JAX."""
    if not config.mixed_precision:
        return "float32"
    if keras.backend.backend() != "tensorflow":
        return "mixed_bfloat16"
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def _datasets(config, train_src, val_src, global_batch, done, teacher=None):
    """(training data, validation data, steps per epoch) for the active Keras backend: tf.data
    under TensorFlow, a TensorFlow-free PyDataset otherwise (JAX). With a ``teacher``
    (``kseg.data.teacher.Teacher``) the training targets carry its probabilities."""
    augmentation = config.augmentation(list(train_src.classes))
    if keras.backend.backend() == "tensorflow":
        from kseg.data.pipeline import evaluation_dataset, training_dataset

        train_ds, steps = training_dataset(
            train_src, config.image_size, global_batch, epochs=config.epochs, initial_epoch=done,
            seed=config.seed, augment=augmentation, cache=config.cache,
            deterministic=config.deterministic, repeat=config.repeat, teacher=teacher,
        )
        val_ds = evaluation_dataset(val_src, config.image_size, config.batch_size,
                                    cache=config.cache)
        return train_ds, val_ds, steps
    from kseg.data.numpy_pipeline import EvalBatches, TrainBatches

    train_ds = TrainBatches(train_src, config.image_size, global_batch, initial_epoch=done,
                            seed=config.seed, augment=augmentation, cache=config.cache,
                            repeat=config.repeat, teacher=teacher)
    val_ds = EvalBatches(val_src, config.image_size, config.batch_size, cache=config.cache)
    return train_ds, val_ds, train_ds.steps


class Devices:
    """Where a run trains: the Keras ``backend``, its tf.distribute ``strategy`` (TensorFlow;
    JAX trains on one device and has none), the replicas in sync, and whether this process is
    one worker of several (``multiworker``) and the one that writes the run folder (``chief``).
    """

    def __init__(self, config):
        self.backend = keras.backend.backend()
        if self.backend == "tensorflow":
            self.strategy = make_strategy(config.strategy)  # before any other TensorFlow op
        elif config.strategy in ("auto", "default"):
            self.strategy = None
        else:
            raise ConfigError(f"--strategy {config.strategy} is a TensorFlow strategy; the "
                              f"{self.backend} backend trains on one device")
        self.replicas = self.strategy.num_replicas_in_sync if self.strategy is not None else 1
        self.multiworker = self.strategy is not None and is_multiworker(self.strategy)
        self.chief = is_chief()

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def train(config: TrainConfig, out, overwrite=False, verbose=None, log=None, report=True,
          stop_after=None):
    """Train (or resume) the run at ``out``; returns a summary dict. ``stop_after`` ends this
    call after that many more epochs (the schedule still spans ``config.epochs``; the same call
    without it resumes). ``log``: where progress lines go (default: the ``kseg`` logger)."""
    return Training(config, out, overwrite=overwrite, verbose=verbose, log=log,
                    report=report)(stop_after)


class Training:
    """One ``kseg train`` call on the run folder ``out``.

    Calling it runs, under the run folder's lock and with SIGTERM handled as Ctrl-C: the
    ``--time-budget`` loop (``fit_in_budget``: probe, plan, fit) or one ``fit``, whose named
    steps are: open and check the data, prepare (or resume) the run folder, stop if nothing is
    left to do, the input pipelines, the model (built, or reloaded from the last committed
    epoch), the callbacks, ``model.fit`` (a custom loop under multi-worker), the summary.
    """

    def __init__(self, config, out, *, overwrite=False, verbose=None, log=None, report=True):
        self.config = config
        self.run = RunDir(out)
        self.overwrite = overwrite  # consumed by the first fit of the call
        self.verbose = verbose
        self.log = log or logger.info
        self.report = report
        self.devices = Devices(config)
        self.policy = precision_policy(config)
        if config.time_budget and self.devices.multiworker:
            raise ConfigError("--time-budget fits the epoch count on one machine's clock; with "
                              "several workers give --epochs instead")

    def __call__(self, stop_after=None):
        if stop_after is not None and int(stop_after) < 1:
            raise ConfigError(f"stop_after must be at least 1 epoch, got {stop_after}")
        keras.mixed_precision.set_global_policy(self.policy)
        lock = self.run.lock() if self.devices.chief else contextlib.nullcontext()
        try:
            with interrupts.sigterm_as_interrupt(), lock:
                if self.config.time_budget:
                    return self.fit_in_budget(stop_after)
                return self.fit(stop_after)
        except KeyboardInterrupt as exc:
            self.log(_interrupted(self.run.path, exc))
            raise
        finally:
            keras.mixed_precision.set_global_policy("float32")

    # --- --time-budget: probe -> plan -> fit ---

    def fit_in_budget(self, stop_after=None):
        """Probe the epoch cost on the first epochs, fit the epoch count to the budget (kept in
        the run's budget.json, so a resumed call keeps it), then train the rest."""
        plan = self._budget_plan()
        if plan is None:
            probe = min(budget.PROBE_EPOCHS, self.config.epochs)
            if stop_after is not None and int(stop_after) < probe:  # the call ends in the probe
                return self.fit(stop_after)
            started = time.time()
            before, spent = self._epochs_spent()
            probed = self.fit(probe - before if before < probe else 1, report=False)
            if probe < 2 or self.run.state()["epoch"] < probe:  # too short to fit, or stopped
                return probed
            if stop_after is not None:
                stop_after = int(stop_after) - (probe - before)
                if stop_after < 1:
                    return probed
            plan = self._plan(probe, time.time() - started + spent)
        self.config = dataclasses.replace(self.config, epochs=int(plan["epochs"]))
        return self.fit(stop_after)

    def _budget_plan(self):
        plan_file = self.run.file(budget.BUDGET_FILE)
        if plan_file.is_file() and not self.overwrite:
            return read_json(plan_file)
        return None

    def _epochs_spent(self):
        """(epochs already committed, their seconds): a killed or stopped earlier call's epochs
        count against the budget too."""
        if not self.run.exists or self.overwrite:
            return 0, 0.0
        before = self.run.state()["epoch"]
        return before, sum(float(e.get("seconds", 0.0)) for e in self.run.metrics()[:before])

    def _plan(self, probe, elapsed):
        config = self.config
        epochs, per_epoch = budget.fit_epochs(
            self.run.metrics(), float(config.time_budget), elapsed, probe,
            float(os.environ.get("KSEG_RETRACE_S", budget.RETRACE_S)))
        epochs = min(epochs, config.epochs)
        plan = {"epochs": epochs, "seconds_per_epoch": per_epoch,
                "budget_s": float(config.time_budget), "probe_epochs": probe}
        write_json_atomic(self.run.file(budget.BUDGET_FILE), plan)
        self.log(f"time budget: {per_epoch:.1f} s per epoch -> {epochs} epochs in "
                 f"{float(config.time_budget):.0f} s (at most --epochs {config.epochs})")
        return plan

    # --- one fit, in steps ---

    def fit(self, stop_after=None, report=None):
        """Train up to ``config.epochs`` (or ``stop_after`` more); the run's summary."""
        config, devices = self.config, self.devices
        train_src, val_src, weights = self.open_data()
        state = self.prepare_run(train_src)
        done = state["epoch"]
        finished = self.nothing_left(state)
        if finished is not None:
            return finished
        if devices.chief:
            self.run.add_session(session_entry(done, devices.replicas, self.policy))
        keras.utils.set_random_seed(config.seed + done)
        teacher = self.teacher(len(train_src.classes))
        train_ds, val_ds, steps = _datasets(config, train_src, val_src,
                                            config.batch_size * devices.replicas, done, teacher)
        model = self.model(done, steps, len(train_src.classes), weights)
        self.describe(model, train_src, val_src, weights, steps, teacher)
        callbacks = self.callbacks(state, steps, train_src, val_ds)
        t0 = time.time()
        end = config.epochs if stop_after is None else min(config.epochs, done + int(stop_after))
        self.run_fit(model, train_ds, val_ds, done, end, steps, callbacks,
                     len(train_src.classes))
        if not devices.chief:
            return {"run": str(self.run.path), "chief": False, "weights": model.get_weights()}
        return self.result(t0, self.report if report is None else report)

    def open_data(self):
        """(train source, val source, class weights or None), every pair checked first."""
        config = self.config
        train_src, val_src, report = open_checked_sources(config)
        weights = resolve_class_weights(config, report)
        for warning in report.warnings():
            self.log(f"warning: {report.where}: {warning}")
        if config.init_from:
            init_model_path(config.init_from)  # fail before the run folder is written
        auxiliary_taps(config)
        return train_src, val_src, weights

    def prepare_run(self, train_src):
        """The state to start from: of a new run folder (written by the chief), or of this
        configuration's run to resume, its checkpoints checked (``RunDir.resume_state``)."""
        if not self.devices.chief:
            return self.run.state()
        cfg = self.config.to_json()
        cfg["classes"] = list(train_src.classes)
        self.run.prepare(cfg, overwrite=self.overwrite, normalize=_normalized)
        self.overwrite = False
        return self.run.resume_state(self.log)

    def nothing_left(self, state):
        """The run's summary when it has finished all its epochs or stopped early, else None."""
        config, run, done = self.config, self.run, state["epoch"]
        if done >= config.epochs:
            self.log(f"{run.path}: all {config.epochs} epochs already finished (best val mIoU "
                     f"{state['best_miou']:.4f}); nothing to do")
            return summary(run)
        if (config.early_stopping and done
                and epochs_since_best(run.metrics()) >= config.early_stopping):
            self.log(f"{run.path}: stopped early after epoch {done} (no better val mIoU for "
                     f"{config.early_stopping} epochs); nothing to do (a larger "
                     f"--early-stopping, or none, trains on)")
            return summary(run)
        return None

    def teacher(self, num_classes):
        """The distillation teacher (``--teacher``), or None."""
        if not self.config.teacher:
            return None
        from kseg.data.teacher import Teacher
        from kseg.train.distill import teacher_file

        return Teacher(teacher_file(self.config, self.run, self.log), num_classes=num_classes)

    def model(self, done, steps, num_classes, weights):
        """The model to train: built and compiled (from ``--init-from`` weights if asked), or the
        last checkpoint of a resumed run with its schedule rebuilt over the whole run."""
        config, run = self.config, self.run
        with self.devices.scope():
            if done:
                self.log(f"resuming {run.path} after epoch {done} from {run.checkpoint_path()}")
                model = models.load_model(run.checkpoint_path(), training=True)
                model.jit_compile = use_jit(config)  # checkpoints of older kseg stored False
                # the schedule spans the whole run: follow a raised --epochs (on the optimizer
                # that steps: mixed float16 wraps it in a LossScaleOptimizer)
                inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
                inner.learning_rate = make_schedule(config, steps)
                return model
            model = build_training_model(config, num_classes)
            if config.init_from:
                self.log(init_weights(model, config.init_from))
            return compile_model(model, config, num_classes, steps, weights)

    def describe(self, model, train_src, val_src, weights, steps, teacher):
        config, log, replicas = self.config, self.log, self.devices.replicas
        if weights is not None and not losses.uses_class_weights(config.loss):
            log(f"warning: --loss {config.loss} takes no class weights (ce and focal do); unused")
        elif weights is not None:
            log("class weights: " + ", ".join(f"{c} {w:.3f}"
                                              for c, w in zip(train_src.classes, weights)))
        if teacher is not None:
            log(f"distilling from {teacher.path} (weight {config.distill_weight:g}, "
                f"temperature {config.distill_temperature:g})")
        params = models.auxiliary.inference_model(model).count_params()
        aux = models.auxiliary.strides(model)
        if aux:
            log(f"{len(aux)} auxiliary heads at strides {', '.join(map(str, aux))} ({model.count_params() - params:,} parameters, "
                f"training only), loss weight {config.aux_loss_weight:g}")
        log(f"training {config.model} ({params:,} parameters) on "
            f"{train_src.where}: {len(train_src)} train / {len(val_src)} val images at "
            f"{config.image_size[0]}x{config.image_size[1]}"
            + (f" (random {config.crop[0]}x{config.crop[1]} crops)" if config.crop else "")
            + f", {steps} steps per epoch"
            + (f", {replicas} replicas x batch {config.batch_size}" if replicas > 1 else "")
            + (f", {self.policy}" if self.policy != "float32" else ""))

    def callbacks(self, state, steps, train_src, val_ds):
        """The callbacks, in the order they must run at each epoch's end: non-finite stop; the
        weight averages (and precise BN) swapped in for validation; the epoch committed
        (chief); early stopping (chief, shared with workers by ``fit_distributed``);
        TensorBoard; the raw weights swapped back."""
        config, run, devices, log = self.config, self.run, self.devices, self.log
        bn_batches = None
        if config.precise_bn and devices.replicas == 1:  # eager forward passes update BN
            bn_batches = training_batches(train_src, config.image_size, config.batch_size,
                                          config.precise_bn, seed=config.seed)
        elif config.precise_bn:
            of = " of the raw weights, not of the --ema averages" if config.ema else ""
            log(f"warning: --precise-bn is off with {devices.replicas} replicas (batch-norm "
                f"statistics stay the moving averages{of})")
        callbacks = [StopOnNonFinite(last_good=run.checkpoint_path)]
        restore = None
        if config.ema:  # averages in the model from validation to the checkpoint, then raw
            average, restore = AveragedWeights(resumed=bool(state["epoch"]),
                                               batches=bn_batches).pair()
            callbacks.append(average)
        elif bn_batches:
            callbacks.insert(0, PreciseBatchNorm(bn_batches, steps))
        if devices.chief:
            callbacks.append(CommitEpoch(run, best_miou=state["best_miou"]))
        if config.early_stopping and devices.chief:  # fit_distributed tells the workers
            callbacks.append(EarlyStopOnMiou(run, config.early_stopping, log=log))
        if devices.chief and devices.backend == "tensorflow" and not devices.multiworker:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run.file("logs")),
                                                         write_graph=False))
            samples = next(iter(val_ds.unbatch().take(4).batch(4)))
            callbacks.append(OverlaySamples(run.file("logs") / "overlays", samples[0].numpy(),
                                            samples[1].numpy(), len(train_src.classes),
                                            config.ignore_index))
        if restore is not None:
            callbacks.append(restore)
        return callbacks

    def run_fit(self, model, train_ds, val_ds, done, end, steps, callbacks, num_classes):
        devices = self.devices
        if devices.multiworker:  # Keras 3 fit cannot train under MultiWorkerMirroredStrategy
            fit_distributed(model, devices.strategy, train_ds, val_ds, epochs=end,
                            initial_epoch=done, steps=steps, callbacks=callbacks,
                            num_classes=num_classes, ignore_index=self.config.ignore_index,
                            chief=devices.chief, log=self.log)
            return
        model.fit(
            train_ds,
            epochs=end,
            initial_epoch=done,
            steps_per_epoch=steps if devices.strategy is not None else None,
            validation_data=val_ds,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles, per epoch and seeded
            verbose=(1 if sys.stdout.isatty() else 2) if self.verbose is None else self.verbose,
        )

    def result(self, t0, report):
        """The run's summary after this call, with report.html written where TensorFlow
        trained."""
        run = self.run
        result = summary(run)
        result["train_seconds_this_session"] = round(time.time() - t0, 1)
        if report and self.devices.backend != "tensorflow":
            self.log(f"trained on {self.devices.backend}: run `kseg report {run.path}` "
                     "(TensorFlow) for report.html")
        elif report:
            from kseg.report.run_page import write_report

            result["report"] = str(write_report(run.path, log=self.log))
        return result


def _interrupted(out, exc):
    """What an interrupted training call says: what is kept and how to resume."""
    how = interrupts.how(exc)
    try:
        done = RunDir(out).state()["epoch"]
    except (OSError, ValueError, KeyError):
        done = 0
    if not done:
        return (f"interrupted ({how}) before the first epoch finished; the same command starts "
                f"the run in {out} again")
    kept = "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
    return (f"interrupted ({how}) during epoch {done + 1}: {kept} kept in {out}; the same "
            f"command resumes after epoch {done}")


def session_entry(from_epoch, replicas=1, policy="float32"):
    """Where and how a training call runs, for the run's sessions.json (and, through it, the
    exported model's metadata). ``devices``: the accelerators this process trains on (under
    multi-worker, the chief's), else the CPU."""
    import datetime
    import platform

    backend = keras.backend.backend()
    versions = {"kseg": __version__, "keras": keras.__version__, "python": platform.python_version()}
    if backend == "jax":  # kseg trains on one JAX device: the first
        import jax

        versions["jax"] = jax.__version__
        kinds = [d.device_kind for d in jax.devices()[:1]]
    else:  # replicas of a strategy run on the GPUs; without one, TensorFlow places on GPU:0
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")[:max(1, int(replicas))]
        kinds = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                 for d in gpus]
        versions["tensorflow"] = tf.__version__
    devices = (", ".join(f"{kinds.count(k)} x {k}" for k in dict.fromkeys(kinds))
               if kinds and kinds[0].lower() != "cpu" else f"CPU ({os.cpu_count()} cores)")
    return {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "from_epoch": int(from_epoch), "backend": backend, "devices": devices,
            "replicas": int(replicas), "precision": str(policy), "arch": platform.machine(),
            "versions": versions}


def summary(run):
    state = run.state()
    entries = run.metrics()
    return {
        "run": str(run.path),
        "epochs_done": state["epoch"],
        "best_val_miou": state["best_miou"],
        "best_epoch": max((e for e in entries if e.get("best")), key=lambda e: e["epoch"],
                          default={}).get("epoch"),
        "last": entries[-1] if entries else None,
    }


def _normalized(stored):
    """A stored config.json in today's form: options added since it was written get defaults."""
    out = TrainConfig.from_json(stored, where="the run folder's config.json").to_json()
    out["classes"] = stored.get("classes")
    return out

