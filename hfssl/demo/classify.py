"""Classifier demo (a fine-tuned `...ForSequenceClassification` / `...ForImageClassification`): a text or an
image in, the model's class probabilities out.

`classify(loaded, item)` is the pure function the tab and the tests call; single-label heads give softmax
probabilities, multi-label heads (`problem_type="multi_label_classification"`) independent sigmoids, and a
one-output regression head its value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image

from .inputs import (
    DemoInputError,
    Limits,
    check_image,
    check_text,
    image_input,
    reports_input_errors,
    runnable_examples,
)
from .loading import LoadedModel
from .vision import example_images, preprocess_images

MAX_SHOWN_CLASSES = 10
TEXT_EXAMPLES = (
    "A warm, funny film that I would happily watch again.",
    "The plot drags and the ending makes no sense.",
    "The meeting moved to Thursday afternoon.",
)


@dataclass(frozen=True)
class Classification:
    """`scores` maps class names to probabilities, best first (for a regression head: its one output).

    `read_tokens` / `input_tokens` tell how much of a text the model saw (a text longer than the model's
    positions is truncated); both are None for images.
    """

    scores: dict[str, float]
    kind: str  # "single-label", "multi-label" or "regression"
    read_tokens: int | None = None
    input_tokens: int | None = None

    @property
    def truncated(self) -> bool:
        return self.input_tokens is not None and self.read_tokens is not None and self.read_tokens < self.input_tokens


def head_kind(config) -> str:
    """ "regression" (one output), "multi-label" (sigmoid per class) or "single-label" (softmax over classes)."""
    if config.problem_type == "regression" or config.num_labels == 1:
        return "regression"
    return "multi-label" if config.problem_type == "multi_label_classification" else "single-label"


def class_names(config) -> list[str]:
    """The config's id2label names in id order (LABEL_i where a name is missing)."""
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]


def text_limit(loaded: LoadedModel) -> int | None:
    """The most tokens of a text the model reads: its positions, or the tokenizer's maximum when that is smaller,
    less the virtual tokens a prompt-learning adapter puts before the text."""
    limits = [getattr(loaded.model.config, "max_position_embeddings", None),
              getattr(loaded.tokenizer, "model_max_length", None)]
    limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    adapter = getattr(loaded.model, "active_peft_config", None)
    virtual = int(adapter.num_virtual_tokens or 0) if getattr(adapter, "is_prompt_learning", False) else 0
    return min(limits) - virtual if limits else None


@torch.no_grad()
def classify(loaded: LoadedModel, item: str | Image.Image) -> Classification:
    """Class probabilities of the classifier in `loaded` for one text (text models) or one PIL image."""
    model, config = loaded.model, loaded.model.config
    if loaded.modality == "image":
        inputs, read, total = {"pixel_values": preprocess_images(loaded, [item])}, None, None
    else:
        limit = text_limit(loaded)
        total = len(loaded.tokenizer(item, verbose=False)["input_ids"])  # no "longer than the maximum" warning
        encoded = loaded.tokenizer(item, truncation=limit is not None, max_length=limit, return_tensors="pt")
        inputs = {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
        read = int(encoded["input_ids"].shape[1])
    logits = model(**inputs).logits[0].float()  # (num_labels,)
    kind = head_kind(config)
    if kind == "regression":
        return Classification({class_names(config)[0]: float(logits[0])}, kind, read, total)
    probs = logits.sigmoid() if kind == "multi-label" else logits.softmax(dim=-1)
    scores = dict(sorted(zip(class_names(config), probs.tolist()), key=lambda pair: -pair[1]))
    return Classification(scores, kind, read, total)


class ClassificationTab:
    """A text box (text classifiers) or an image upload (image classifiers), and the class probabilities."""

    def __init__(self, loaded: LoadedModel, limits: Limits):
        self.loaded, self.limits = loaded, limits
        self.names = class_names(loaded.model.config)
        self.kind = head_kind(loaded.model.config)
        self.examples = example_images() if loaded.modality == "image" else list(TEXT_EXAMPLES)

    @reports_input_errors(lambda: (None,))
    def predict(self, item: str | Image.Image | None) -> tuple[dict[str, float] | str, str]:
        """Event handler: ({class: probability} for gr.Label, or the value of a regression head; status)."""
        if self.loaded.modality == "image":
            if item is None:
                raise DemoInputError("Upload an image or click one of the examples first.")
            item = check_image(item, self.limits)
        else:
            item = check_text(item, self.limits)
        start = time.perf_counter()
        result = classify(self.loaded, item)
        took = f"{(time.perf_counter() - start) * 1000:.0f} ms"
        if result.kind == "regression":
            value = next(iter(result.scores.values()))
            return f"{value:.4g}", f"Predicted value {value:.4g} in {took}." + self._truncation_note(result)
        best, p = next(iter(result.scores.items()))
        what = (f"{sum(v >= 0.5 for v in result.scores.values())} of {len(result.scores)} labels at 0.5 or more"
                if result.kind == "multi-label" else f"top class {best} ({p:.1%}) of {len(result.scores)}")
        return result.scores, f"{what[0].upper()}{what[1:]} in {took}." + self._truncation_note(result)

    @staticmethod
    def _truncation_note(result: Classification) -> str:
        if not result.truncated:
            return ""
        return (f" The text is {result.input_tokens} tokens; the model read the first {result.read_tokens} "
                "(its maximum).")

    def render(self) -> None:
        import gradio as gr

        image = self.loaded.modality == "image"
        shown = ", ".join(self.names[:MAX_SHOWN_CLASSES]) + (", …" if len(self.names) > MAX_SHOWN_CLASSES else "")
        what = ("a value (regression head)" if self.kind == "regression" else
                f"{'independent probabilities' if self.kind == 'multi-label' else 'probabilities'} for its "
                f"{len(self.names)} classes: {shown}")
        gr.Markdown(f"{'Upload an image' if image else 'Type a text'} or pick an example; the classifier gives {what}.")
        if image:
            item = image_input(value=self.examples[0], label="Image", sources=["upload", "clipboard"],
                               elem_id="classify-input")
        else:
            item = gr.Textbox(value=self.examples[0], label="Text", lines=3, elem_id="classify-input",
                              info=f"Up to {self.limits.max_text_chars:,} characters.")
        button = gr.Button("Classify", variant="primary", elem_id="classify-button")
        message = gr.Markdown(elem_id="classify-message")
        label = gr.Label(label="Prediction", num_top_classes=min(len(self.names), MAX_SHOWN_CLASSES),
                         elem_id="classify-label")
        outputs = [label, message]
        runnable_examples([[example] for example in self.examples], [item], outputs, self.predict, "classify_example")
        button.click(self.predict, [item], outputs, api_name="classify")
        if not image:
            item.submit(self.predict, [item], outputs, api_name="classify_submit")
