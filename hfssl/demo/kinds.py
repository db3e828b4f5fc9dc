"""The demo kinds and pooling rules, as plain data: `hfssl demo --help` lists them without importing torch."""

from __future__ import annotations

DEMO_KINDS: dict[str, str] = {
    "fill-mask": "masked language model: fill in the masked tokens",
    "generation": "next-token language model: continue a prompt",
    "reconstruction": "masked autoencoder: hide image patches and reconstruct them",
    "classification": "classifier: class probabilities for a text or an image",
    "gallery": "encoder: nearest neighbours, kNN classification and a PCA map over a gallery",
}
# How a stock transformers encoder without `get_features` turns its hidden states into one vector.
POOLING_RULES = ("mean", "cls", "last")
