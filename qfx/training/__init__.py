"""Training infrastructure: the trainer, pickle-free checkpoints, plots and ``qfx train``.

Example:
    >>> from qfx.data import get_dataset
    >>> from qfx.zoo import get_model
    >>> from qfx.training import train
    >>> split = get_dataset("synthetic", n=128, shape=(1, 8, 8), num_classes=4)
    >>> result = train(get_model("digits_cnn", num_classes=4), split.train, split.test,
    ...                epochs=2, lr=0.01, progress=False)
    >>> len(result.history)
    2
"""

from qfx.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    sidecar_path,
)
from qfx.training.config import (
    ConfigError,
    TrainConfig,
    TrainingOptions,
    load_train_config,
    parse_train_config,
    restore_model,
    run_training,
)
from qfx.training.plots import plot_history
from qfx.training.trainer import (
    OPTIMIZERS,
    SCHEDULES,
    TrainResult,
    evaluate,
    lr_at,
    quantizer_int_bits,
    train,
)

__all__ = [
    "CheckpointError", "load_checkpoint", "read_checkpoint", "save_checkpoint", "sidecar_path",
    "ConfigError", "TrainConfig", "TrainingOptions", "load_train_config", "parse_train_config",
    "run_training", "restore_model", "plot_history", "OPTIMIZERS", "SCHEDULES", "TrainResult",
    "evaluate", "lr_at", "quantizer_int_bits", "train",
]
