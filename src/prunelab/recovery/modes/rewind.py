"""Learning-rate rewinding (Renda, Frankle & Carbin 2020): replay a cosine of peak `lr` from epoch
`rewind_epoch` to its end, `rewind_epoch + epochs`."""

from . import RETRAIN_MODES, RetrainMode

RETRAIN_MODES.register(RetrainMode(
    "rewind", "replay a cosine of peak --lr from --rewind-epoch",
    schedule=lambda rc: {"schedule": "cosine", "rewind_epoch": rc.rewind_epoch,
                         "schedule_epochs": rc.rewind_epoch + rc.epochs},
    describe=lambda rc: f"lr rewinding, cosine from {rc.get('lr')} (from epoch {rc.get('rewind_epoch', 0)})"))
