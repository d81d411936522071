"""``TrainConfig``: everything a training run was asked for; stored as ``runs/NAME/config.json``."""

import dataclasses

from kseg import DEFAULT_IGNORE_INDEX, __version__


@dataclasses.dataclass
class TrainConfig:
    data: str = "shapes"
    val_data: str = None  # None: the "val" split of ``data`` (a held-out fraction for one folder)
    classes: list = None  # None: from the dataset (classes.txt or built in)
    remap: dict = dataclasses.field(default_factory=dict)
    ignore_index: int = DEFAULT_IGNORE_INDEX
    val_fraction: float = 0.2
    val_split: str = "random"  # random | first | last: which pairs --val-fraction holds out
    image_size: tuple = (128, 128)
    crop: tuple = None  # train on random (height, width) windows of the image_size examples
    model: str = "unet"
    model_options: dict = dataclasses.field(default_factory=dict)
    sigmoid: bool = False  # binary task: one sigmoid output channel instead of two softmax ones
    epochs: int = 10
    batch_size: int = 8
    repeat: int = 1  # passes over the training data per epoch (small datasets: fewer validations)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | sgd (with momentum)
    momentum: float = 0.9
    schedule: str = "cosine"  # poly | cosine | constant
    poly_power: float = 0.9
    warmup_epochs: float = 0.0
    early_stopping: int = None  # stop after this many epochs without a better val mIoU
    precise_bn: int = 0  # recompute batch-norm statistics on this many training batches per epoch
    ema: float = 0.0  # > 0: validate, checkpoint and export a moving average of the weights (decay per step)
    loss: str = "ce"  # ce | focal | dice | tversky | lovasz | sums such as focal+dice
    loss_weights: list = None  # one weight per part of a summed loss
    focal_gamma: float = 2.0
    class_weights: object = None  # None | inverse | median-frequency | enet | [w per class]
    augment: str = "light"  # none | flip | light | strong | albumentations JSON/YAML file
    copy_paste: float = 0.0  # probability of pasting objects from another training image
    object_transform: float = 0.0  # probability of moving one object within the image
    object_classes: list = None  # class names for copy-paste / object moves (None: all)
    cache: object = None  # None | True (memory) | path of a cache file: decoded examples
    deterministic: bool = True  # exact batch order (resume reproduces); False: a bit faster
    tfds_data_dir: str = None
    strategy: str = "auto"  # auto | default | mirrored | multiworker (batch_size is per replica)
    mixed_precision: bool = False  # mixed_float16 on GPU, mixed_bfloat16 on CPU
    jit_compile: bool = False  # XLA under TensorFlow (about 6x slower on the 2-core CPU); always on under JAX
    coco_images: str = None
    init_from: str = None  # run folder or .keras file whose weights start the run (fine-tuning)
    time_budget: float = None  # seconds for the whole run: epochs fitted after a probe (budget.json)
    seed: int = 0

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
        if self.val_split not in ("random", "first", "last"):
            problems.append(f"val_split must be random, first or last, got {self.val_split!r}")
        from kseg.data.balance import METHODS

        cw = self.class_weights
        if cw is not None and not isinstance(cw, list) and cw not in METHODS:
            problems.append(f"class_weights must be one of {', '.join(METHODS)} or a list, got {cw!r}")
        from kseg.train.schedules import OPTIMIZERS, SCHEDULES

        from kseg.train.distribute import STRATEGIES

        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 <= float(self.warmup_epochs) < int(self.epochs):
            problems.append(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if not 0 <= float(self.ema) < 1:
            problems.append(f"ema (the averaging decay per step) must be in [0, 1), got {self.ema}")
        if self.early_stopping is not None and int(self.early_stopping) < 1:
            problems.append(f"early_stopping (patience) must be at least 1, got {self.early_stopping}")
        for name in ("copy_paste", "object_transform"):
            if not 0 <= float(getattr(self, name)) <= 1:
                problems.append(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if problems:
            raise ValueError("; ".join(problems))

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
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (written by a newer "
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
                raise ValueError(f"object classes {unknown} are not classes of the data "
                                 f"({', '.join(classes)})")
            ids = tuple(lowered.index(c.lower()) for c in self.object_classes)
        return Augmentation(self.augment, copy_paste=self.copy_paste,
                            object_transform=self.object_transform, object_classes=ids,
                            ignore_index=self.ignore_index, crop=self.crop)
