"""--fit-epochs: the retraining epochs are the most whose measured cost fits --time-budget, sized
once when the run folder is new and kept on every resume (they are its points' recipe)."""

import pytest

from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.estimate import Costs, estimate
from prunelab.experiment.sweep import Sweep
from prunelab.recovery import RecoveryConfig

STEP_S, EVAL_S = 1.0, 2.0  # the machine's measured costs (s), fixed so the sizing is exact


def config(ckpt, budget, **kw):
    base = dict(checkpoint=str(ckpt), data="digits", methods=("global+ft",), levels=(0.5, 0.8), seeds=(0,),
                device="cpu", time_budget=budget, fit_epochs=True, recovery=RecoveryConfig(epochs=50))
    return SweepConfig(**{**base, **kw})


@pytest.fixture
def costs(monkeypatch):
    """Each step and evaluation costs what the test says; the steps measured are counted."""
    measured = []

    def step(self, recipe, size):
        measured.append(size)
        return STEP_S * self.factor

    monkeypatch.setattr(Costs, "factor", 1.0, raising=False)
    monkeypatch.setattr(Costs, "step", step)
    monkeypatch.setattr(Costs, "evaluation", lambda self: EVAL_S * self.factor)
    return measured


def test_the_epochs_are_the_most_that_fit_the_budget(digits_checkpoint, tmp_path, costs):
    run = Sweep(config(digits_checkpoint, 300.0), tmp_path / "run")
    epochs = run.cfg.recovery.epochs
    assert 1 < epochs < 50
    wb = run.workbench
    assert estimate(wb, run.mine(), run.costs, epochs).seconds <= 300.0
    assert estimate(wb, run.mine(), run.costs, epochs + 1).seconds > 300.0
    assert run.fitted.epochs == epochs and run.estimate.epochs == epochs
    assert run.store.meta("config")["recovery"]["epochs"] == epochs
    points = run.run()
    assert {p.method for p in points} == {"dense", "global+ft"}
    assert run.store.recipes()["global+ft"]["recovery"]["epochs"] == epochs  # what the points retrained for
    run.store.close()


def test_a_resumed_run_keeps_the_epochs_it_was_sized_to(digits_checkpoint, tmp_path, costs):
    cfg = config(digits_checkpoint, 300.0)
    first = Sweep(cfg, tmp_path / "run")
    epochs = first.cfg.recovery.epochs
    first.run(should_stop=lambda: True)  # stopped after its first point
    first.store.close()
    Costs.factor = 4.0  # the machine is busier now: sized again, fewer epochs would fit
    again = Sweep(cfg, tmp_path / "run")
    assert again.cfg.recovery.epochs == epochs and again.fitted is None
    assert again.estimate.epochs == epochs
    again.store.close()
    fresh = Sweep(cfg, tmp_path / "new")
    assert fresh.cfg.recovery.epochs < epochs  # the same machine state sizes a new folder afresh
    fresh.store.close()


def test_a_budget_too_small_for_one_epoch_is_one_line_before_any_point(digits_checkpoint, tmp_path, costs):
    with pytest.raises(PrunelabError, match="even one retraining epoch is over the --time-budget"):
        Sweep(config(digits_checkpoint, 5.0), tmp_path / "run")


def test_fit_epochs_needs_a_budget_and_a_method_that_retrains(digits_checkpoint, tmp_path):
    with pytest.raises(PrunelabError, match="pass --time-budget"):
        Sweep(config(digits_checkpoint, None), tmp_path / "a")
    with pytest.raises(PrunelabError, match="none of --methods retrains"):
        Sweep(config(digits_checkpoint, 300.0, methods=("global",)), tmp_path / "b")


def test_a_run_swept_with_fixed_epochs_is_not_resized(digits_checkpoint, tmp_path, costs):
    fixed = Sweep(config(digits_checkpoint, 300.0, fit_epochs=False, recovery=RecoveryConfig(epochs=1)),
                  tmp_path / "run")
    fixed.store.close()
    with pytest.raises(PrunelabError, match="swept with --epochs 1, not --fit-epochs"):
        Sweep(config(digits_checkpoint, 300.0), tmp_path / "run")


def test_the_command_line_says_the_epochs_it_sized(digits_checkpoint, tmp_path, monkeypatch, capsys, costs):
    from cli_helpers import run

    code, out, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "global+ft",
                         "--levels", "0.5", "--epochs", 3, "--time-budget", "1h", "--fit-epochs",
                         "--device", "cpu", "--no-report", "--out", tmp_path / "run")
    assert code == 0, err
    assert "time budget 1.00 h: 2 points at --epochs 3 (--fit-epochs), estimated at" in out
