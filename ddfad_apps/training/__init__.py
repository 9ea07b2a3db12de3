"""Training and evaluation loops on in-memory features, and device/seed handling."""

from ddfad_apps.training.device import resolve_device, seed_everything
from ddfad_apps.training.loops import (
    NonFiniteLossError, TrainConfig, TrainResult, accuracy, predict, train_model,
)

__all__ = [
    "NonFiniteLossError", "TrainConfig", "TrainResult", "accuracy", "predict", "resolve_device",
    "seed_everything", "train_model",
]
