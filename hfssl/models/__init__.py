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
from .modeling_hfssl_vision import (
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
    HfsslVisionPreTrainedModel,
)

__all__ = [
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
