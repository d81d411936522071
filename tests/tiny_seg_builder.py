"""A tiny tensorflow-datasets builder for the tfds loader tests (tfds wants builders in their own
module). Six 24x32 train and three test examples; masks hold 0..2."""

import numpy as np
import tensorflow_datasets as tfds


class TinySeg(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "segmentation_mask": tfds.features.Image(shape=(None, None, 1)),
            }),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(6, 0), "test": self._generate_examples(3, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            mask = np.zeros((24, 32, 1), np.uint8)
            mask[:, 16:] = 1
            mask[:4] = 2
            yield i, {"image": rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                      "segmentation_mask": mask}
