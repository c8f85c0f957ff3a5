"""`prunelab evaluate`: a checkpoint or an exported file (ONNX too, run by onnxruntime), scored on a
dataset's test images outside the sweep, finds the count the sweep stored for that network, image
for image."""

import pytest
import torch
from cli_helpers import assert_user_error, run

from prunelab import api
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.sweep import Sweep
from prunelab.io.formats.onnx import save_onnx
from prunelab.measure import Evaluation


@pytest.fixture(scope="module")
def swept(digits_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("swept")
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", device="cpu", levels=(0.7,),
                      methods=("global", "channels-global"), bits=(3,), quantizers=("kmeans",))
    points = Sweep(cfg, out).run()
    return out, {p.method: p for p in points}


@pytest.mark.parametrize("method,fmt,kind", [("global", "sparse", "sparse"),
                                             ("global", "sparse-fp16", "sparse"),
                                             ("global@kmeans3", "quantized", "quantized"),
                                             ("channels-global", "structured", "structured"),
                                             ("global", "onnx", "onnx"), ("channels-global", "onnx", "onnx"),
                                             ("global", "onnx-int8", "onnx-int8")])
def test_an_exported_file_scores_what_the_sweep_stored(swept, monkeypatch, capsys, tmp_path, method, fmt,
                                                      kind):
    out, points = swept
    suffix = {"structured": ".safetensors", "onnx-int8": ".onnx"}.get(fmt, f".{fmt}")
    file = tmp_path / f"net{suffix}"
    code, _, err = run(monkeypatch, capsys, "export", out, "--method", method, "--level", 0.7, "--format",
                       fmt, "--out", file)
    assert code == 0, err
    scored = api.evaluate(file, "digits", device="cpu")
    assert scored.kind == kind
    stored = points[method]
    if fmt == "sparse-fp16":  # half-precision values: within a few images of the float32 network
        assert abs(scored.evaluation.correct - stored.correct) <= 3
    elif fmt == "onnx-int8":  # int8 weights and activations: within 2% of the float network
        assert abs(scored.evaluation.correct - stored.correct) <= 0.02 * len(stored.hits)
    elif fmt == "onnx":  # onnxruntime's float32 kernels: the same answers but where logits all but tie
        assert (scored.evaluation.hits != stored.hits).sum() <= 1
    else:
        assert scored.evaluation.correct == stored.correct
        assert (scored.evaluation.hits == stored.hits).all()
    code, line, err = run(monkeypatch, capsys, "evaluate", file, "--data", "digits", "--device", "cpu")
    assert code == 0, err
    counted = f"{scored.evaluation.correct:,} of {len(stored.hits):,} test images of digits"
    assert f"({kind}, smallcnn): {counted}" in line


def test_a_checkpoint_scores_the_dense_count(swept, digits_checkpoint, monkeypatch, capsys):
    _, points = swept
    code, line, err = run(monkeypatch, capsys, "evaluate", digits_checkpoint, "--device", "cpu")
    assert code == 0, err
    assert f"(checkpoint, smallcnn): {points['dense'].correct:,} of" in line and "95% CI" in line


def test_what_cannot_be_scored_is_one_line(monkeypatch, capsys, tmp_path, digits_checkpoint):
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "m.onnx")
    assert_user_error(code, err, "m.onnx is not an ONNX file onnxruntime can load")
    save_onnx(tmp_path / "plain.onnx", torch.nn.Conv2d(1, 2, 3), (1, 8, 8))  # an ONNX file of no card
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "plain.onnx")
    assert_user_error(code, err, "plain.onnx is an ONNX file without prunelab's model card",
                      "score the checkpoint it came from")
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "gone.sparse")
    assert_user_error(code, err, "gone.sparse does not exist", "a file 'prunelab export' wrote")
    (tmp_path / "junk.bin").write_bytes(b"not a network")
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "junk.bin")
    assert_user_error(code, err, "junk.bin")
    code, _, err = run(monkeypatch, capsys, "evaluate", digits_checkpoint, "--data", tmp_path / "none.npz")
    assert_user_error(code, err, "none.npz")


def test_the_interval_is_wilsons():
    import numpy as np

    ev = Evaluation(961, 1017, 100 * 961 / 1017, 0.0, 0.0, np.ones(1017, bool))
    low, high = ev.interval()
    assert low == pytest.approx(92.92, abs=0.01) and high == pytest.approx(95.74, abs=0.01)  # by hand
    assert Evaluation(10, 10, 100.0, 0.0, 0.0, np.ones(10, bool)).interval()[1] == 100.0
