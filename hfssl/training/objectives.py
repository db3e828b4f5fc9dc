"""The objectives `hfssl pretrain --objective` knows: a plain dict from name to what it needs."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from ..models import HfsslTextConfig, HfsslTextForCausalLM, HfsslTextForMaskedLM


@dataclass(frozen=True)
class Objective:
    """One pretraining objective: its modality, the model class trained from scratch, and the Auto class
    that loads an existing checkpoint for continued pretraining."""

    name: str
    modality: str
    description: str
    config_class: type
    model_class: type
    auto_class: type
    causal: bool = False


OBJECTIVES: dict[str, Objective] = {
    "mlm": Objective(
        "mlm", "text", "masked language modeling (BERT-style, 80/10/10 masking, sparse prediction)",
        HfsslTextConfig, HfsslTextForMaskedLM, AutoModelForMaskedLM,
    ),
    "clm": Objective(
        "clm", "text", "next-token (causal) language modeling (GPT-style)",
        HfsslTextConfig, HfsslTextForCausalLM, AutoModelForCausalLM, causal=True,
    ),
}


def get_objective(name: str) -> Objective:
    """The objective called `name`; KeyError listing the known ones otherwise."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"Unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}.") from None


def describe_objectives() -> str:
    """One line per objective, for --help texts."""
    return "\n".join(f"  {o.name:8} {o.modality:6} {o.description}" for o in OBJECTIVES.values())
