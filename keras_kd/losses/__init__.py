"""Distillation terms: the pieces of the distillation loss, one per file."""

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd.losses.logit_mse import LogitMSE
from keras_kd.losses.soft_target_crossentropy import SoftTargetCrossentropy

__all__ = [
    "DistillationTerm",
    "KLDivergence",
    "LogitMSE",
    "SoftTargetCrossentropy",
]
