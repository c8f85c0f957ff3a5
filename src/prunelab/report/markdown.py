"""report.md: the answer first, then the plots, savings, per-layer sparsity, accuracy, sizes, the run."""

from __future__ import annotations

import json
from pathlib import Path

from . import content
from .content import Table
from .read import RunView, pct


def markdown(data: RunView, files: dict[str, Path]) -> str:
    budget = next(iter(data.answers.values())).budget
    lines = [f"# {content.title(data)}", "", *table(content.answer_table(data)), "",
             content.budget_note(data)]
    lines += ["", "## Accuracy against sparsity", "",
              f"![top-1 against sparsity]({files['plot_png'].name}) "
              f"([SVG]({files['plot_svg'].name}), [CSV of every point]({files['csv'].name}))"]
    if "gif" in files:
        lines += ["", "## Pruning, level by level", "", content.gif_caption(data), "",
                  f"![weights vanishing layer by layer]({files['gif'].name})"]
    if "savings_png" in files:
        note, rows = content.savings(data)
        lines += ["", "## What the pruned models really save", "",
                  f"![top-1 against MACs, latency and file size]({files['savings_png'].name}) "
                  f"([SVG]({files['savings_svg'].name}))", "", note, "", *table(rows)]
    if "memory_png" in files:
        answer, note, rows = content.memory(data, budget)
        lines += ["", "## Memory: top-1 against the file on disk", "",
                  f"![top-1 against file size, Pareto frontier]({files['memory_png'].name}) "
                  f"([SVG]({files['memory_svg'].name}))", "", answer, "", note, "", *table(rows)]
    for heading, (note, rows) in (("Per-layer sparsity at each answer", content.layers(data)),
                                  ("Top-1 at every level", content.accuracy(data)),
                                  ("Sizes at each answer", content.sizes(data))):
        lines += ["", f"## {heading}", "", note, "", *table(rows)]
    lines += ["", "## Run", "", *(f"- {k}: {v}" for k, v in facts(data))]
    return "\n".join(lines) + "\n"


def table(t: Table) -> list[str]:
    """A Markdown table: text columns left-aligned, numbers right-aligned."""
    align = "|" + "---|" * t.left + "---:|" * (len(t.head) - t.left)
    return ["| " + " | ".join(t.head) + " |", align, *("| " + " | ".join(row) + " |" for row in t.rows)]


def facts(data: RunView) -> list[tuple[str, str]]:
    """The run's facts as (name, text): model, data, hashes, settings, counts, retraining."""
    fp, cfg, dense = data.fingerprint, data.config, data.dense

    def short(digest) -> str:
        return f"`{str(digest)[:12]}`" if digest else "unknown"

    facts = [
        ("model", f"{data.model}"),
        ("test images", f"{data.n_images:,} ({fp.get('data', cfg.get('data', 'unknown'))}, "
                        f"sha256 {short(fp.get('test_sha256'))})"),
        ("weights sha256", short(fp.get("weights_sha256"))),
        ("checkpoint", f"`{cfg['checkpoint']}`" if cfg.get("checkpoint") else "unknown"),
        ("prune_classifier", str(fp.get("prune_classifier", cfg.get("prune_classifier", "unknown")))),
        ("layer_cap", "none" if fp.get("layer_cap", cfg.get("layer_cap")) is None
         else pct(fp.get("layer_cap", cfg.get("layer_cap")))),
        ("parameters", f"{dense.total_params:,} in all, {dense.prunable_params:,} prunable "
                       f"in {len(dense.layers)} layers"),
        ("methods", ", ".join(data.curves)),
        ("levels", f"{len(data.levels)} ({', '.join(pct(s) for s in data.levels)})"),
        ("seeds", ", ".join(str(s) for s in cfg.get("seeds", ())) or "unknown"),
        ("points", f"{len(data.points)} (dense baseline included)"),
        ("prunelab", str(data.version or "unknown")),
    ]
    recipes = recipe_facts(data.recipes, data.curves)
    facts += recipes
    if any(_trains(r) for r in data.recipes.values()):
        facts.append(("training images", f"`{cfg.get('train_data') or cfg.get('data', 'unknown')}`"
                      + (f" (sha256 {short(fp['train_sha256'])})" if fp.get("train_sha256") else "")))
    return facts


_RECIPE_PARTS = {"recovery": "recovery", "quant_recovery": "quantized tables' recovery",
                 "calibration": "calibration"}


def recipe_facts(recipes: dict[str, dict], methods) -> list[tuple[str, str]]:
    """Each recipe part shared by some of `methods` as (what, for which methods: its settings)."""
    shared: dict[tuple[str, str], list[str]] = {}
    for method in methods:
        for part, settings in recipes.get(method, {}).items():
            shared.setdefault((part, json.dumps(settings, sort_keys=True)), []).append(method)
    return [(f"{_RECIPE_PARTS.get(part, part)} of {', '.join(ms)}", _describe(part, json.loads(text)))
            for (part, text), ms in shared.items()]


def _describe(part: str, s: dict) -> str:
    """One recipe part in words: a retraining, a batch-norm re-estimation, or a calibration."""
    if part == "calibration":
        return (f"{s.get('images')} training images (seed {s.get('seed')}), damping {s.get('damp')}, "
                f"block {s.get('block')}")
    if "epochs" not in s:
        return (f"batch-norm statistics re-estimated on {s.get('bn_batches')} batches of "
                f"{s.get('batch_size')}" + (" augmented training images" if s.get("bn_augment")
                                            else " training images as they are"))
    kd = (f"; distillation from the dense network, weight {s['distill']}, T {s['temperature']}"
          if s.get("distill") else "")
    ramp = (f"; sparsity ramped over {pct(s['gradual_ramp'])} of the steps, masks updated every "
            f"{s.get('gradual_every')} steps" if "gradual_ramp" in s else "")
    return (f"retraining, {s.get('epochs')} epoch(s) per level or round, {_retraining(s)}, batch "
            f"{s.get('batch_size')}{kd}{ramp}")


def _trains(recipe: dict) -> bool:
    return any("epochs" in part for part in recipe.values())


def _retraining(rc: dict) -> str:
    """How the stored run's learning rate ran, in its mode's own words."""
    from ..errors import PrunelabError
    from ..recovery import RETRAIN_MODES

    try:
        return RETRAIN_MODES.get(rc.get("retrain", "finetune")).describe(rc)
    except PrunelabError:  # a mode of another prunelab version
        return f"retraining mode '{rc.get('retrain')}', lr {rc.get('lr')}"
