"""Training on a time budget: durations and progressive sizes parsed once, the schedule sized from
measured step times, and a state saved part-way through an epoch that resumes exactly."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import CPU, model_and_masks, small_data

from prunelab.errors import PrunelabError
from prunelab.training import TrainConfig, fit
from prunelab.training.budget import plan
from prunelab.training.plan import epochs_within, parse_duration, parse_sizes, size_at

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text,seconds", [("8h", 28800), ("90m", 5400), ("45min", 2700), ("3600s", 3600),
                                          ("1.5h", 5400), ("120", 120), (600, 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["8 hours", "-1h", "0", "h", "nan"])
def test_a_duration_that_is_not_one_is_one_line(text):
    with pytest.raises(PrunelabError, match="time budget"):
        parse_duration(text)


def test_progressive_sizes_give_each_size_its_share_of_the_epochs():
    sizes = parse_sizes("16:0.4,24:0.3")
    assert sizes == ((16, 0.4), (24, 0.3))
    assert [size_at(e, 10, sizes, 32) for e in range(10)] == [16] * 4 + [24] * 3 + [32] * 3
    assert [size_at(e, 3, (), 32) for e in range(3)] == [32, 32, 32]
    assert parse_sizes("") == ()


@pytest.mark.parametrize("text", ["16", "16:0.7,24:0.5", "2:0.2", "16:0", "a:b"])
def test_bad_progressive_sizes_are_one_line(text):
    with pytest.raises(PrunelabError, match="progressive size"):
        parse_sizes(text)


def test_the_epochs_that_fit_the_budget_are_the_most_whose_cost_does():
    cost = {16: 1.0, 32: 4.0}
    sizes = ((16, 0.5),)
    # 10 epochs: 5 at 16 (5 s) + 5 at 32 (20 s) = 25 s; 11: 6 + 20 = 26 (round(5.5) = 6 at 16).
    assert epochs_within(25.0, cost, sizes, 32) == 10
    assert epochs_within(24.9, cost, sizes, 32) == 9
    assert epochs_within(3.9, cost, (), 32) == 0
    assert epochs_within(1e9, cost, sizes, 32, most=40) == 40


def test_a_plan_is_measured_on_this_machine_and_refuses_a_budget_too_small_for_one_epoch(digits):
    model, _ = model_and_masks()
    data = small_data(digits)
    cfg = TrainConfig(epochs=50, batch_size=64, time_budget=30.0, sizes=((4, 0.5),))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    made = plan(model, data, (0.5,), (0.5,), cfg, CPU)
    assert set(made.step_seconds) == {4, 8}  # 8x8 digits: 4 px, then their own size
    assert 1 <= made.epochs <= 50 and made.planned_s <= 30.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # measured on a copy
    with pytest.raises(PrunelabError, match="too small for one epoch"):
        plan(model, data, (0.5,), (0.5,), dataclasses.replace(cfg, time_budget=1e-6), CPU)


def test_a_state_saved_part_way_through_an_epoch_resumes_to_the_uninterrupted_result(digits, tmp_path):
    """save_every 0 saves after every step; a run stopped in the middle of its second epoch and
    resumed by a fresh call ends with the weights of a run never stopped (progressive sizes too)."""
    data = small_data(digits)
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=64, save_every=0.0, sizes=((6, 0.34),))
    whole, masks = model_and_masks()
    reference = fit(whole, data, (0.5,), (0.5,), cfg, CPU, masks=masks, state_dir=tmp_path / "a")
    assert [r["size"] for r in reference.epochs] == [6, 8, 8]

    cut, masks = model_and_masks()

    def stop_mid_epoch(epoch, i, loss):
        if epoch == 1 and i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cut, data, (0.5,), (0.5,), cfg, CPU, masks=masks, state_dir=tmp_path / "b",
            on_step=stop_mid_epoch)
    saved = torch.load(tmp_path / "b" / "train_state.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["partial"]["step"] == 1  # step 2 of epoch 2 never finished
    assert saved["history"][-1]["seconds"] > 0  # the clock is in the record the state saves
    script = ROOT / "bench" / "cpu" / "progress.py"
    shown = subprocess.run([sys.executable, str(script), str(tmp_path / "b")], capture_output=True, text=True,
                           check=True).stdout
    assert "| epoch (of 3) |" in shown and "| 1 | 6 |" in shown and "| 2 |" not in shown
    assert "through epoch 1 and 1 steps of the next" in shown
    resumed, _ = model_and_masks()
    history = fit(resumed, data, (0.5,), (0.5,), cfg, CPU, masks=masks, state_dir=tmp_path / "b")
    assert [r["train_loss"] for r in history.epochs] == [r["train_loss"] for r in reference.epochs]
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert history.epochs[-1]["cpu_seconds"] > 0 and history.epochs[-1]["seconds"] > 0
