"""Publishable model code: configurations, backbones, heads and losses (torch + transformers only)."""

from .configuration_hfssl_text import TEXT_SIZES, HfsslTextConfig
from .modeling_hfssl_text import (
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslTextModel,
    HfsslTextPreTrainedModel,
)

__all__ = [
    "TEXT_SIZES",
    "HfsslTextConfig",
    "HfsslTextForCausalLM",
    "HfsslTextForMaskedLM",
    "HfsslTextForSequenceClassification",
    "HfsslTextModel",
    "HfsslTextPreTrainedModel",
]
