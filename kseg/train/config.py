"""``TrainConfig``: everything a training run was asked for; stored as ``runs/NAME/config.json``.

Each field is declared once, here: its default, its meaning (``help``) and, where the command
line spells it differently from the field, how (``flags``, ``parse``). ``kseg train`` and the data
options of ``kseg evaluate`` / ``kseg data check`` generate their options from these fields
(``kseg.cli``), so the CLI, the library and config.json cannot disagree on a name or a default.

Field metadata (``option(...)``):
    help      the option's help text (required)
    flags     the option names, e.g. ``("--option", "-o")``; default ``--field-name``; a boolean
              field may give ``"--on/--off"``
    parse     turns the command-line text (a tuple where ``multiple``) into the field's value;
              raises ``ConfigError``
    choices   the accepted values (also checked by ``__post_init__``)
    nargs, multiple, metavar, type    as for a click option (``type`` defaults to the type of the
              default value)
"""

import dataclasses
import json

from kseg import DEFAULT_IGNORE_INDEX, __version__
from kseg.data.pairs import VAL_SPLITS
from kseg.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("poly", "cosine", "constant")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
AUGMENT_PRESETS_HELP = "none | flip | light | strong, or an albumentations pipeline file (JSON/YAML)."


def option(default=dataclasses.MISSING, *, help, factory=dataclasses.MISSING, **cli):
    """A ``TrainConfig`` field with its command-line description (see the module docstring)."""
    unknown = set(cli) - {"flags", "parse", "choices", "nargs", "multiple", "metavar", "type"}
    if unknown:
        raise TypeError(f"option(): unknown key(s) {sorted(unknown)}")
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={"help": help, **cli})


# --- how command-line text becomes a field value (each raises ConfigError) ---

def split_names(text):
    """``"car, Pedestrian"`` -> ``["car", "Pedestrian"]``; empty -> None."""
    names = [c.strip() for c in str(text).split(",") if c.strip()] if text else []
    return names or None


def parse_floats(text):
    if not text:
        return None
    try:
        return [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"{text!r}: expected comma-separated numbers") from None


def parse_class_weights(text):
    from kseg.data.balance import METHODS

    return text if text is None or text in METHODS else parse_floats(text)


def parse_remap(text):
    from kseg.data.pairs import parse_remap as parse

    return parse(text)


def parse_model_options(items):
    """``("depth=3", "upsampling=bilinear")`` -> ``{"depth": 3, "upsampling": "bilinear"}``;
    values are JSON, or Python's spellings True/False/None, or else strings."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = {"True": True, "False": False, "None": None}.get(value, value)
    return out


def parse_cache(text):
    return True if text == "memory" else (text or None)


def parse_time_budget(text):
    from kseg.train.budget import parse_duration

    return None if text is None else parse_duration(text)


@dataclasses.dataclass
class TrainConfig:
    # --- data ---
    data: str = option("shapes", help=(
        "Dataset: shapes[:N] (built in), a folder with images/ and labels/, camvid:PATH[:split], "
        "voc:PATH[:split], cityscapes:PATH, coco:FILE.json, tfds:NAME[:split]; "
        "camvid:PATH:train+val joins splits (also voc, cityscapes)."))
    val_data: str = option(None, help="Separate validation dataset (default: the data's val "
                           "split, or a held-out fraction of a single folder).")
    classes: list = option(None, parse=split_names, type=str,
                           help="Comma-separated class names (default: classes.txt).")
    remap: dict = option(factory=dict, parse=parse_remap, type=str, help=(
        "Label value rewrites FROM:TO[,...]; TO may be 'ignore' (e.g. 11:ignore for CamVid, "
        "255:1 for ISBI)."))
    ignore_index: int = option(DEFAULT_IGNORE_INDEX, help="Label value that is not scored.")
    val_fraction: float = option(0.2, help="Share of a single folder (or COCO file) held out "
                                 "for validation.")
    val_split: str = option("random", choices=VAL_SPLITS, help=(
        "Which pairs --val-fraction holds out: a seeded random draw, or a contiguous block at "
        "the start/end in natural name order (serial data: EM sections, video frames, whose "
        "neighbours would flatter the score)."))
    tfds_data_dir: str = option(None, help="tensorflow-datasets folder holding prepared data.")
    coco_images: str = option(None, help="Folder of the images a COCO JSON names.")
    image_size: tuple = option((128, 128), nargs=2, type=int, metavar="H W",
                               help="Training and export size (images are resized to it).")
    crop: tuple = option(None, nargs=2, type=int, metavar="H W", help=(
        "Train on random H x W windows of the --image-size examples (after augmentation); "
        "validation and export stay at --image-size."))
    # --- model ---
    model: str = option("unet", help="unet | fcn32s | fcn16s | fcn8s | deeplabv3 | "
                        "deeplabv3plus | fastscnn (kseg models lists them).")
    model_options: dict = option(factory=dict, flags=("--option", "-o"), multiple=True,
                                 metavar="KEY=VALUE", parse=parse_model_options, type=str, help=(
        "Model option, e.g. -o depth=4 -o base_filters=32 (repeatable; kseg models lists "
        "them)."))
    sigmoid: bool = option(False, help="Binary task: one sigmoid output channel (trained with "
                           "ce = binary cross-entropy, focal or dice) instead of two softmax ones.")
    init_from: str = option(None, help="Start from the weights of this run folder or .keras "
                            "file (layers matched by name and shape; a new head is fine).")
    # --- schedule ---
    epochs: int = option(10, help="Epochs of the run (the schedule spans them).")
    batch_size: int = option(8, help="Images per step (per replica under a tf.distribute "
                             "strategy).")
    repeat: int = option(1, help=(
        "Passes over the training data per epoch (a small dataset: fewer, longer epochs, so "
        "less time validating; whatever counts epochs — warm-up, early stopping, precise BN — "
        "counts these longer ones)."))
    learning_rate: float = option(1e-3, help="Peak learning rate.")
    weight_decay: float = option(1e-4, help="Decoupled weight decay (AdamW) or L2 (SGD).")
    optimizer: str = option("adamw", choices=OPTIMIZERS, help="adamw, or sgd with momentum.")
    momentum: float = option(0.9, help="SGD momentum.")
    schedule: str = option("cosine", choices=SCHEDULES,
                           help="Learning-rate schedule over the run (poly: DeepLab's).")
    poly_power: float = option(0.9, help="Exponent of the poly schedule.")
    warmup_epochs: float = option(0.0, help="Linear warm-up from 0 over this many epochs.")
    early_stopping: int = option(None, type=int,
                                 help="Stop after this many epochs without a better val mIoU.")
    precise_bn: int = option(0, help="Recompute batch-norm statistics on N training batches "
                             "after every epoch.")
    ema: float = option(0.0, metavar="DECAY", help=(
        "Keep a moving average of the weights (decay per step, e.g. 0.99; 0 = off) and "
        "validate, checkpoint and export it instead of the last step's weights."))
    time_budget: float = option(None, parse=parse_time_budget, type=str, help=(
        "Wall-clock budget for the whole run (5400, 90m, 2h, 1h30m): after a 3-epoch probe the "
        "epoch count (at most --epochs) is fitted to it and the schedule rebuilt to end on "
        "time; kept in RUN/budget.json on resume."))
    # --- loss ---
    loss: str = option("ce", help="ce | ohem | focal | dice | tversky | lovasz, or a sum such as "
                       "focal+dice.")
    loss_weights: list = option(None, parse=parse_floats, type=str,
                                help="Comma-separated weights of a summed loss, e.g. 1,1.")
    focal_gamma: float = option(2.0, help="Focusing exponent of the focal loss.")
    class_weights: object = option(None, parse=parse_class_weights, type=str, help=(
        "inverse | median-frequency | enet (computed from the training labels), or one "
        "comma-separated weight per class."))
    aux_loss_weight: float = option(0.0, help=(
        "Train auxiliary heads on the model's intermediate features, each loss weighted by "
        "this (the Fast-SCNN paper: 0.4; 0 = none). Training only: exports hold the main "
        "output alone. Models with heads: fastscnn."))
    # --- distillation ---
    teacher: str = option(None, help=(
        "Distil from this model: an exported .tflite file (run by the TensorFlow-free runtime "
        "in the input pipeline), or a run folder / .keras file (converted once to a float32 "
        "TFLite file in the run folder; TensorFlow backend). Adds a pixel-wise KL term to its "
        "probabilities on the same augmented batch."))
    distill_weight: float = option(1.0, help="Weight of the distillation term (--teacher).")
    distill_temperature: float = option(1.0, help="Softening temperature T of both "
                                        "distributions (--teacher); the term is scaled by T^2.")
    # --- augmentation and input ---
    augment: str = option("light", help=AUGMENT_PRESETS_HELP)
    copy_paste: float = option(0.0, help="Probability of pasting objects cut from another "
                               "training image.")
    object_transform: float = option(0.0, help="Probability of shifting/scaling/mirroring one "
                                     "object (the hole is inpainted and ignored).")
    object_classes: list = option(None, flags=("--object-classes", "--copy-paste-classes"),
                                  parse=split_names, type=str, help=(
        "Comma-separated classes whose objects are pasted or moved (default: all)."))
    cache: object = option(None, parse=parse_cache, type=str, metavar="memory|FILE",
                           help="Cache decoded examples: 'memory' or a file path.")
    deterministic: bool = option(True, flags=("--deterministic/--fast-data",), help=(
        "Exact batch order, so a resumed run reproduces the batches (--fast-data lets parallel "
        "decoding reorder examples: a bit faster)."))
    # --- devices ---
    strategy: str = option("auto", choices=STRATEGIES, help=(
        "tf.distribute strategy; --batch-size is per replica. multiworker reads TF_CONFIG "
        "(every worker runs the same command)."))
    mixed_precision: bool = option(False, help="mixed_float16 on a TensorFlow GPU, "
                                   "mixed_bfloat16 on CPU and under JAX.")
    jit_compile: bool = option(False, help="XLA-compile the train step under TensorFlow "
                               "(always on under JAX; slower on CPUs).")
    seed: int = option(0, help="Seed of the weights, the batch order and the augmentation.")

    def __post_init__(self):
        self.image_size = tuple(int(v) for v in self.image_size)
        if self.crop is not None:
            self.crop = tuple(int(v) for v in self.crop)
        self.remap = {int(k): v for k, v in (self.remap or {}).items()}
        if isinstance(self.augment, bool):  # configs written before presets existed
            self.augment = "flip" if self.augment else "none"
        problems = []
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            problems.append(f"image_size must be two sizes >= 8, got {self.image_size}")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 8 or any(
                c > s for c, s in zip(self.crop, self.image_size))):
            problems.append(f"crop must be two sizes >= 8 and within image_size "
                            f"{list(self.image_size)}, got {list(self.crop)}")
        if int(self.epochs) < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if int(self.repeat) < 1:
            problems.append(f"repeat must be at least 1, got {self.repeat}")
        if int(self.batch_size) < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        if not float(self.learning_rate) > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= float(self.val_fraction) < 1:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.time_budget is not None and float(self.time_budget) <= 0:
            problems.append(f"time_budget must be a positive number of seconds, got {self.time_budget}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                problems.append(f"{f.name} must be one of {', '.join(choices)}, "
                                f"got {getattr(self, f.name)!r}")
        from kseg.data.balance import METHODS

        cw = self.class_weights
        if cw is not None and not isinstance(cw, list) and cw not in METHODS:
            problems.append(f"class_weights must be one of {', '.join(METHODS)} or a list, got {cw!r}")
        if not 0 <= float(self.warmup_epochs) < int(self.epochs):
            problems.append(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if not 0 <= float(self.ema) < 1:
            problems.append(f"ema (the averaging decay per step) must be in [0, 1), got {self.ema}")
        if self.early_stopping is not None and int(self.early_stopping) < 1:
            problems.append(f"early_stopping (patience) must be at least 1, got {self.early_stopping}")
        if float(self.distill_weight) < 0 or float(self.distill_temperature) <= 0:
            problems.append(f"distill_weight must be >= 0 and distill_temperature > 0, got "
                            f"{self.distill_weight} and {self.distill_temperature}")
        if float(self.aux_loss_weight) < 0:
            problems.append(f"aux_loss_weight must be >= 0, got {self.aux_loss_weight}")
        for name in ("copy_paste", "object_transform"):
            if not 0 <= float(getattr(self, name)) <= 1:
                problems.append(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if problems:
            raise ConfigError("; ".join(problems))

    def source_options(self):
        return {
            "classes": self.classes,
            "remap": self.remap,
            "ignore_index": self.ignore_index,
            "val_fraction": self.val_fraction,
            "val_split": self.val_split,
            "image_size": self.image_size,
            "seed": self.seed,
            "tfds_data_dir": self.tfds_data_dir,
            "coco_images": self.coco_images,
        }

    def to_json(self):
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        d["crop"] = list(self.crop) if self.crop is not None else None
        d["remap"] = {str(k): v for k, v in self.remap.items()}
        d["kseg_version"] = __version__
        return d

    @classmethod
    def from_json(cls, d, where="config.json"):
        """The configuration stored in a run's config.json; a key this kseg does not know (a
        config from a newer kseg, or edited by hand) is an error naming it, not silently
        dropped."""
        d = dict(d)
        d.pop("kseg_version", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (written by a newer "
                             f"kseg, or edited?); this kseg knows: {', '.join(sorted(names))}")
        return cls(**d)

    def open_source(self, split):
        """The ``train`` or ``val`` split this configuration names (kseg.data sources)."""
        from kseg.data import open_source, without_split

        options = self.source_options()
        if self.val_data:  # separate validation data: neither side is carved into a split
            options["val_fraction"] = 0.0
            if split == "val":
                return open_source(self.val_data, "val", **options)
        if split != "train":  # "voc:PATH:trainaug" names the training split only
            return open_source(without_split(self.data), split, **options)
        return open_source(self.data, split, **options)

    def augmentation(self, classes):
        """The ``kseg.data.augment.Augmentation`` this configuration asks for."""
        from kseg.data.augment import Augmentation

        ids = None
        if self.object_classes:  # names, matched without regard to case (car = Car)
            lowered = [c.lower() for c in classes]
            unknown = [c for c in self.object_classes if c.lower() not in lowered]
            if unknown:
                raise ConfigError(f"object classes {unknown} are not classes of the data "
                                 f"({', '.join(classes)})")
            ids = tuple(lowered.index(c.lower()) for c in self.object_classes)
        return Augmentation(self.augment, copy_paste=self.copy_paste,
                            object_transform=self.object_transform, object_classes=ids,
                            ignore_index=self.ignore_index, crop=self.crop)
