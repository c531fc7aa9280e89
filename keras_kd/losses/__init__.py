"""Distillation terms: the pieces of the distillation loss, one per file."""

from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.decoupled_kd import DecoupledKD
from keras_kd.losses.feature_hint import FeatureHint
from keras_kd.losses.generalized_jsd import GeneralizedJSD
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd.losses.logit_mse import LogitMSE
from keras_kd.losses.reverse_kl import ReverseKL
from keras_kd.losses.skew_kl import SkewKL
from keras_kd.losses.skew_reverse_kl import SkewReverseKL
from keras_kd.losses.soft_target_crossentropy import SoftTargetCrossentropy

__all__ = [
    "AttentionTransfer",
    "DecoupledKD",
    "DistillationTerm",
    "FeatureHint",
    "GeneralizedJSD",
    "KLDivergence",
    "LogitMSE",
    "ReverseKL",
    "SkewKL",
    "SkewReverseKL",
    "SoftTargetCrossentropy",
]
