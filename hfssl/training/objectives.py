"""The objectives `hfssl pretrain --objective` knows: a plain dict from name to what it needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining

from ..models import (
    HfsslTextConfig,
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslVisionConfig,
    HfsslVisionForMaskedImageModeling,
)
from ..models import HfsslTextForContrastiveLearning, HfsslVisionForContrastiveLearning

IMAGE_METHODS = ("simclr", "moco", "byol", "simsiam", "dino", "swav")
DEFAULT_HYBRID_WEIGHT = 1.0


@dataclass(frozen=True)
class Objective:
    """One pretraining objective.

    modality: "text" or "image". collator: how text becomes batches ("mlm", "clm" or "padding" for one
    example per document). views: the augmentation preset of image objectives. method: the
    joint-embedding method (config.ssl) of contrastive objectives. hybrid: the reconstruction objective
    added with weight `config.<hybrid>_weight` on the same backbone. config_defaults: config fields a fresh
    model of this objective starts from (before --method-options and --config-overrides).
    """

    name: str
    modality: str
    description: str
    config_class: type
    model_class: type
    auto_class: type
    causal: bool = False
    collator: str = ""
    views: str = ""
    method: str | None = None
    hybrid: str | None = None
    config_defaults: tuple[tuple[str, Any], ...] = ()

    def config_extra(self, method_options: dict[str, Any]) -> dict[str, Any]:
        """Config fields the objective sets: the method and its hyperparameters, the hybrid weight."""
        if self.method is None:
            if method_options:
                raise ValueError(f"Objective {self.name!r} has no method options; drop --method-options.")
            return {}
        options = dict(method_options)
        extra: dict[str, Any] = {}
        if self.hybrid:
            extra[f"{self.hybrid}_weight"] = float(options.pop(f"{self.hybrid}_weight", DEFAULT_HYBRID_WEIGHT))
        return {**extra, "ssl": {"method": self.method, **options}}


def _image_contrastive(method: str, hybrid: str | None = None) -> Objective:
    name = f"mae+{method}" if hybrid else method
    what = f"{method} joint-embedding learning" + (" plus MAE reconstruction on one backbone" if hybrid else "")
    return Objective(name, "image", what, HfsslVisionConfig, HfsslVisionForContrastiveLearning,
                     AutoModelForPreTraining, views=method, method=method, hybrid=hybrid)


OBJECTIVES: dict[str, Objective] = {
    "mlm": Objective("mlm", "text", "masked language modeling (BERT-style, 80/10/10 masking, sparse prediction)",
                     HfsslTextConfig, HfsslTextForMaskedLM, AutoModelForMaskedLM, collator="mlm"),
    "clm": Objective("clm", "text", "next-token (causal) language modeling (GPT-style)",
                     HfsslTextConfig, HfsslTextForCausalLM, AutoModelForCausalLM, causal=True, collator="clm"),
    "simcse": Objective("simcse", "text", "SimCSE sentence embeddings (dropout views, in-batch negatives)",
                        HfsslTextConfig, HfsslTextForContrastiveLearning, AutoModelForPreTraining,
                        collator="padding", method="simcse"),
    "mlm+simcse": Objective("mlm+simcse", "text", "masked LM plus SimCSE on one backbone",
                            HfsslTextConfig, HfsslTextForContrastiveLearning, AutoModelForPreTraining,
                            collator="mlm", method="simcse", hybrid="mlm"),
    "mae": Objective("mae", "image", "masked autoencoder (He et al. 2022): reconstruct masked patches",
                     HfsslVisionConfig, HfsslVisionForMaskedImageModeling, AutoModelForPreTraining, views="mae",
                     # MAE's loss is on patch pixels only, so its features are the mean of the patch tokens
                     # (He et al. 2022 fine-tune on the global average pool; on Fashion-MNIST the mean-pooled
                     # kNN is 0.678 against 0.618 for the class token, docs/evaluation.md).
                     config_defaults=(("pooling", "mean"),)),
    **{m: _image_contrastive(m) for m in IMAGE_METHODS},
    **{f"mae+{m}": _image_contrastive(m, hybrid="mae") for m in IMAGE_METHODS},
}


def get_objective(name: str) -> Objective:
    """The objective called `name`; KeyError listing the known ones otherwise."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"Unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}.") from None


def describe_objectives() -> str:
    """One line per objective, for --help texts."""
    return "\n".join(f"  {o.name:12} {o.modality:6} {o.description}" for o in OBJECTIVES.values())
