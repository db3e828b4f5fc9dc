"""hfssl: self-supervised pretraining, evaluation and publishing, the Hugging Face way.

Importing hfssl registers its model classes with the transformers Auto classes (the one
documented import-time side effect), so `AutoModelForMaskedLM.from_pretrained("runs/x/model")` works.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .models import (
    HfsslTextConfig,
    HfsslTextForCausalLM,
    HfsslTextForContrastiveLearning,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslTextModel,
    HfsslVisionConfig,
    HfsslVisionForContrastiveLearning,
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
)

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    AutoConfig.register(HfsslTextConfig.model_type, HfsslTextConfig, exist_ok=True)
    AutoModel.register(HfsslTextConfig, HfsslTextModel, exist_ok=True)
    AutoModelForMaskedLM.register(HfsslTextConfig, HfsslTextForMaskedLM, exist_ok=True)
    AutoModelForCausalLM.register(HfsslTextConfig, HfsslTextForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(HfsslTextConfig, HfsslTextForSequenceClassification, exist_ok=True)
    # AutoModelForPreTraining: SimCSE for text. For images transformers picks, among the registered classes, the one
    # config.json's "architectures" names: MAE checkpoints load as MAE, joint-embedding ones (simclr, dino,
    # mae+byol, ...) as HfsslVisionForContrastiveLearning; AutoModel gives any of them as a backbone.
    AutoModelForPreTraining.register(HfsslTextConfig, HfsslTextForContrastiveLearning, exist_ok=True)
    AutoConfig.register(HfsslVisionConfig.model_type, HfsslVisionConfig, exist_ok=True)
    AutoModel.register(HfsslVisionConfig, HfsslVisionModel, exist_ok=True)
    AutoModelForPreTraining.register(
        HfsslVisionConfig, (HfsslVisionForMaskedImageModeling, HfsslVisionForContrastiveLearning), exist_ok=True)
    AutoModelForImageClassification.register(HfsslVisionConfig, HfsslVisionForImageClassification, exist_ok=True)


_register_auto_classes()

__all__ = [
    "HfsslTextConfig",
    "HfsslTextForCausalLM",
    "HfsslTextForContrastiveLearning",
    "HfsslTextForMaskedLM",
    "HfsslTextForSequenceClassification",
    "HfsslTextModel",
    "HfsslVisionConfig",
    "HfsslVisionForContrastiveLearning",
    "HfsslVisionForImageClassification",
    "HfsslVisionForMaskedImageModeling",
    "HfsslVisionModel",
    "__version__",
]
