"""Export: sparse files round-trip exactly near the floor, structured rebuilds, ONNX agrees, CLI errors."""

import shutil
from dataclasses import asdict

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run
from pruning_helpers import masked_resnet20

from prunelab.data import load_dataset, normalize
from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.store import Store
from prunelab.experiment.sweep import Sweep
from prunelab.io.checkpoint import load_checkpoint, save_checkpoint
from prunelab.io.formats import export_model, get_format
from prunelab.io.formats.sparse import FP16_TOLERANCE, entropy_bits, load_sparse, save_sparse, size_floor
from prunelab.io.formats.structured import load_structured, save_structured
from prunelab.measure import evaluate
from prunelab.models import MODELS, ModelCard, ModelInfo, create_model, model_info
from prunelab.pruning.structured import prune_channels

X = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
REF = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"))


@pytest.fixture(scope="module")
def masked90():
    return masked_resnet20(0.9)


def test_sparse_round_trip_fp32_bit_exact(masked90, tmp_path):
    size = save_sparse(tmp_path / "m.sparse", masked90, REF)
    back, ref = load_sparse(tmp_path / "m.sparse")
    assert ref == REF
    for k, v in masked90.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    with torch.no_grad():
        assert torch.equal(back(X), masked90(X))
    assert size == (tmp_path / "m.sparse").stat().st_size
    dense = sum(t.numel() * t.element_size() for t in masked90.state_dict().values())
    assert size < 0.2 * dense


def test_sparse_fp16_within_tolerance(masked90, tmp_path):
    half = save_sparse(tmp_path / "h.sparse", masked90, REF, fp16=True)
    back, _ = load_sparse(tmp_path / "h.sparse")
    with torch.no_grad():
        assert float((back(X) - masked90(X)).abs().max()) < FP16_TOLERANCE
    assert back.conv1.weight.dtype == torch.float32
    assert half < 0.75 * save_sparse(tmp_path / "f.sparse", masked90, REF)


@pytest.mark.parametrize("sparsity", [0.5, 0.95])
def test_sparse_file_within_1_3x_of_the_floor(sparsity, tmp_path):
    model = masked_resnet20(sparsity)
    floor = size_floor(model, 32)
    size = save_sparse(tmp_path / "m.sparse", model, REF)
    assert floor.per_layer <= floor.global_
    assert size <= 1.3 * floor.global_, (size, floor)
    assert entropy_bits(0.5) == 1 and entropy_bits(0) == 0


def test_damaged_files_are_errors(tmp_path):
    (tmp_path / "junk").write_bytes(b"not a model")
    with pytest.raises(PrunelabError, match="not a prunelab sparse file"):
        load_sparse(tmp_path / "junk")
    with pytest.raises(PrunelabError, match="safetensors"):
        load_structured(tmp_path / "junk")


def test_structured_safetensors_rebuilds_exactly(tmp_path):
    torch.manual_seed(0)
    info = model_info("resnet20")
    r = prune_channels(create_model("resnet20").eval(), info, X[:1], 0.5, "layerwise", round_to=8)
    size = save_structured(tmp_path / "s.safetensors", r.model, REF)
    back, ref = load_structured(tmp_path / "s.safetensors")
    assert ref == REF and size < 0.6 * 4 * 269_722
    with torch.no_grad():
        assert torch.equal(back(X), r.model(X))


@pytest.mark.parametrize("structured", [False, True])
def test_onnx_agrees_with_pytorch(masked90, structured, tmp_path):
    info = model_info("resnet20")
    model = prune_channels(masked90, info, X[:1], 0.5).model if structured else masked90
    done = export_model(model, REF, get_format("onnx", structured), tmp_path / "m.onnx", (3, 32, 32))
    assert done.bytes > 0 and done.max_abs_diff < 1e-3  # random-init logits are O(10)


# ---------------------------------------------------------------- sweep points and the CLI




@pytest.fixture(scope="module")
def savings_run(digits_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("savings")
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", device="cpu", levels=(0.5,),
                      methods=("global", "nm-2:4", "channels-layerwise"), latency=True, round_to=None,
                      runtime="onnxruntime", file_size=True)
    points = Sweep(cfg, out).run()
    return out, {p.method: p for p in points}


def test_sweep_points_carry_savings(savings_run):
    _, points = savings_run
    assert set(points) == {"dense", "global", "nm-2:4", "channels-layerwise"}
    dense, masked, nm, channels = (points[m] for m in ("dense", "global", "nm-2:4", "channels-layerwise"))
    assert masked.macs == dense.macs > masked.effective_macs  # zeros run in dense kernels: theory only
    assert channels.macs == channels.effective_macs < 0.7 * dense.macs  # physically smaller
    assert channels.total_params < dense.total_params and abs(channels.sparsity - 0.5) <= 0.005
    assert channels.file_format == "structured" and masked.file_format == "sparse"
    assert masked.file_bytes < dense.file_bytes
    assert nm.target_sparsity == 0.5 and 0.45 < nm.sparsity < 0.5  # the stem stays dense
    for p in points.values():
        assert p.latency_b1 > 0 and p.latency_b64 > 0 and p.latency_threads == 1
        assert p.latency_runtime == "onnxruntime"


def test_old_rows_without_savings_still_read(savings_run, tmp_path):
    import json
    import sqlite3

    out, _ = savings_run
    store = Store.open(out)
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                       "CREATE TABLE points (method TEXT, level_ppm INTEGER, seed INTEGER, row TEXT, "
                       "hits BLOB, created TEXT);")
    for row in store._conn.execute("SELECT * FROM points"):
        data = json.loads(row[3])
        for key in ("macs", "effective_macs", "file_bytes", "file_format", "latency_b1", "latency_b64",
                    "latency_threads", "latency_runtime"):
            data.pop(key)
        conn.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)", (*row[:3], json.dumps(data), *row[4:]))
    conn.commit()
    conn.close()
    store.close()
    old = Store.open(tmp_path)
    assert all(p.macs is None and p.file_bytes is None for p in old.points())
    old.close()


@pytest.mark.parametrize("method,fmt", [("global", "sparse"), ("global", "sparse-fp16"), ("nm-2:4", "onnx"),
                                        ("channels-layerwise", "structured"), ("channels-layerwise", "onnx")])
def test_cli_export_from_a_run(savings_run, monkeypatch, capsys, tmp_path, method, fmt):
    out, _ = savings_run
    code, stdout, err = run(monkeypatch, capsys, "export", out, "--method", method, "--level", 0.5,
                            "--format", fmt, "--out", tmp_path / "m.bin")
    assert code == 0, err
    assert "wrote" in stdout and "max |logit diff|" in stdout
    if fmt == "sparse":
        assert "bit-exact" in stdout


def test_cli_export_errors(savings_run, monkeypatch, capsys, tmp_path, digits_checkpoint):
    out, _ = savings_run
    code, _, err = run(monkeypatch, capsys, "export", out, "--method", "global", "--level", 0.7,
                       "--format", "sparse", "--out", tmp_path / "m")
    assert_user_error(code, err, "level 0.7", "not swept", "0.5")
    code, _, err = run(monkeypatch, capsys, "export", out, "--method", "global", "--level", 0.5,
                       "--format", "zip", "--out", tmp_path / "m")
    assert_user_error(code, err, "unknown format 'zip'")
    code, _, err = run(monkeypatch, capsys, "export", out, "--method", "channels-layerwise", "--level", 0.5,
                       "--format", "sparse", "--out", tmp_path / "m")
    assert_user_error(code, err, "structured")
    code, _, err = run(monkeypatch, capsys, "export", "--checkpoint", digits_checkpoint, "--method", "nm-2:5",
                       "--level", 0.6, "--format", "sparse", "--out", tmp_path / "m")
    assert_user_error(code, err, "conv2.weight", "not a multiple of 5")
    code, _, err = run(monkeypatch, capsys, "export", out, "--checkpoint", digits_checkpoint, "--method",
                       "global", "--level", 0.5, "--format", "sparse", "--out", tmp_path / "m")
    assert_user_error(code, err, "either")
    code, _, err = run(monkeypatch, capsys, "export", out, "--method", "global", "--level", 0.5,
                       "--layer-cap", 0.5, "--format", "sparse", "--out", tmp_path / "m")
    assert_user_error(code, err, "--layer-cap is for --checkpoint")


@pytest.mark.parametrize("method, options", [
    ("global+ft", ("--epochs", 1)), ("lamp", ("--prune-classifier",)), ("global", ("--layer-cap", 0.6)),
    ("channels-global+iter", ("--levels", "0.3,0.5", "--epochs", 1))])
def test_export_from_a_checkpoint_takes_every_method_and_option_a_sweep_takes(
        digits_checkpoint, monkeypatch, capsys, tmp_path, method, options):
    """The file holds the network a sweep with the same options measures at that point."""
    fmt = "structured" if method.startswith("channels") else "sparse"
    code, stdout, err = run(monkeypatch, capsys, "export", "--checkpoint", digits_checkpoint, "--method",
                            method, "--level", 0.5, "--format", fmt, "--out", tmp_path / "m", *options)
    assert code == 0 and "bit-exact" in stdout, err
    swept = ("sweep", digits_checkpoint, "--methods", method, "--out", tmp_path / "run", "--no-report",
             *options)
    if "--levels" not in options:
        swept += ("--levels", 0.5)
    code, _, err = run(monkeypatch, capsys, *swept)
    assert code == 0, err
    model = (load_structured if fmt == "structured" else load_sparse)(tmp_path / "m")[0]
    test = load_dataset("digits").test
    store = Store.open(tmp_path / "run")
    point = next(p for p in store.points() if p.method == method and p.target_sparsity == 0.5)
    store.close()
    assert evaluate(model, normalize(test.x, (0.5,), (0.5,)), test.y).correct == point.correct


def test_cli_export_untraceable_model_names_the_layer(monkeypatch, capsys, tmp_path):
    from test_structured import Opaque  # tests/ is on sys.path (pytest prepend mode)

    info = ModelInfo("opaque", "fc", "conv1", (0.5,) * 3, (0.5,) * 3, "test only", lambda n, c: Opaque())
    monkeypatch.setitem(MODELS._members, "opaque", info)
    save_checkpoint(tmp_path / "ck", Opaque(), ModelCard("opaque", 10, 3, (0.5,) * 3, (0.5,) * 3))
    code, _, err = run(monkeypatch, capsys, "export", "--checkpoint", tmp_path / "ck", "--method",
                       "channels-global", "--level", 0.5, "--format", "structured", "--out", tmp_path / "m")
    assert_user_error(code, err, "layer 'scale'", "cannot trace")


def test_report_shows_savings_labelled(savings_run, tmp_path):
    from PIL import Image

    from prunelab.report import write_report

    out, _ = savings_run
    rep = write_report(out, budget=100.0, n_boot=0, out=tmp_path / "rep", gif=False)  # every answer at 50%
    with Image.open(rep.files["savings_png"]) as png:
        png.verify()
    text = rep.files["markdown"].read_text()
    assert "What the pruned models really save" in text
    for label in ("counted, as run", "theory", "measured", "[structured]", "[sparse]",
                  "1 thread, onnxruntime", "each timed when its point finished"):
        assert label in text


def test_retime_times_every_point_side_by_side_and_changes_nothing_else(savings_run, monkeypatch, capsys,
                                                                         tmp_path):
    out, before = savings_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    code, stdout, err = run(monkeypatch, capsys, "retime", copy)
    assert code == 0, err
    store = Store.open(copy)
    after = {p.method: p for p in store.points()}
    store.close()
    assert after.keys() == before.keys()
    timing = ("latency_b1", "latency_b64", "latency_threads", "latency_runtime", "hits")
    for method, old in before.items():
        new = after[method]
        assert new.latency_b1 > 0 and new.latency_b64 > 0 and new.latency_b1 != old.latency_b1
        assert new.latency_threads == 1 and new.latency_runtime == "onnxruntime"  # the sweep's setup
        assert np.array_equal(new.hits, old.hits)
        assert {k: v for k, v in asdict(new).items() if k not in timing} == \
            {k: v for k, v in asdict(old).items() if k not in timing}
        assert f"{method} " in stdout
    text = (copy / "report" / "report.md").read_text()
    assert "all timed side by side by prunelab retime" in text


def test_retime_errors(savings_run, monkeypatch, capsys, tmp_path):
    code, _, err = run(monkeypatch, capsys, "retime", tmp_path / "nothing")
    assert_user_error(code, err, "holds no sweep results")
    code, _, err = run(monkeypatch, capsys, "retime", savings_run[0], "--threads", 0)
    assert_user_error(code, err, "threads must be a positive integer, got 0")


def test_unknown_latency_runtime_is_refused_before_any_work(digits_checkpoint, tmp_path):
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", device="cpu", latency=True,
                      runtime="tvm")
    with pytest.raises(PrunelabError,
                       match="unknown latency runtime .tvm.: choose from onnxruntime, onnxruntime-int8, "
                             "torch"):
        Sweep(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_moved_with_its_checkpoint_still_rebuilds_and_a_changed_checkpoint_is_refused(
        digits_checkpoint, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(digits_checkpoint, home / "model")
    cfg = SweepConfig(checkpoint=str(home / "model"), data="digits", device="cpu", levels=(0.5,),
                      methods=("global",), file_size=False)
    points = {p.method: p for p in Sweep(cfg, home / "runs" / "one").run()}
    assert points["global"].file_bytes is None and points["global"].file_format is None
    shutil.move(home, tmp_path / "moved")  # e.g. packed on a GPU machine, unpacked here
    args = ("export", tmp_path / "moved" / "runs" / "one", "--method", "global", "--level", 0.5,
            "--format", "sparse", "--out", tmp_path / "g.sparse")
    code, stdout, err = run(monkeypatch, capsys, *args)
    assert code == 0 and "bit-exact" in stdout, err
    other = create_model("smallcnn", 10, 1)  # another network in the checkpoint's place
    save_checkpoint(tmp_path / "moved" / "model", other, load_checkpoint(tmp_path / "moved" / "model")[1])
    code, _, err = run(monkeypatch, capsys, *args)
    assert_user_error(code, err, "holds other weights than run", "sha256 differs")

