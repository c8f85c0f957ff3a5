"""Training: masks held exactly through SGD, schedules are pure, resume equals an uninterrupted run."""

import dataclasses
import importlib

import pytest
import torch
from pruning_helpers import masks_of

from prunelab.errors import PrunelabError
from prunelab.models import create_model, model_info
from prunelab.pruning.masks import prunable_weights
from prunelab.training import (
    TrainConfig,
    augment,
    cosine_lr,
    distillation_loss,
    epoch_steps,
    fit,
    lr_at,
    new_model,
)

CPU = torch.device("cpu")


def small_data(digits, n=256):
    """The first n training images of digits: a few steps per epoch."""
    train = dataclasses.replace(digits.train, x=digits.train.x[:n], y=digits.train.y[:n])
    test = dataclasses.replace(digits.test, x=digits.test.x[:100], y=digits.test.y[:100])
    return dataclasses.replace(digits, train=train, test=test)


def model_and_masks(sparsity=0.7):
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, 1)
    weights = prunable_weights(model, model_info("smallcnn").classifier)
    return model, masks_of("global", weights, sparsity)


@pytest.mark.parametrize("clip", [None, 0.5])
def test_masked_weights_stay_exactly_zero(digits, clip):
    model, masks = model_and_masks()
    cfg = TrainConfig(epochs=2, lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=32, clip_grad=clip)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, small_data(digits), (0.5,), (0.5,), cfg, CPU, masks=masks)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert (params[name][~mask] == 0).all()  # pruned: exactly zero despite momentum and decay
        assert not torch.equal(params[name][mask], before[name][mask])  # kept: trained


def test_bf16_trains_where_the_device_has_it_and_the_record_says_so(digits, monkeypatch):
    """amp is bf16 autocast where the device computes bf16 natively (forced here, so the path runs
    on every CPU); weights stay float32, masks exact, and each epoch's record names the precision."""
    monkeypatch.setattr(importlib.import_module("prunelab.training.fit"), "native_bf16", lambda device: True)
    trained = {}
    for amp in (True, False):
        model, masks = model_and_masks()
        cfg = TrainConfig(epochs=1, lr=0.1, batch_size=32, amp=amp)
        history = fit(model, small_data(digits), (0.5,), (0.5,), cfg, CPU, masks=masks)
        assert history.epochs[-1]["precision"] == ("bf16" if amp else "fp32")
        params = dict(model.named_parameters())
        assert all(p.dtype == torch.float32 for p in params.values())
        assert all((params[name][~mask] == 0).all() for name, mask in masks.items())
        trained[amp] = model.state_dict()
    assert any(not torch.equal(trained[True][k], trained[False][k]) for k in trained[True])


def test_resume_equals_uninterrupted(digits, tmp_path):
    data = small_data(digits)
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=64)
    whole, masks = model_and_masks()
    fit(whole, data, (0.5,), (0.5,), cfg, CPU, masks=masks, state_dir=tmp_path / "a")

    cut, masks = model_and_masks()
    seen = []

    def stop_after_one(record):
        seen.append(record)
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cut, data, (0.5,), (0.5,), cfg, CPU, masks=masks, state_dir=tmp_path / "b",
            on_epoch=stop_after_one)
    resumed, _ = model_and_masks()  # a fresh process: weights, optimizer and RNG come from the state
    history = fit(resumed, data, (0.5,), (0.5,), cfg, CPU, masks=masks, state_dir=tmp_path / "b")
    assert len(history.epochs) == 3
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_state_saved_under_another_recipe_is_an_error_not_a_restart(digits, tmp_path):
    data = small_data(digits)
    model, masks = model_and_masks()
    fit(model, data, (0.5,), (0.5,), TrainConfig(epochs=1, lr=0.05, batch_size=64), CPU, masks=masks,
        state_dir=tmp_path)
    saved = (tmp_path / "train_state.pt").read_bytes()
    with pytest.raises(PrunelabError, match=r"another recipe \(lr 0.05 -> 0.1\)"):
        fit(model, data, (0.5,), (0.5,), TrainConfig(epochs=1, lr=0.1, batch_size=64), CPU, masks=masks,
            state_dir=tmp_path)
    assert (tmp_path / "train_state.pt").read_bytes() == saved  # the hours it holds are kept


def test_pruner_grows_masks_during_training(digits):
    model, _ = model_and_masks()
    weights = prunable_weights(model, model_info("smallcnn").classifier)
    state = {"masks": None}

    def pruner(step, net, masks):
        if step % 4 == 0:
            state["masks"] = masks_of("global", weights, min(0.2 * (step // 4 + 1), 0.8),
                                      prior=state["masks"])
            return state["masks"]
        return None

    fit(model, small_data(digits), (0.5,), (0.5,), TrainConfig(epochs=2, batch_size=32), CPU,
        pruner=pruner)
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    assert zeros == round(0.8 * total)


def test_learning_rate_schedules_are_pure():
    assert cosine_lr(0, 100, 0.1) == pytest.approx(0.1)
    assert cosine_lr(50, 100, 0.1) == pytest.approx(0.05)
    assert cosine_lr(100, 100, 0.1) == pytest.approx(0.0)
    cfg = TrainConfig(epochs=5, schedule_epochs=20, rewind_epoch=15, lr=0.1)
    assert lr_at(0, 10, cfg) == pytest.approx(cosine_lr(150, 200, 0.1))  # rewound to epoch 15
    assert lr_at(49, 10, cfg) == pytest.approx(cosine_lr(199, 200, 0.1))
    assert lr_at(7, 10, TrainConfig(schedule="constant", lr=0.003)) == 0.003


def test_augment_keeps_shape_and_pixels():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment(x, pad=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    assert torch.equal(augment(x, 0, False, torch.Generator()), x)


@pytest.mark.parametrize("bad", [dict(epochs=-1), dict(lr=0.0), dict(schedule="step"),
                                 dict(rewind_epoch=40), dict(distill=1.5), dict(temperature=0.0),
                                 dict(warmup_epochs=-1), dict(epochs=4, warmup_epochs=4),
                                 dict(label_smoothing=1.0), dict(label_smoothing=-0.1)])
def test_bad_recipe_is_refused(digits, bad):
    with pytest.raises(PrunelabError):
        fit(create_model("smallcnn", 10, 1), small_data(digits), (0.5,), (0.5,), TrainConfig(**bad), CPU)


def test_distillation_loss_is_cross_entropy_at_weight_zero_and_kl_at_one():
    torch.manual_seed(0)
    logits, teacher, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert torch.equal(distillation_loss(logits, teacher, y, 0.0, 4.0), ce)
    assert distillation_loss(teacher, teacher, y, 1.0, 4.0).abs() < 1e-6  # matching the teacher: 0
    kl = distillation_loss(logits, teacher, y, 1.0, 2.0)
    p = torch.softmax(teacher / 2, 1)
    want = 4 * (p * (p.log() - torch.log_softmax(logits / 2, 1))).sum(1).mean()
    assert torch.allclose(kl, want, atol=1e-6)


def test_distillation_follows_the_teacher_not_the_labels(digits):
    data = small_data(digits)
    # A teacher that learnt to answer (label + 1) mod 10: its soft targets contradict the labels.
    shifted = dataclasses.replace(data, train=dataclasses.replace(data.train, y=(data.train.y + 1) % 10))
    teacher = create_model("smallcnn", 10, 1)
    fit(teacher, shifted, (0.5,), (0.5,), TrainConfig(epochs=6, lr=0.05, batch_size=32), CPU,
        evaluate_every=0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = (data.train.x.float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        taught = teacher.eval()(x).argmax(1)

    def agreement(weight):
        student, masks = model_and_masks(0.5)
        cfg = TrainConfig(epochs=6, lr=0.05, batch_size=32, distill=weight, temperature=2.0)
        fit(student, data, (0.5,), (0.5,), cfg, CPU, masks=masks, teacher=teacher, evaluate_every=0)
        with torch.no_grad():
            return (student.eval()(x).argmax(1) == taught).float().mean().item()

    assert agreement(1.0) > 0.4 and agreement(0.0) < 0.1  # chance is 0.1
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())  # never trained


def test_distillation_without_a_teacher_is_refused(digits):
    with pytest.raises(PrunelabError, match="no teacher"):
        fit(create_model("smallcnn", 10, 1), small_data(digits), (0.5,), (0.5,),
            TrainConfig(epochs=1, distill=0.5), CPU)


def test_warm_up_rises_linearly_then_the_cosine_runs_over_the_rest():
    cfg = TrainConfig(epochs=10, lr=0.4, warmup_epochs=2)
    per_epoch = 5
    warm = [lr_at(t, per_epoch, cfg) for t in range(10)]
    assert warm == pytest.approx([0.4 * (t + 1) / 10 for t in range(10)])  # 0.04 ... 0.4
    assert lr_at(10, per_epoch, cfg) == pytest.approx(0.4)  # the cosine starts at the peak ...
    assert lr_at(30, per_epoch, cfg) == pytest.approx(cosine_lr(20, 40, 0.4))  # ... over 40 steps
    assert lr_at(49, per_epoch, cfg) == pytest.approx(cosine_lr(39, 40, 0.4))
    plain = TrainConfig(epochs=10, lr=0.4)
    assert [lr_at(t, 5, plain) for t in range(50)] == [cosine_lr(t, 50, 0.4) for t in range(50)]


def test_drop_last_makes_every_step_a_whole_batch(digits):
    data = small_data(digits, n=100)
    sizes = {}

    def on_step(epoch, i, loss):
        sizes.setdefault(epoch, []).append(i)

    for drop, steps in ((False, 4), (True, 3)):  # 100 images, batch 32: 32+32+32(+4)
        cfg = TrainConfig(epochs=1, lr=0.05, batch_size=32, drop_last=drop)
        assert epoch_steps(100, cfg) == steps
        sizes.clear()
        fit(create_model("smallcnn", 10, 1), data, (0.5,), (0.5,), cfg, CPU, on_step=on_step,
            evaluate_every=0)
        assert sizes == {0: list(range(steps))}


def test_label_smoothing_and_nesterov_change_the_training(digits):
    data = small_data(digits)

    def trained(**options):
        torch.manual_seed(0)
        model = create_model("smallcnn", 10, 1)
        fit(model, data, (0.5,), (0.5,), TrainConfig(epochs=1, lr=0.05, batch_size=64, **options), CPU,
            evaluate_every=0)
        return model.conv1.weight.detach()

    plain = trained()
    assert torch.equal(plain, trained())  # the comparison below is not noise
    assert not torch.equal(plain, trained(label_smoothing=0.1))
    assert not torch.equal(plain, trained(nesterov=True))
    logits, target = torch.randn(8, 10), torch.arange(8)
    smooth = distillation_loss(logits, None, target, 0.0, 4.0, label_smoothing=0.1)
    expected = -(0.9 * logits.log_softmax(1)[torch.arange(8), target] + 0.1 * logits.log_softmax(1).mean(1))
    assert smooth == pytest.approx(float(expected.mean()), rel=1e-5)


@pytest.mark.parametrize("name, ends", [("resnet20", 9), ("resnet50", 16)])
def test_zero_init_residual_zeroes_the_last_norm_of_every_branch(digits, name, ends):
    from prunelab.models import residual_branch_ends

    data = dataclasses.replace(digits, train=dataclasses.replace(
        digits.train, x=torch.zeros(4, 3, 32, 32, dtype=torch.uint8), y=torch.zeros(4, dtype=torch.int64)))
    fresh = new_model(name, data, TrainConfig(zero_init_residual=True))
    last = residual_branch_ends(fresh)
    assert len(last) == ends and all(bool((bn.weight == 0).all()) for bn in last)
    others = [m for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d) and m not in last]
    assert all(bool((bn.weight == 1).all()) for bn in others)
    plain = new_model(name, data, TrainConfig())
    assert all(bool((bn.weight == 1).all()) for bn in residual_branch_ends(plain))
    with pytest.raises(PrunelabError, match="no residual branches"):
        new_model("smallcnn", digits, TrainConfig(zero_init_residual=True))


def test_compile_leaves_a_parametrized_network_eager():
    """torch.compile would recompile a parametrized network (tables being tuned) once per block:
    fit steps it eagerly, and compiles a plain one."""
    from torch.nn.utils import parametrize

    setup = importlib.import_module("prunelab.training.fit")._setup
    cfg = TrainConfig(epochs=1, compile=True)
    plain = create_model("smallcnn", 10, 1)
    assert setup(plain, cfg, CPU, None, None, False, None).step_model is not plain
    coded = create_model("smallcnn", 10, 1)
    conv = next(m for m in coded.modules() if isinstance(m, torch.nn.Conv2d))
    parametrize.register_parametrization(conv, "weight", torch.nn.Identity())
    assert setup(coded, cfg, CPU, None, None, False, None).step_model is coded
