"""hfssl: self-supervised pretraining, evaluation and publishing, the Hugging Face way.

Importing hfssl registers its model classes with the transformers Auto classes (the one
documented import-time side effect), so `AutoModelForMaskedLM.from_pretrained("runs/x/model")` works.

The one exception is the start of the `hfssl` console script: `hfssl --help`, `--version` and a mistyped command
need no model code, so they do not wait seconds for torch and transformers to import; `hfssl.cli.main` registers
before it runs a command. The model classes below are imported on first use either way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    "register_auto_classes",
]
_MODEL_NAMES = frozenset(name for name in __all__ if name.startswith("Hfssl"))  # imported from .models on first use
_registered = False


def register_auto_classes() -> None:
    """Register the hfssl configs and models with the transformers Auto classes (once; `import hfssl` does it)."""
    global _registered
    if _registered:
        return
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForImageClassification,
        AutoModelForMaskedLM,
        AutoModelForPreTraining,
        AutoModelForSequenceClassification,
    )

    from . import models as m

    AutoConfig.register(m.HfsslTextConfig.model_type, m.HfsslTextConfig, exist_ok=True)
    AutoModel.register(m.HfsslTextConfig, m.HfsslTextModel, exist_ok=True)
    AutoModelForMaskedLM.register(m.HfsslTextConfig, m.HfsslTextForMaskedLM, exist_ok=True)
    AutoModelForCausalLM.register(m.HfsslTextConfig, m.HfsslTextForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(m.HfsslTextConfig, m.HfsslTextForSequenceClassification,
                                                exist_ok=True)
    # AutoModelForPreTraining: SimCSE for text. For images transformers picks, among the registered classes, the one
    # config.json's "architectures" names: MAE checkpoints load as MAE, joint-embedding ones (simclr, dino,
    # mae+byol, ...) as HfsslVisionForContrastiveLearning; AutoModel gives any of them as a backbone.
    AutoModelForPreTraining.register(m.HfsslTextConfig, m.HfsslTextForContrastiveLearning, exist_ok=True)
    AutoConfig.register(m.HfsslVisionConfig.model_type, m.HfsslVisionConfig, exist_ok=True)
    AutoModel.register(m.HfsslVisionConfig, m.HfsslVisionModel, exist_ok=True)
    AutoModelForPreTraining.register(
        m.HfsslVisionConfig, (m.HfsslVisionForMaskedImageModeling, m.HfsslVisionForContrastiveLearning), exist_ok=True)
    AutoModelForImageClassification.register(m.HfsslVisionConfig, m.HfsslVisionForImageClassification, exist_ok=True)
    _registered = True


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        register_auto_classes()
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'hfssl' has no attribute {name!r}")


def _console_script_start() -> bool:
    """Whether this import is the `hfssl` console script starting (it imports hfssl.cli through this package)."""
    argv = getattr(sys, "argv", None) or [""]
    return Path(argv[0]).name in ("hfssl", "hfssl.exe") and "hfssl.cli" not in sys.modules


if not _console_script_start():
    register_auto_classes()

