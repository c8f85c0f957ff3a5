"""report.md: the answer first, then the plots, savings, per-layer sparsity, accuracy, sizes, the run."""

from __future__ import annotations

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
    rc = fp.get("recovery") or {}
    if rc and any(_retrained(m) for m in data.curves):
        how = _retraining(rc)
        kd = (f"; distillation from the dense network, weight {rc['distill']}, T {rc['temperature']}"
              if rc.get("distill") else "")
        facts.append(("retraining", f"{rc.get('epochs')} epoch(s) per level or round, {how}, batch "
                                    f"{rc.get('batch_size')}{kd}; batch-norm recalibration on "
                                    f"{rc.get('bn_batches')} batches"))
        facts.append(("training images", f"`{cfg.get('train_data') or cfg.get('data', 'unknown')}`"
                      + (f" (sha256 {short(fp['train_sha256'])})" if fp.get("train_sha256") else "")))
    return facts


def _retraining(rc: dict) -> str:
    """How the stored run's learning rate ran, in its mode's own words."""
    from ..errors import PrunelabError
    from ..recovery import RETRAIN_MODES

    try:
        return RETRAIN_MODES.get(rc.get("retrain", "finetune")).describe(rc)
    except PrunelabError:  # a mode of another prunelab version
        return f"retraining mode '{rc.get('retrain')}', lr {rc.get('lr')}"


def _retrained(method: str) -> bool:
    """A stored method was recovered by something other than nothing (a method of another
    prunelab version, or a sensitivity point, is not)."""
    from ..errors import PrunelabError
    from ..experiment.spec import MethodSpec

    try:
        spec = MethodSpec.parse(method)
    except PrunelabError:
        return False
    return not spec.recovery.one_shot
