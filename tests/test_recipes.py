"""Per-method recipes: a method with its own retraining joins a run; the recipe of stored points
cannot change; stores from before recipes resume under what their settings meant."""

import dataclasses
import json
import sqlite3

import pytest
from cli_helpers import assert_user_error, run

from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.store import STORE_FILE, Store
from prunelab.experiment.sweep import Sweep
from prunelab.recovery import RecoveryConfig

FAST = RecoveryConfig(epochs=1, lr=0.01, bn_batches=4)


def config(ckpt, methods, **kw):
    return SweepConfig(checkpoint=str(ckpt), data="digits", methods=methods, levels=(0.5,), seeds=(0,),
                       device="cpu", **kw)


def stored(folder) -> dict:
    store = Store.open(folder)
    try:
        return {p.key: (p.correct, p.nonzero_params) for p in store.points()}
    finally:
        store.close()


def test_a_retrained_method_joins_a_one_shot_run_and_its_recipe_then_holds(digits_checkpoint, tmp_path):
    out = tmp_path / "run"
    Sweep(config(digits_checkpoint, ("global",), recovery=FAST), out).run()
    slow = dataclasses.replace(FAST, epochs=2, lr=0.05)
    joined = Sweep(config(digits_checkpoint, ("global", "global+ft"), recovery=slow), out)
    assert [p.method.text for p in joined.todo] == ["global+ft"]  # only what is missing is computed
    joined.run()
    joined.store.close()
    before = stored(out)
    with pytest.raises(PrunelabError, match=r"'global\+ft' points made with another recipe "
                                            r"\(recovery.epochs: 2 -> 1, recovery.lr: 0.05 -> 0.01\)"):
        Sweep(config(digits_checkpoint, ("global+ft",), recovery=FAST), out)
    assert stored(out) == before
    # Settings a method does not read are not its recipe: batch norm's are not fine-tuning's.
    other_bn = Sweep(config(digits_checkpoint, ("global+ft",),
                            recovery=dataclasses.replace(slow, bn_batches=9)), out)
    assert other_bn.todo == []
    other_bn.store.close()
    # Another method brings its own recipe alongside.
    bn = Sweep(config(digits_checkpoint, ("global+bn",), recovery=FAST), out)
    assert [p.method.text for p in bn.todo] == ["global+bn"]
    recipes = bn.store.meta("recipes")
    assert recipes["global+ft"]["recovery"]["epochs"] == 2
    assert recipes["global+bn"]["recovery"]["bn_batches"] == 4
    assert recipes["global"] == {}


def test_a_changed_recipe_is_one_line_from_the_cli(digits_checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ("sweep", digits_checkpoint, "--data", "digits", "--methods", "global+bn", "--levels", "0.5",
            "--seeds", "0", "--device", "cpu", "--no-report", "--bn-batches", "2", "--out", out)
    assert run(monkeypatch, capsys, *args)[0] == 0
    before = stored(out)
    code, _, err = run(monkeypatch, capsys, *args[:-3], "3", "--out", out)
    assert_user_error(code, err, "'global+bn' points made with another recipe", "recovery.bn_batches: 2 -> 3",
                      "new --out")
    assert stored(out) == before


def _to_legacy(folder, recovery: dict) -> None:
    """Rewrite a store's identity as prunelab wrote it before recipes: one 'recovery' for the run."""
    with sqlite3.connect(folder / STORE_FILE) as conn:
        (text,) = conn.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        conn.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'",
                     (json.dumps({**json.loads(text), "recovery": recovery}),))
        conn.execute("DELETE FROM meta WHERE key = 'recipes'")


def test_a_store_from_before_recipes_resumes_under_what_its_settings_meant(digits_checkpoint, tmp_path):
    out = tmp_path / "run"
    Sweep(config(digits_checkpoint, ("global", "global+ft"), recovery=FAST), out).run()
    old = {f.name: getattr(FAST, f.name) for f in dataclasses.fields(FAST)}
    # left out when at their defaults
    for dropped in ("distill", "temperature", "bn_augment", "quant_lr", "quant_epochs"):
        del old[dropped]
    _to_legacy(out, old)
    resumed = Sweep(config(digits_checkpoint, ("global", "global+ft"), recovery=FAST), out)
    assert resumed.todo == []
    assert resumed.store.meta("recipes")["global+ft"]["recovery"]["epochs"] == 1
    resumed.store.close()
    _to_legacy(out, {**old, "epochs": 3})
    with pytest.raises(PrunelabError, match=r"recovery.epochs: 3 -> 1"):
        Sweep(config(digits_checkpoint, ("global+ft",), recovery=FAST), out)
    with pytest.raises(PrunelabError, match="different configuration.*prune_classifier"):
        Sweep(config(digits_checkpoint, ("global",), recovery=FAST, prune_classifier=True), out)


def test_how_fast_a_recipe_trains_is_recorded_only_where_it_leaves_the_old_default():
    """amp and compile came after run folders existed: at their old values a recipe reads as
    before (a stored run resumes), anywhere else they are part of it (a change is refused)."""
    from prunelab.recovery.config import TRAINING_SETTINGS, settings

    assert {"amp", "compile"}.isdisjoint(settings(FAST, TRAINING_SETTINGS))
    fp32 = settings(dataclasses.replace(FAST, amp=False, compile=True), TRAINING_SETTINGS)
    assert fp32["amp"] is False and fp32["compile"] is True
