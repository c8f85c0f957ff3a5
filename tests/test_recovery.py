"""Recovery: iterative chains only grow their masks and resume exactly, a point cut mid-retraining
resumes from its last epoch, gradual reaches its level,
batch-norm recalibration touches statistics only, schedules are pure."""

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.runfolder import RunFolder
from prunelab.experiment.spec import MethodSpec, parse_levels
from prunelab.experiment.sweep import Sweep
from prunelab.pruning.schedules import cubic, geometric
from prunelab.recovery import RecoveryConfig

LEVELS = (0.5, 0.8, 0.9)
FAST = RecoveryConfig(epochs=1, lr=0.01, batch_size=128, bn_batches=4, gradual_every=2)


def config(ckpt, methods, **kw):
    return SweepConfig(checkpoint=str(ckpt), data="digits", methods=methods, levels=LEVELS, seeds=(0,),
                       device="cpu", recovery=FAST, **kw)


def by_key(points):
    return {p.key: p for p in points}


def test_iterative_chain_grows_masks_and_counts_exactly(digits_checkpoint, tmp_path):
    sweep = Sweep(config(digits_checkpoint, ("global+iter",)), tmp_path)
    points = [p for p in sweep.run() if p.method == "global+iter"]
    assert [p.target_sparsity for p in points] == list(LEVELS)
    for p in points:  # fine-tuning kept every pruned weight exactly zero
        assert p.prunable_params - p.nonzero_params == round(p.target_sparsity * p.prunable_params)
    chain = sorted((tmp_path / "chains" / "global_iter-seed0").glob("*.safetensors"))
    masks = [{k: v.bool() for k, v in load_file(str(f)).items() if k.startswith("mask::")} for f in chain]
    assert len(masks) == 3
    for earlier, later in zip(masks, masks[1:], strict=False):
        for name in earlier:
            assert not (later[name] & ~earlier[name]).any()  # nothing pruned comes back


@pytest.mark.parametrize("spec", ["global+iter", "channels-layerwise+iter"])
def test_iterative_chain_resumes_exactly(digits_checkpoint, tmp_path, spec):
    full = by_key(Sweep(config(digits_checkpoint, (spec,)), tmp_path / "full").run())
    sweep = Sweep(config(digits_checkpoint, (spec,)), tmp_path / "cut")
    done = []

    def stop(point):
        done.append(point)
        if len(done) == 2:  # dense + the first chain level
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run(stop)
    sweep.store.close()
    resumed = Sweep(config(digits_checkpoint, (spec,)), tmp_path / "cut")
    assert len(resumed.todo) == 2
    again = by_key(resumed.run())
    assert again.keys() == full.keys()
    for key, p in full.items():
        assert again[key].correct == p.correct and np.array_equal(again[key].hits, p.hits), key


@pytest.mark.parametrize("spec", ["global+ft", "channels-layerwise+ft", "global+gradual", "global+iter"])
def test_point_interrupted_mid_retraining_resumes_from_its_last_epoch(digits_checkpoint, tmp_path, spec):
    two = dataclasses.replace(FAST, epochs=2)
    cfg = dataclasses.replace(config(digits_checkpoint, (spec,)), levels=(0.8,), recovery=two)
    full = by_key(Sweep(cfg, tmp_path / "full").run())
    sweep = Sweep(cfg, tmp_path / "cut")

    def stop(method, level, seed, record):  # the first retraining epoch ends, then Ctrl-C
        raise KeyboardInterrupt

    sweep.on_train_epoch = stop
    with pytest.raises(KeyboardInterrupt):
        sweep.run()
    sweep.store.close()
    partial = RunFolder(tmp_path / "cut").partial_dir(MethodSpec.parse(spec), 0.8, 0)
    assert (partial / "train_state.pt").exists()
    resumed = Sweep(cfg, tmp_path / "cut")
    epochs = []
    resumed.on_train_epoch = lambda method, level, seed, record: epochs.append(record["epoch"])
    again = by_key(resumed.run())
    assert epochs == [2]  # only the epoch the interrupt cost is trained again
    assert not partial.exists()  # the stored point needs no training state
    assert not partial.parent.parent.exists()  # nor empty folders in the run folder
    for key, p in full.items():
        assert again[key].correct == p.correct and np.array_equal(again[key].hits, p.hits), key
        assert again[key].nonzero_params == p.nonzero_params, key


def test_gradual_reaches_its_level_exactly(digits_checkpoint, tmp_path):
    points = Sweep(config(digits_checkpoint, ("global+gradual",)), tmp_path).run()
    for p in points:
        if p.method == "global+gradual":
            assert p.prunable_params - p.nonzero_params == round(p.target_sparsity * p.prunable_params)


def test_bn_recalibration_changes_statistics_not_weights(digits_checkpoint, tmp_path):
    sweep = Sweep(config(digits_checkpoint, ("global", "global+bn")), tmp_path)
    plain = sweep.point("global", 0.8, 0)
    weights_plain = {k: v.clone() for k, v in sweep.workbench.model.state_dict().items()}  # as measured
    recal = sweep.point("global+bn", 0.8, 0)
    state = sweep.workbench.model.state_dict()
    for k, v in weights_plain.items():
        if "running" in k:
            assert not torch.equal(v, state[k]), k
        elif "num_batches" not in k:
            assert torch.equal(v, state[k]), k
    assert plain.nonzero_params == recal.nonzero_params


def test_cubic_schedule():
    values = [cubic(t, 0.9, begin=10, ramp_steps=100, every=10) for t in range(0, 130)]
    assert values[0] == values[10] == 0.0 and values[110] == values[129] == 0.9
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))
    assert len(set(values[10:110])) == 10  # changes only every 10 steps
    assert cubic(60, 0.9, 10, 100) == pytest.approx(0.9 - 0.9 * 0.5 ** 3)


def test_geometric_levels():
    assert geometric(3, 0.2) == (0.2, 0.36, 0.488)
    assert parse_levels("geometric:0.2:3") == (0.2, 0.36, 0.488)
    with pytest.raises(PrunelabError):
        parse_levels("geometric:1.5:3")


def test_method_specs():
    spec = MethodSpec.parse("layerwise+iter")
    assert spec.pruner.name == "layerwise" and spec.recovery.chained and not spec.from_checkpoint
    assert MethodSpec.parse("global").recovery.one_shot and MethodSpec.parse("global").from_checkpoint
    with pytest.raises(PrunelabError, match="did you mean iter"):
        MethodSpec.parse("global+itr")
    with pytest.raises(PrunelabError, match="unknown retraining mode 'rewnd'"):
        Sweep(SweepConfig(checkpoint="x", data="digits", recovery=RecoveryConfig(retrain="rewnd")), "/tmp/x")


def test_one_shot_after_a_retrained_point_starts_from_the_trained_weights(digits_checkpoint, tmp_path):
    sweep = Sweep(config(digits_checkpoint, ("global", "global+ft")), tmp_path / "a")
    sweep.point("global+ft", 0.8, 0)  # retrains the sweep's model in place
    after = sweep.point("global", 0.5, 0)
    dense_after = sweep.point("dense", 0.0, 0)
    fresh = Sweep(config(digits_checkpoint, ("global",)), tmp_path / "b")
    assert np.array_equal(after.hits, fresh.point("global", 0.5, 0).hits)
    assert np.array_equal(dense_after.hits, fresh.point("dense", 0.0, 0).hits)


@pytest.mark.parametrize("spec", ["global+ft", "global+iter", "channels-global+ft", "channels-layerwise+bn",
                                  "channels-global+iter"])
def test_retrained_points_are_kept_and_exported_exactly(digits_checkpoint, tmp_path, spec):
    from prunelab.experiment.rebuild import point_model
    from prunelab.measure import evaluate

    sweep = Sweep(config(digits_checkpoint, (spec,)), tmp_path)
    points = {p.target_sparsity: p for p in sweep.run() if p.method == spec}
    pruned, _, shape = point_model(tmp_path, spec, 0.8)
    assert shape == sweep.workbench.input_shape
    test = sweep.workbench.test.tensors(sweep.workbench.device)
    assert np.array_equal(evaluate(pruned.model, *test).hits, points[0.8].hits)  # bit-exact
    params = sum(p.numel() for p in pruned.model.parameters())
    assert params == points[0.8].total_params
    if spec.startswith("channels"):  # physically smaller, not masked
        assert params < points[0.5].total_params


@pytest.mark.parametrize("prune_classifier", [False, True])  # channels never touch the classifier
def test_iterative_channel_chain_shrinks_the_last_retrained_network(digits_checkpoint, tmp_path, monkeypatch,
                                                                    prune_classifier):
    import prunelab.pruning.structured as structured_module
    from prunelab.io.formats.structured import load_structured
    from prunelab.pruning.masks import prunable_weights

    starts = []
    real = structured_module.prune_channels

    def spy(model, info, x, level, *args, **kwargs):
        result = real(model, info, x, level, *args, **kwargs)
        before = sum(w.numel() for w in prunable_weights(model, info.classifier).values())
        left = sum(w.numel() for w in prunable_weights(result.model, info.classifier).values())
        starts.append((sum(p.numel() for p in model.parameters()), level, 1 - left / before))
        return result

    monkeypatch.setattr(structured_module, "prune_channels", spy)  # imported where channels go
    sweep = Sweep(config(digits_checkpoint, ("channels-layerwise+iter",), prune_classifier=prune_classifier),
                  tmp_path)
    points = {p.target_sparsity: p for p in sweep.run() if p.method != "dense"}
    dense_params = sum(p.numel() for p in sweep.dense_state.values() if p.is_floating_point())
    assert starts[0][0] <= dense_params and starts[0][1] == pytest.approx(0.5)
    for (before, _, _), (after, asked, step), lv in zip(starts[:-1], starts[1:], LEVELS[1:], strict=True):
        assert after < before  # each step starts from the last level's smaller network ...
        assert asked == pytest.approx(lv) and step < lv  # ... and removes only what is still missing
    for lv, p in points.items():  # ... and the level is still counted against the original weights
        assert abs(p.sparsity - lv) <= 0.05 and p.prunable_params == sum(n for _, n in p.layers.values())
    files = [load_structured(f)[0] for f in sorted((tmp_path / "models").rglob("*.safetensors"))]
    widths = [[m.out_channels for m in f.modules() if isinstance(m, torch.nn.Conv2d)] for f in files]
    for earlier, later in zip(widths, widths[1:], strict=False):
        assert all(b <= a for a, b in zip(earlier, later, strict=True))  # channels only ever go


def test_channel_pruning_has_no_gradual_schedule_and_old_runs_say_why(digits_checkpoint, tmp_path):
    from prunelab.experiment.rebuild import point_model

    with pytest.raises(PrunelabError, match=r"no gradual schedule.*channels-global\+iter"):
        MethodSpec.parse("channels-global+gradual")
    sweep = Sweep(config(digits_checkpoint, ("global+ft", "global+iter")), tmp_path)
    points = {(p.method, p.target_sparsity): p for p in sweep.run()}
    sweep.store.close()
    for f in (tmp_path / "models").rglob("*.sparse"):
        f.unlink()  # as in a run from before sweeps kept retrained models
    with pytest.raises(PrunelabError, match="kept no model"):
        point_model(tmp_path, "global+ft", 0.5)
    from prunelab.measure import evaluate

    pruned = point_model(tmp_path, "global+iter", 0.8)[0]  # an iterative chain's saved state serves
    test = sweep.workbench.test.tensors(sweep.workbench.device)
    assert np.array_equal(evaluate(pruned.model, *test).hits, points["global+iter", 0.8].hits)


def test_distillation_and_training_data_are_part_of_the_configuration(digits_checkpoint, tmp_path):
    import dataclasses

    kd = dataclasses.replace(FAST, distill=0.5)
    plain = Sweep(config(digits_checkpoint, ("global+ft",)), tmp_path / "plain")
    from prunelab.experiment.fingerprint import recipes

    assert "distill" not in recipes(plain.cfg)["global+ft"]["recovery"]  # stores from before it resume
    assert plain.workbench.teacher is None
    sweep = Sweep(SweepConfig(checkpoint=str(digits_checkpoint), data="digits", train_data="digits",
                              methods=("global+ft",), levels=LEVELS, device="cpu", recovery=kd),
                  tmp_path / "kd")
    assert recipes(sweep.cfg)["global+ft"]["recovery"]["distill"] == 0.5
    assert "train_sha256" in sweep.fingerprint
    dense = {k: v.clone() for k, v in sweep.workbench.model.state_dict().items()}
    point = sweep.point("global+ft", 0.8, 0)
    assert point.prunable_params - point.nonzero_params == round(0.8 * point.prunable_params)
    for k, v in sweep.workbench.teacher.state_dict().items():  # the teacher is the dense model, untouched
        assert torch.equal(v, dense[k]), k
    plain.point("global+ft", 0.8, 0)  # the same retraining without the teacher trains otherwise
    assert any(not torch.equal(a, b) for a, b in zip(plain.workbench.model.state_dict().values(),
                                                      sweep.workbench.model.state_dict().values(),
                                                      strict=True))


def test_report_states_the_retraining_recipe(digits_checkpoint, tmp_path):
    import dataclasses

    from prunelab.report import write_report

    kd = dataclasses.replace(FAST, distill=0.25)
    Sweep(config(digits_checkpoint, ("global", "global+bn")), tmp_path / "bn").run()
    Sweep(SweepConfig(checkpoint=str(digits_checkpoint), data="digits", train_data="digits",
                      methods=("global+ft",), levels=(0.5,), device="cpu", recovery=kd),
          tmp_path / "kd").run()
    Sweep(config(digits_checkpoint, ("global",)), tmp_path / "plain").run()
    bn = (write_report(tmp_path / "bn").folder / "report.md").read_text()
    assert "- recovery of global+bn: batch-norm statistics re-estimated on 4 batches of 128" in bn
    assert "retraining" not in bn and "distill" not in bn
    md = (write_report(tmp_path / "kd").folder / "report.md").read_text()
    assert "- recovery of global+ft: retraining, 1 epoch(s) per level or round, constant lr 0.01" in md
    assert "distillation from the dense network, weight 0.25, T 4.0" in md
    assert "- training images: `digits` (sha256 " in md
    assert "retraining" not in (write_report(tmp_path / "plain").folder / "report.md").read_text()


def test_retraining_resizes_progressively_and_the_sizes_are_part_of_the_recipe(digits_checkpoint, tmp_path):
    """--train-sizes 4:0.5: the first half of a point's retraining epochs on 4x4 images, the rest
    at the digits' 8x8; a run of those points resumes only with the same sizes."""
    resized = dataclasses.replace(FAST, epochs=2, sizes=((4, 0.5),))
    cfg = dataclasses.replace(config(digits_checkpoint, ("global+gradual",)), levels=(0.8,), recovery=resized)
    sweep = Sweep(cfg, tmp_path / "run")
    sizes = []
    sweep.on_train_epoch = lambda method, level, seed, record: sizes.append(record["size"])
    point = next(p for p in sweep.run() if p.method == "global+gradual")
    sweep.store.close()
    assert sizes == [4, 8]
    assert point.prunable_params - point.nonzero_params == round(0.8 * point.prunable_params)
    with pytest.raises(PrunelabError, match="another recipe"):
        Sweep(dataclasses.replace(cfg, recovery=dataclasses.replace(resized, sizes=())), tmp_path / "run")
    Sweep(cfg, tmp_path / "run").store.close()  # the same sizes resume it
