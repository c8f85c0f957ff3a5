"""What one training step does to a batch: augmentation on the device (`data.augment`), and the loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      weight: float, temperature: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """(1 - weight) * cross-entropy + weight * T^2 * KL(teacher || student), both softened by T.

    Knowledge distillation (Hinton, Vinyals & Dean 2015): the T^2 keeps the soft term's gradient
    on the scale of the hard one. weight 0 is plain cross-entropy (with `label_smoothing`).
    """
    hard = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if weight == 0:
        return hard
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - weight) * hard + weight * temperature ** 2 * soft
