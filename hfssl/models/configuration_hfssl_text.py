"""Configuration of the hfssl text transformer (masked LM, next-token LM, SimCSE, classification)."""

from __future__ import annotations

from transformers import PretrainedConfig

# Presets: (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size).
# Parameter counts with the default vocabulary of 8,192 tokens, tied embeddings, GELU:
# tiny 1.47 M, small 5.33 M, base 91.9 M (masked LM head; BERT-base shape with a smaller vocabulary).
TEXT_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}
ACTIVATIONS = ("gelu", "swiglu")
POSITION_TYPES = ("rope", "learned")
POOLING_TYPES = ("mean", "cls", "last")


class HfsslTextConfig(PretrainedConfig):
    r"""
    Configuration of [`HfsslTextModel`] and its heads: a pre-norm transformer encoder or decoder.

    Args:
        vocab_size: tokens in the vocabulary; must be at least the tokenizer's length.
        hidden_size: width of the residual stream.
        num_hidden_layers: transformer blocks.
        num_attention_heads: heads per attention layer; must divide `hidden_size`.
        intermediate_size: width of the feed-forward layer (SwiGLU uses it for each of its two branches).
        hidden_act: "gelu" (cheaper) or "swiglu" (better quality per parameter in recent LMs).
        max_position_embeddings: longest sequence; learned positions allocate one row per position.
        position_embedding_type: "rope" (extrapolates, no parameters) or "learned" (BERT/GPT-2 style).
        rope_theta: RoPE base frequency.
        use_bias: biases in linear and norm layers; off saves parameters and is what most modern LMs do.
        hidden_dropout_prob: dropout on the residual branches and embeddings (SimCSE uses it as augmentation).
        attention_dropout_prob: dropout on attention probabilities.
        layer_norm_eps: epsilon of LayerNorm.
        initializer_range: std of the normal initializer.
        is_causal: causal (next-token) or bidirectional (masked) attention; set by the objective.
        pooling: "mean", "cls" or "last" token pooling for `get_features` and classification;
            default "last" for causal models and "mean" otherwise.
        sparse_prediction: masked LM computes the head and loss on masked positions only.
        sparse_last_layer: when a masked LM with a sparse head gets labels (training or evaluation), the last
            block, too, computes its output at the masked positions only: its keys and values still come from
            every position, so the loss and gradients are those of the full layer, while its attention output,
            MLP and norms run on about 15% of the rows. Off (or with `output_hidden_states`): the last block
            computes every position, as the others do.
        loss_chunk_size: how the LM head and its cross-entropy run while training with labels. None (default)
            or a positive number of token rows: fused, that many rows at a time (None: 128 on CPUs, 4,096 on
            accelerators), with the gradients computed on the way, so the (tokens x vocabulary) logits never
            exist whole and nothing is recomputed (`linear_cross_entropy.py`); the output's `logits` is then
            None, and the projection's weight is read directly (forward hooks on `lm_head`, or on the MLM
            head's `decoder`, do not fire). 0: the plain head over every row, logits kept and returned.
            Evaluation (no gradients) always takes the plain path.
        classifier_dropout: dropout before the classification layer.
        tie_word_embeddings: share input embeddings and the LM output layer.
    """

    model_type = "hfssl_text"

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 2,
        intermediate_size: int = 512,
        hidden_act: str = "gelu",
        max_position_embeddings: int = 512,
        position_embedding_type: str = "rope",
        rope_theta: float = 10000.0,
        use_bias: bool = True,
        hidden_dropout_prob: float = 0.1,
        attention_dropout_prob: float = 0.0,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        is_causal: bool = False,
        pooling: str | None = None,
        sparse_prediction: bool = True,
        sparse_last_layer: bool = True,
        loss_chunk_size: int | None = None,
        classifier_dropout: float = 0.1,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.position_embedding_type = position_embedding_type
        self.rope_theta = rope_theta
        self.use_bias = use_bias
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout_prob = attention_dropout_prob
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.is_causal = is_causal
        self.pooling = pooling if pooling is not None else ("last" if is_causal else "mean")
        self.sparse_prediction = sparse_prediction
        self.sparse_last_layer = sparse_last_layer
        self.loss_chunk_size = loss_chunk_size
        self.classifier_dropout = classifier_dropout
        kwargs.setdefault("auto_map", _auto_map())
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        self._validate()

    def _validate(self) -> None:
        _check_choice("hidden_act", self.hidden_act, ACTIVATIONS)
        _check_choice("position_embedding_type", self.position_embedding_type, POSITION_TYPES)
        _check_choice("pooling", self.pooling, POOLING_TYPES)
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}); change one of them."
            )
        if self.position_embedding_type == "rope" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("RoPE needs an even head dimension (hidden_size / num_attention_heads).")
        chunk = self.loss_chunk_size
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0):
            raise ValueError(
                f"loss_chunk_size must be None (fused, default chunk), 0 (plain head, logits kept) or a positive "
                f"number of token rows, got {chunk!r}."
            )
        for name in ("hidden_dropout_prob", "attention_dropout_prob", "classifier_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_size(cls, size: str, **overrides) -> HfsslTextConfig:
        """A config from a size preset (`tiny`, `small`, `base`) with fields overridden by keyword."""
        if size not in TEXT_SIZES:
            raise ValueError(f"Unknown model size {size!r}; valid sizes: {', '.join(TEXT_SIZES)}.")
        return cls(**{**TEXT_SIZES[size], **overrides})


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of: {', '.join(allowed)}.")


def _auto_map() -> dict[str, str]:
    # Every head is listed so a checkpoint saved from one head loads into another with
    # trust_remote_code=True where hfssl is not installed.
    module = "modeling_hfssl_text"
    return {
        "AutoConfig": "configuration_hfssl_text.HfsslTextConfig",
        "AutoModel": f"{module}.HfsslTextModel",
        "AutoModelForMaskedLM": f"{module}.HfsslTextForMaskedLM",
        "AutoModelForCausalLM": f"{module}.HfsslTextForCausalLM",
        "AutoModelForSequenceClassification": f"{module}.HfsslTextForSequenceClassification",
    }
