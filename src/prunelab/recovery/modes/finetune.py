"""Fine-tuning: the constant learning rate `lr` throughout."""

from . import RETRAIN_MODES, RetrainMode

RETRAIN_MODES.register(RetrainMode(
    "finetune", "constant --lr",
    schedule=lambda rc: {"schedule": "constant", "schedule_epochs": None, "rewind_epoch": 0},
    describe=lambda rc: f"constant lr {rc.get('lr')}"))
