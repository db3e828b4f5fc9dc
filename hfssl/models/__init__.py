"""Publishable model code: configurations, backbones, heads and losses (torch + transformers only)."""

from .configuration_hfssl_text import TEXT_SIZES, HfsslTextConfig
from .configuration_hfssl_vision import VISION_SIZES, HfsslVisionConfig
from .modeling_hfssl_text import (
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslTextModel,
    HfsslTextPreTrainedModel,
)
from .modeling_hfssl_contrastive import ContrastiveLearningMixin, ContrastiveOutput, HfsslTextForContrastiveLearning
from .modeling_hfssl_vision import (
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
    HfsslVisionPreTrainedModel,
)
from .modeling_hfssl_vision_contrastive import HfsslVisionForContrastiveLearning
from .ssl_methods import METHOD_DEFAULTS, METHODS, SSLMethod, SSLOutput, build_method, resolve_method_params

__all__ = [
    "ContrastiveLearningMixin",
    "ContrastiveOutput",
    "HfsslTextForContrastiveLearning",
    "HfsslVisionForContrastiveLearning",
    "METHODS",
    "METHOD_DEFAULTS",
    "SSLMethod",
    "SSLOutput",
    "build_method",
    "resolve_method_params",
    "TEXT_SIZES",
    "HfsslTextConfig",
    "HfsslTextForCausalLM",
    "HfsslTextForMaskedLM",
    "HfsslTextForSequenceClassification",
    "HfsslTextModel",
    "HfsslTextPreTrainedModel",
    "VISION_SIZES",
    "HfsslVisionConfig",
    "HfsslVisionForImageClassification",
    "HfsslVisionForMaskedImageModeling",
    "HfsslVisionModel",
    "HfsslVisionPreTrainedModel",
]
