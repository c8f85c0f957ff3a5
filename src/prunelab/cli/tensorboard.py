"""TensorBoard logs under a run folder: scalars per training epoch and per sweep point, the curve."""

from __future__ import annotations

import threading
from pathlib import Path

TB_DIR = "tb"


def _quiet_os_errors(args) -> None:
    """The writer's thread fails on a full disk with a traceback of its own; the same error comes
    back to the main thread on the writer's next call and becomes the command's one line there."""
    if issubclass(args.exc_type, OSError):
        return
    threading.__excepthook__(args)


class TensorBoard:
    """A thin writer; `tensorboard --logdir RUN/tb` shows what it wrote."""

    def __init__(self, run: str | Path, enabled: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        threading.excepthook = _quiet_os_errors  # before the writer's thread starts
        self.writer = SummaryWriter(log_dir=str(Path(run) / TB_DIR)) if enabled else _Silent()

    def epoch(self, record: dict, prefix: str = "train") -> None:
        """Scalars of one training epoch (loss, top-1, test top-1, lr), stepped by epoch."""
        for key, value in record.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(f"{prefix}/{key}", value, record["epoch"])

    def point(self, point) -> None:
        """A sweep point: top-1, top-5, loss against sparsity in permille (TensorBoard steps are ints)."""
        step = round(1000 * point.target_sparsity)
        tag = f"{point.method}/seed{point.seed}"
        for key in ("top1", "top5", "loss", "sparsity"):
            self.writer.add_scalar(f"sweep_{key}/{tag}", getattr(point, key), step)

    def curve(self, figure_path: str | Path, points) -> None:
        """The accuracy-sparsity curve as a figure (from the report's PNG) and as a text table."""
        import numpy as np
        from PIL import Image

        path = Path(figure_path)
        if path.exists():
            image = np.asarray(Image.open(path).convert("RGB"))
            self.writer.add_image("sweep/accuracy_vs_sparsity", image, dataformats="HWC")
        rows = "\n".join(f"| {p.method} | {p.target_sparsity:.3f} | {p.seed} | {p.top1:.2f} |"
                         for p in points)
        self.writer.add_text("sweep/points", "| method | level | seed | top-1 |\n|---|---|---|---|\n" + rows)

    def close(self) -> None:
        self.writer.close()


class _Silent:
    """Stands in for the writer where a process must not write (the other ranks of a torchrun)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
