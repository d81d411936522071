import json

import numpy as np
import pytest

from kseg.contract import ContractError, make_metadata, read_metadata, validate_metadata
from kseg.runtime import Segmenter, TFLiteModel, colourize, palette


def good_meta(**over):
    meta = make_metadata(["a", "b"], 8, 8, "scores", 255, {"name": "unet"}, "0")
    meta.update(over)
    return meta


def test_metadata_validation_names_the_problem():
    validate_metadata(good_meta(), "x")
    with pytest.raises(ContractError, match="x: 'classes' must be"):
        validate_metadata(good_meta(classes=[]), "x")
    with pytest.raises(ContractError, match="output.kind must be one of"):
        validate_metadata(good_meta(output={"kind": "logits"}), "x")
    with pytest.raises(ContractError, match="unsupported metadata format"):
        validate_metadata(good_meta(format=9), "x")


def test_missing_or_broken_metadata(tmp_path):
    with pytest.raises(ContractError, match="metadata.json: missing"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text("{nope")
    with pytest.raises(ContractError, match="not valid JSON"):
        read_metadata(tmp_path)


def test_corrupt_tflite_file(tmp_path):
    (tmp_path / "model_float32.tflite").write_bytes(b"garbage" * 10)
    (tmp_path / "metadata.json").write_text(json.dumps(good_meta()))
    with pytest.raises(ContractError, match="not a loadable TFLite model"):
        TFLiteModel(tmp_path / "model_float32.tflite")
    with pytest.raises(ContractError, match="no such file"):
        TFLiteModel(tmp_path / "absent.tflite")


def test_tflite_without_metadata_is_refused(tmp_path):
    (tmp_path / "model_float32.tflite").write_bytes(b"x")
    with pytest.raises(ContractError, match="metadata.json: missing"):
        Segmenter(tmp_path / "model_float32.tflite")


def test_palette_is_distinct_and_ignore_is_white():
    p = palette(21)
    assert len({tuple(c) for c in p}) == 21
    assert tuple(p[1]) == (128, 0, 0)  # the VOC colour map
    assert tuple(colourize(np.array([[255]]), 3)[0, 0]) == (255, 255, 255)
