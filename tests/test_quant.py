"""Quantization: schemes keep every zero and every nonzero, the file decodes to the network measured,
the sweep's quantized points are measured on that file, and bad input is one line."""

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run
from pruning_helpers import masked_resnet20

from prunelab.data import normalize
from prunelab.errors import PrunelabError
from prunelab.experiment.analysis import Sized, answer, pareto, smallest_within, split
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.rebuild import point_model
from prunelab.experiment.spec import MethodSpec
from prunelab.experiment.store import Store
from prunelab.experiment.sweep import Sweep
from prunelab.io.formats import export_model, get_format
from prunelab.io.formats.quantized import load_quantized, quantized_floor, save_quantized
from prunelab.io.formats.sparse import save_sparse
from prunelab.measure import evaluate
from prunelab.models import ModelCard
from prunelab.quant import QUANTIZERS, QuantSpec, quantize_model
from prunelab.quant.model import dequantized
from prunelab.quant.schemes.kmeans import kmeans_1d
from prunelab.quant.tune import hold_codes, release_codes

CARD = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"))
SPECS = ["kmeans2", "kmeans4", "uniform2", "uniform8"]


@pytest.fixture(scope="module")
def pruned80():
    return masked_resnet20(0.8)


@pytest.mark.parametrize("text", SPECS)
def test_zeros_stay_zero_and_no_kept_weight_becomes_zero(pruned80, text):
    spec = QuantSpec.parse(text)
    q = quantize_model(pruned80, spec)
    state = q.state_dict()
    for name, c in q.coded.items():
        before = pruned80.state_dict()[name]
        assert torch.equal(state[name] != 0, before != 0), name  # the same mask: sparsity unchanged
        assert c.codes.max(initial=0) < 2 ** spec.bits
        assert c.table.size <= (2 ** spec.bits if spec.quantizer.name == "kmeans" else before.shape[0])
        assert len(np.unique(state[name][before != 0].numpy())) <= 2 ** spec.bits * (
            1 if spec.quantizer.name == "kmeans" else before.shape[0])


@pytest.mark.parametrize("text", SPECS)
def test_quantizing_a_decoded_model_changes_nothing(pruned80, text):
    spec = QuantSpec.parse(text)
    once = dequantized(masked_resnet20(0.8), spec).state_dict()
    twice = quantize_model(dequantized(masked_resnet20(0.8), spec), spec).state_dict()
    for name in once:
        assert torch.equal(once[name], twice[name]), name


def test_more_bits_less_error(pruned80):
    w = pruned80.state_dict()["layer2.0.conv2.weight"]
    for scheme in ("kmeans", "uniform"):
        errors = [float((quantize_model(pruned80, QuantSpec.parse(f"{scheme}{b}")).state_dict()
                         ["layer2.0.conv2.weight"] - w).pow(2).sum()) for b in (2, 3, 4, 6, 8)]
        assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-2 * errors[0], (scheme, errors)


def test_kmeans_by_hand():
    assert np.allclose(kmeans_1d(np.array([1.0, 2.0, 10.0, 11.0, 12.0]), 2), [1.5, 11.0])
    assert np.array_equal(kmeans_1d(np.array([3.0, -1.0, 3.0]), 4), [-1.0, 3.0])  # fewer values: kept exactly


def test_uniform_by_hand():
    w = np.array([[0.9, -0.2, 0.0, -1.2]], dtype=np.float32)  # one row, max |w| 1.2, 2 bits
    q = QUANTIZERS.get("uniform").quantize(w, 2)
    scale = np.float32(np.float16(1.2 / 1.5))  # levels +-0.5 and +-1.5 scales
    assert np.array_equal(q.dequantize(), np.array([[1.5, -0.5, 0.0, -1.5]], dtype=np.float32) * scale)


def test_file_reads_back_bit_exactly_and_smaller_than_sparse(pruned80, tmp_path):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    sparse = save_sparse(tmp_path / "m.sparse", pruned80, CARD)
    for text in SPECS:
        spec = QuantSpec.parse(text)
        size = save_quantized(tmp_path / f"{text}.q", pruned80, CARD, spec)
        back, card = load_quantized(tmp_path / f"{text}.q")
        assert card.model == "resnet20"
        reference = dequantized(masked_resnet20(0.8), spec, fold=True).eval()
        with torch.inference_mode():
            assert torch.equal(back(x), reference(x)), text
        assert size < sparse
        floor = quantized_floor(pruned80, spec)
        assert 0.5 < size / floor.per_layer < 1.5, (text, size, floor)


def with_statistics(model):
    """`model` with batch-norm scales, shifts and statistics of a trained network's sizes."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data, m.bias.data = 0.5 + torch.rand(n, generator=g), 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.5 * torch.randn(n, generator=g)
            m.running_var = 0.5 + torch.rand(n, generator=g)
    return model


def test_file_folds_batch_norms_into_scale_and_shift_once(tmp_path):
    spec = QuantSpec.parse("kmeans4")
    model = with_statistics(masked_resnet20(0.8))
    unfolded = dequantized(with_statistics(masked_resnet20(0.8)), spec).eval()
    save_quantized(tmp_path / "m.q", model, CARD, spec)
    back, _ = load_quantized(tmp_path / "m.q")
    state = back.state_dict()
    assert all(torch.equal(state[k], torch.zeros_like(state[k])) for k in state if k.endswith("running_mean"))
    assert all(torch.equal(state[k], torch.ones_like(state[k])) for k in state if k.endswith("running_var"))
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = unfolded(x), back(x)
    assert not torch.equal(a, b) and (a - b).abs().max() < 1e-2 * a.abs().max()  # float16 rounding only
    again = quantize_model(back, spec, fold=True).state_dict()
    assert all(torch.equal(again[k], state[k]) for k in state)  # folding a folded network: nothing moves
    plain = quantize_model(model, spec)  # training keeps the statistics: unfolded unless asked
    assert not plain.folded and torch.equal(torch.from_numpy(plain.rest["bn1.running_var"]).float(),
                                            model.bn1.running_var.half().float())


def test_export_model_checks_the_file_against_the_quantized_network(pruned80, tmp_path):
    spec = QuantSpec.parse("kmeans3")
    done = export_model(pruned80, CARD, get_format("quantized", False, spec), tmp_path / "m.q", (3, 32, 32))
    assert done.max_abs_diff > 0  # the float model is not what the file holds ...
    held = dequantized(masked_resnet20(0.8), spec, fold=True)
    done = export_model(held, CARD, get_format("quantized", False, spec), tmp_path / "m.q", (3, 32, 32))
    assert done.max_abs_diff == 0 and done.floor is not None  # ... its quantized network is, bit for bit


def test_damaged_and_foreign_files_are_one_line(pruned80, tmp_path):
    path = tmp_path / "m.q"
    save_quantized(path, pruned80, CARD, QuantSpec.parse("kmeans4"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PrunelabError, match="damaged"):
        load_quantized(path)
    path.write_bytes(b"not a model at all")
    with pytest.raises(PrunelabError, match="not a prunelab quantized file"):
        load_quantized(path)


@pytest.mark.parametrize("text,needle", [
    ("kmeans1", "bits 1"), ("uniform9", "bits 9"), ("kmeans17", "bits 17"), ("uniform0", "bits 0"),
    ("eight", "<scheme><bits>"), ("kmean4", "did you mean kmeans"), ("kmeans", "<scheme><bits>"),
    ("kmeans4+iter", r"not '\+iter'")])
def test_bad_quantization_specs(text, needle):
    with pytest.raises(PrunelabError, match=needle):
        MethodSpec.parse(f"global@{text}")


def test_channel_methods_are_not_quantized():
    with pytest.raises(PrunelabError, match="channel-pruned"):
        MethodSpec.parse("channels-global@kmeans4")


def test_bits_expand_every_mask_method_and_bring_the_base():
    cfg = SweepConfig(checkpoint="x", methods=("global", "channels-global", "layerwise+ft@uniform8"),
                      bits=(4, 2), quantizers=("kmeans",))
    assert [m.text for m in cfg.method_specs()] == [
        "global", "global@kmeans4", "global@kmeans2", "channels-global", "layerwise+ft",
        "layerwise+ft@uniform8"]


def test_quantized_answer_does_not_start_at_the_dense_float_model(digits_checkpoint, tmp_path):
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), methods=("global@kmeans2",), levels=(0.3, 0.6))
    points = Sweep(cfg, tmp_path / "run").run()
    dense, curves = split(points)
    curve = curves["global@kmeans2"]
    assert curve.quantized and not curves["global"].quantized
    a = answer(dense, curve, budget=0.0, n_boot=50)
    if curve.top1[0] < dense.top1:  # its lowest level already misses a zero budget: no answer
        assert not a.found and np.isnan(a.sparsity)
    assert answer(dense, curve, budget=100.0, n_boot=50).sparsity == 0.6


def test_pareto_and_smallest_within():
    items = [Sized("a", 0.5, 100.0, 90.0, 4), Sized("b", 0.9, 50.0, 80.0, 4),
             Sized("c", 0.9, 120.0, 85.0, None), Sized("d", 0.95, 40.0, 70.0, 2)]
    assert [s.method for s in pareto(items)] == ["d", "b", "a"]  # c: bigger than a and worse
    assert smallest_within(items, 91.0, 1.5).method == "a"
    assert smallest_within(items, 91.0, 12.0).method == "b"
    assert smallest_within(items, 99.0, 1.0) is None


@pytest.fixture(scope="module")
def quant_run(digits_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("qrun") / "run"
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), methods=("global",), levels=(0.5, 0.8), bits=(4, 2))
    return out, Sweep(cfg, out).run()


def test_sweep_measures_the_file_it_would_export(quant_run, digits, monkeypatch, capsys, tmp_path):
    out, points = quant_run
    by = {(p.method, p.target_sparsity): p for p in points}
    assert {m for m, _ in by} == {"dense", "global", "global@kmeans4", "global@kmeans2", "global@uniform4",
                                  "global@uniform2"}
    for (method, level), p in by.items():
        if "@" not in method:
            assert p.bits is None
            continue
        base = by[(method.partition("@")[0], level)]
        assert p.bits == int(method[-1]) and p.quantizer == method.split("@")[1][:-1]
        assert p.nonzero_params == base.nonzero_params and p.sparsity == base.sparsity
        assert p.file_format == "quantized" and p.file_bytes > 0
        code, said, err = run(monkeypatch, capsys, "export", out, "--method", method, "--level", level,
                              "--format", "quantized", "--out", tmp_path / "m.q")
        assert code == 0, err
        assert "bit-exact" in said and f"{p.file_bytes:,} bytes" in said
        model, _ = load_quantized(tmp_path / "m.q")
        x = normalize(digits.test.x, (0.5,), (0.5,))
        assert evaluate(model, x, digits.test.y).correct == p.correct  # the stored figure is the file's
    fewer = {p.method: p.file_bytes for p in points if p.target_sparsity == 0.8 and p.bits}
    assert fewer["global@kmeans2"] < fewer["global@kmeans4"]


def test_bits_added_to_a_run_compute_only_the_new_points(quant_run, digits_checkpoint):
    out, points = quant_run
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), methods=("global",), levels=(0.5, 0.8), bits=(4, 3))
    sweep = Sweep(cfg, out)
    assert sorted({p.method.text for p in sweep.todo}) == ["global@kmeans3", "global@uniform3"]
    sweep.run()
    store = Store.open(out)
    assert len(store.points()) == len(points) + 4
    store.close()


def test_report_shows_the_memory_frontier(quant_run, monkeypatch, capsys):
    out, _ = quant_run
    code, said, err = run(monkeypatch, capsys, "report", out, "--no-gif", "--budget", "100")
    assert code == 0, err
    assert "smallest file within 100 pt: global@kmeans2 at 80.0%" in said
    text = (out / "report" / "report.md").read_text()
    assert "## Memory: top-1 against the file on disk" in text and "Pareto" in text
    assert (out / "report" / "accuracy_vs_bytes.png").stat().st_size > 0


@pytest.mark.parametrize("args,needles", [
    (["--bits", "0"], ["bits 0", "2 to 8"]),
    (["--bits", "eight"], ["'eight'", "int"]),
    (["--bits", "4", "--quantizers", "huffman"], ["unknown quantizer 'huffman'"]),
    (["--methods", "channels-layerwise@uniform8"], ["channel-pruned"]),
])
def test_cli_bad_bits_are_one_line(digits_checkpoint, monkeypatch, capsys, tmp_path, args, needles):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--levels", "0.5", *args,
                       "--out", tmp_path / "run")
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_cli_export_quantized_needs_the_quantization(quant_run, monkeypatch, capsys, tmp_path):
    out, _ = quant_run
    code, _, err = run(monkeypatch, capsys, "export", out, "--method", "global", "--level", "0.5",
                       "--format", "quantized", "--out", tmp_path / "m.q")
    assert_user_error(code, err, "global@kmeans4")


@pytest.mark.parametrize("text", ["kmeans3", "uniform4"])
def test_held_codes_compute_the_quantized_network_and_train_only_the_tables(pruned80, text):
    spec = QuantSpec.parse(text)
    model = masked_resnet20(0.8)
    hold_codes(model, quantize_model(model, spec))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.equal(model(x), dequantized(masked_resnet20(0.8), spec)(x))
    model.train()
    model(x).square().mean().backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    release_codes(model.eval())
    then = quantize_model(dequantized(masked_resnet20(0.8), spec), spec).coded
    assert list(model.state_dict()) == list(pruned80.state_dict())  # the file's order: the same file
    moved = 0
    for name, c in quantize_model(model, spec).coded.items():
        before = pruned80.state_dict()[name]
        assert torch.equal(model.state_dict()[name] != 0, before != 0), name  # the mask held
        # The codes held: the weights sharing a value (per row for scales) still share one and no other.
        per_row = spec.quantizer.name == "uniform"
        now, old = ([(r, k) if per_row else k for r, k in zip(q.rows.tolist(), q.codes.tolist(), strict=True)]
                    for q in (c, then[name]))
        assert len(set(zip(now, old, strict=True))) == len(set(now)) == len(set(old)), name
        moved += not np.array_equal(c.table, then[name].table)
    assert moved > 0  # ... and the tables trained


@pytest.mark.parametrize("after", ["ft", "bn"])
def test_recovered_quantized_points_keep_their_file(quant_run, digits_checkpoint, digits, monkeypatch, capsys,
                                                    tmp_path, after):
    out, _ = quant_run
    method = f"global@kmeans2+{after}"
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), methods=("global", method), levels=(0.5, 0.8),
                      bits=(4, 2))
    sweep = Sweep(cfg, out)  # joins the run: the same recipe
    assert sorted({p.method.text for p in sweep.todo}) == [method]
    by = {(p.method, p.target_sparsity): p for p in sweep.run()}
    recovered, plain = by[(method, 0.8)], by[("global@kmeans2", 0.8)]
    assert recovered.nonzero_params == plain.nonzero_params and recovered.bits == 2
    kept = out / "models" / f"global@kmeans2_{after}-seed0" / "0800000.quantized"
    assert kept.stat().st_size == recovered.file_bytes
    model, _ = load_quantized(kept)
    x = normalize(digits.test.x, (0.5,), (0.5,))
    assert evaluate(model, x, digits.test.y).correct == recovered.correct
    plain_model = dequantized(load_quantized(kept)[0], QuantSpec.parse("kmeans2"))
    changed = [n for n, t in model.state_dict().items() if not torch.equal(t, plain_model.state_dict()[n])]
    assert changed == []  # quantizing it again changes nothing: its file is what export writes
    code, said, err = run(monkeypatch, capsys, "export", out, "--method", method, "--level", 0.8,
                          "--format", "quantized", "--out", tmp_path / "m.q")
    assert code == 0 and "bit-exact" in said, err
    assert (tmp_path / "m.q").read_bytes() == kept.read_bytes()
    plain_net = point_model(out, "global@kmeans2", 0.8)[0].model.state_dict()
    moved = {n for n, t in model.state_dict().items() if not torch.equal(t.float(), plain_net[n].float())}
    assert {"bn1.weight", "bn1.bias"} <= moved  # batch norm re-estimated (or retrained), then folded
    assert any(n.endswith("conv1.weight") for n in moved) == (after == "ft")  # weights: only tuning


def test_int8_onnx_has_qdq_nodes_and_its_top1_is_measured(quant_run, monkeypatch, capsys, tmp_path):
    import onnx

    out, _ = quant_run
    code, said, err = run(monkeypatch, capsys, "export", out, "--method", "global", "--level", 0.5,
                          "--format", "onnx-int8", "--out", tmp_path / "m.onnx")
    assert code == 0, err
    ops = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    file_top1, net_top1 = (float(v) for v in
                           said.split("test top-1 of the file ")[1].rstrip("%\n").split("% vs the network "))
    assert abs(file_top1 - net_top1) < 10  # int8 of a small CNN: close, not equal


def test_int8_runtime_times_the_int8_file(pruned80):
    from prunelab.measure import latency

    t = latency(pruned80, (3, 32, 32), batch=2, threads=1, warmup=1, repeats=2, runtime="onnxruntime-int8")
    assert t.median > 0 and t.runtime == "onnxruntime-int8"


def test_methods_lists_every_quantizer(monkeypatch, capsys):
    code, said, _ = run(monkeypatch, capsys, "methods")
    assert code == 0
    for q in QUANTIZERS:
        assert f"  {q.name} " in said
    assert "@kmeans3+ft" in said and "@kmeans3+bn" in said


def test_quant_lr_is_the_tables_learning_rate_and_fixes_results_only_when_set(digits_checkpoint, tmp_path,
                                                                              monkeypatch, capsys):
    from prunelab.experiment.fingerprint import recipe
    from prunelab.experiment.spec import MethodSpec
    from prunelab.recovery import RecoveryConfig

    rc, tuned = RecoveryConfig(lr=0.02), RecoveryConfig(lr=0.02, quant_lr=0.002)
    assert rc.for_quantized() is rc and tuned.for_quantized().lr == 0.002
    one_shot, ft = MethodSpec.parse("global@kmeans2"), MethodSpec.parse("global+ft@kmeans2+ft")
    assert recipe(one_shot, rc, {}) == recipe(one_shot, tuned, {}) == {}  # no tables tuned: not its recipe
    both = recipe(ft, tuned, {})
    assert both["quant_recovery"]["lr"] == 0.002 and both["recovery"]["lr"] == 0.02
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "global@kmeans2+ft",
                       "--quant-lr", "-1", "--levels", "0.5", "--out", tmp_path / "run")
    assert_user_error(code, err, "--quant-lr")


def test_quant_epochs_is_the_tables_own_schedule_length_and_is_checked(digits_checkpoint, tmp_path,
                                                                         monkeypatch, capsys):
    from prunelab.experiment.fingerprint import recipe
    from prunelab.experiment.spec import MethodSpec
    from prunelab.recovery import RecoveryConfig

    rc = RecoveryConfig(epochs=10, quant_epochs=2)
    assert rc.for_quantized().epochs == 2 and rc.for_quantized().lr == rc.lr
    both = recipe(MethodSpec.parse("global+ft@kmeans2+ft"), rc, {})
    assert both["quant_recovery"]["epochs"] == 2 and both["recovery"]["epochs"] == 10
    for bad in ("0", "-3"):
        code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "global@kmeans2+ft",
                           "--quant-epochs", bad, "--levels", "0.5", "--out", tmp_path / "run")
        assert_user_error(code, err, "--quant-epochs")


def test_int8_onnx_from_a_checkpoint_is_traced_at_the_size_of_the_data_it_is_measured_on(
        digits_checkpoint, monkeypatch, capsys, tmp_path):
    # the 8x8 digits network: tracing it at the 32x32 default made onnxruntime refuse the test images
    code, said, err = run(monkeypatch, capsys, "export", "--checkpoint", digits_checkpoint, "--method",
                          "global", "--level", 0.5, "--format", "onnx-int8", "--out", tmp_path / "m.onnx")
    assert code == 0, err
    assert "test top-1 of the file" in said
