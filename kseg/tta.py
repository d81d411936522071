"""Test-time augmentation: predict the same image several times — mirrored, turned by quarter
turns, slightly rotated, rescaled — map every prediction back onto the original pixel grid and
average the class probabilities.

``TTA.parse("flip,rotate=-10,-5,5,10,scales=0.75,1,1.25")`` makes these passes: every scale, each
with and without mirroring, plus every rotation at scale 1. ``turns`` adds the exact 90, 180 and
270 degree turns of every scale/mirror pass (with ``flip``: all 8 symmetries of the square, for
data with no up or left — check first, as kseg orientation does: even microscopy labels
can sit off-centre in the image's own frame, which mirrors and turns blur; a turn of a
non-square image swaps its height and width, so it needs a model that takes any input size).
Rotations turn about the image centre; the corners they bring into view are filled by reflection
for the model's sake, and pixels of the original that a rotation moves out of view are left out
of that pass's vote (each pixel's average runs over the passes that saw it). Scales other than 1 need a model that takes any input size.
"""

import dataclasses

import cv2
import numpy as np

from kseg.errors import ConfigError


def probabilities(scores, dtype=np.float32):
    """Class probabilities [..., C] from model scores: softmax of logits, or a sigmoid's one
    channel expanded to (1 - p, p); computed in ``dtype``."""
    scores = np.asarray(scores, dtype=dtype)
    if scores.shape[-1] == 1:
        p = 1.0 / (1.0 + np.exp(-scores))
        return np.concatenate([1.0 - p, p], axis=-1)
    z = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Pass:
    scale: float = 1.0
    flip: bool = False
    angle: float = 0.0
    quarter: int = 0  # exact counter-clockwise quarter turns (np.rot90), after mirroring

    def forward(self, image):
        """The transformed model input (uint8 [h', w', 3])."""
        h, w = image.shape[:2]
        out = image
        if self.scale != 1.0:
            size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
            out = cv2.resize(out, size, interpolation=cv2.INTER_LINEAR)
        if self.flip:
            out = out[:, ::-1]
        if self.quarter:
            out = np.rot90(out, self.quarter)
        if self.angle:
            out = cv2.warpAffine(np.ascontiguousarray(out), self._rotation(out.shape), out.shape[1::-1],
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        return np.ascontiguousarray(out)

    def inverse(self, probs, size):
        """(probabilities [H, W, C], valid [H, W]) on the original grid of ``size`` = (H, W)."""
        valid = np.ones(probs.shape[:2], np.float32)
        if self.angle:
            m = self._rotation(probs.shape)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            back = [cv2.warpAffine(np.ascontiguousarray(probs[..., i:i + 64]), m, probs.shape[1::-1],
                                   flags=flags, borderMode=cv2.BORDER_CONSTANT)
                    for i in range(0, probs.shape[-1], 64)]
            probs = np.concatenate([b.reshape(b.shape[:2] + (-1,)) for b in back], axis=-1)
            valid = cv2.warpAffine(valid, m, probs.shape[1::-1], flags=flags,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            valid = (valid > 0.999).astype(np.float32)
        if self.quarter:
            probs, valid = np.rot90(probs, -self.quarter), np.rot90(valid, -self.quarter)
        if self.flip:
            probs, valid = probs[:, ::-1], valid[:, ::-1]
        if probs.shape[:2] != tuple(size):
            h, w = size
            chans = [cv2.resize(np.ascontiguousarray(probs[..., i:i + 64]), (w, h),
                                interpolation=cv2.INTER_LINEAR) for i in range(0, probs.shape[-1], 64)]
            probs = np.concatenate([c.reshape(h, w, -1) for c in chans], axis=-1)
            valid = cv2.resize(np.ascontiguousarray(valid), (w, h), interpolation=cv2.INTER_NEAREST)
        return probs, valid

    def _rotation(self, shape):
        h, w = shape[:2]
        return cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), self.angle, 1.0)


@dataclasses.dataclass
class TTA:
    flip: bool = False
    angles: tuple = ()
    scales: tuple = (1.0,)
    turns: bool = False

    @classmethod
    def parse(cls, spec):
        """``flip,turns,rotate=-10,-5,5,10,scales=0.75,1,1.25``: numbers after ``key=`` belong
        to it."""
        flip, turns, angles, scales, key = False, False, [], [], None
        for token in [t.strip() for t in str(spec).split(",") if t.strip()]:
            if "=" in token:
                key, _, token = token.partition("=")
                key = key.strip()
                if key not in ("rotate", "scales"):
                    raise ConfigError(f"TTA: unknown key {key!r} in {spec!r} (flip, turns, rotate=, "
                                     "scales=)")
            elif token == "flip":
                flip, key = True, None
                continue
            elif token == "turns":
                turns, key = True, None
                continue
            if key is None:
                raise ConfigError(f"TTA: {token!r} in {spec!r} is not flip, turns, rotate=... or "
                                 "scales=...")
            try:
                value = float(token)
            except ValueError:
                raise ConfigError(f"TTA: {token!r} in {spec!r} is not a number") from None
            if key == "rotate":
                if abs(value) > 45:
                    raise ConfigError(f"TTA: rotation {value} is not a small angle (|angle| <= 45; "
                                     "exact quarter turns: turns)")
                angles.append(value)
            else:
                if not 0.25 <= value <= 4:
                    raise ConfigError(f"TTA: scale {value} outside 0.25..4")
                scales.append(value)
        return cls(flip=flip, angles=tuple(a for a in angles if a), scales=tuple(scales or [1.0]),
                   turns=turns)

    def needs_any_size_for(self, size):
        """Whether images of ``size`` = (height, width) make passes of another size: rescaling,
        or turns of a non-square image (which swap its height and width)."""
        return any(s != 1.0 for s in self.scales) or (self.turns and size[0] != size[1])

    def passes(self):
        out = [Pass(scale=s, flip=f, quarter=q) for s in self.scales
               for f in ((False, True) if self.flip else (False,))
               for q in ((0, 1, 2, 3) if self.turns else (0,))]
        out += [Pass(angle=a) for a in self.angles]
        return out

    def __str__(self):
        parts = ["flip"] if self.flip else []
        if self.turns:
            parts.append("turns")
        if self.angles:
            parts.append("rotate=" + ",".join(f"{a:g}" for a in self.angles))
        parts.append("scales=" + ",".join(f"{s:g}" for s in self.scales))
        return ",".join(parts)

    def predict_proba(self, predict, image):
        """Averaged class probabilities [H, W, C] for one uint8 image [H, W, 3]; ``predict`` maps a
        uint8 batch [N, h, w, 3] to class probabilities [N, h, w, C] (``Predictor.predict_proba``;
        same-size passes go in one batch)."""
        image = np.asarray(image)
        size = image.shape[:2]
        groups = {}
        for p in self.passes():
            x = p.forward(image)
            groups.setdefault(x.shape, []).append((p, x))
        total = count = None
        for items in groups.values():
            scores = predict(np.stack([x for _, x in items]))
            for (p, _), s in zip(items, np.asarray(scores)):
                probs, valid = p.inverse(np.asarray(s, np.float32), size)
                if total is None:
                    total = np.zeros(size + (probs.shape[-1],), np.float32)
                    count = np.zeros(size, np.float32)
                total += probs * valid[..., None]
                count += valid
        return total / np.maximum(count, 1e-6)[..., None]

    def predict_labels(self, predict, image):
        return np.argmax(self.predict_proba(predict, image), axis=-1).astype(np.uint8)
