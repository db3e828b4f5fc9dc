"""Configuration of the hfssl Vision Transformer (MAE pretraining, image classification)."""

from __future__ import annotations

from transformers import PretrainedConfig

# Presets: encoder (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size) and the MAE decoder.
# Parameter counts measured at the defaults (32x32 RGB, 4x4 patches, sin-cos positions), backbone / MAE:
# tiny 1.79 M / 2.22 M, small 10.7 M / 13.9 M, base 85.1 M / 110.7 M. At 224x224 with 16x16 patches:
# tiny 1.93 M / 2.45 M, small 10.9 M / 14.4 M, base 85.6 M / 111.7 M (the ViT-B/16 and MAE-base shapes).
VISION_SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3, "intermediate_size": 768,
        "decoder_hidden_size": 128, "decoder_num_hidden_layers": 2, "decoder_num_attention_heads": 4,
        "decoder_intermediate_size": 512,
    },
    "small": {
        "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 6, "intermediate_size": 1536,
        "decoder_hidden_size": 256, "decoder_num_hidden_layers": 4, "decoder_num_attention_heads": 8,
        "decoder_intermediate_size": 1024,
    },
    "base": {
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "decoder_hidden_size": 512, "decoder_num_hidden_layers": 8, "decoder_num_attention_heads": 16,
        "decoder_intermediate_size": 2048,
    },
}
ACTIVATIONS = ("gelu", "swiglu")
POSITION_TYPES = ("sincos", "learned")
POOLING_TYPES = ("cls", "mean")


class HfsslVisionConfig(PretrainedConfig):
    r"""
    Configuration of [`HfsslVisionModel`] (a pre-norm ViT, Dosovitskiy et al. 2021) and its heads.

    Args:
        image_size: side of the square input images in pixels; a multiple of `patch_size`.
        patch_size: side of the square patches; smaller patches mean more tokens (quadratic attention cost).
        num_channels: 1 for grayscale, 3 for RGB, or any other count.
        hidden_size: width of the residual stream.
        num_hidden_layers: transformer blocks in the encoder.
        num_attention_heads: heads per attention layer; must divide `hidden_size`.
        intermediate_size: width of the feed-forward layer.
        hidden_act: "gelu" (ViT, MAE) or "swiglu".
        use_bias: biases in linear, patch and norm layers.
        hidden_dropout_prob: dropout on the residual branches and embeddings.
        attention_dropout_prob: dropout on attention probabilities.
        layer_norm_eps: epsilon of LayerNorm.
        initializer_range: std of the normal initializer.
        position_embedding_type: "sincos" (fixed 2-D sin-cos, no parameters, any image size)
            or "learned" (one vector per patch of `image_size`).
        pooling: "cls" (class token) or "mean" (average of the patch tokens) for `get_features` and classification.
        mask_ratio: fraction of patches MAE hides from the encoder; 0.75 in He et al. 2021.
        decoder_hidden_size: width of the MAE decoder (thrown away after pretraining, so it can be narrow).
        decoder_num_hidden_layers: blocks in the MAE decoder.
        decoder_num_attention_heads: heads per decoder attention layer; must divide `decoder_hidden_size`.
        decoder_intermediate_size: width of the decoder feed-forward layer.
        norm_pix_loss: MAE regresses per-patch normalized pixels (sharper features in He et al. 2021).
        sparse_last_layer: when MAE trains (train mode, gradients on), the decoder's last block computes its
            output at the masked patches only, which are all the loss reads: its keys and values still come from
            every position, so the loss and gradients are those of the full block, while its attention output,
            MLP, norm and the pixel head skip the class token and the visible patches. Such forward passes return
            `logits=None`; in eval mode, without gradients, or off, the decoder predicts every patch. The MAE
            term of hybrid objectives (`mae_loss`, no logits) always takes the sparse path when this is on.
    """

    model_type = "hfssl_vision"

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        num_channels: int = 3,
        hidden_size: int = 192,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 3,
        intermediate_size: int = 768,
        hidden_act: str = "gelu",
        use_bias: bool = True,
        hidden_dropout_prob: float = 0.0,
        attention_dropout_prob: float = 0.0,
        layer_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        position_embedding_type: str = "sincos",
        pooling: str = "cls",
        mask_ratio: float = 0.75,
        decoder_hidden_size: int = 128,
        decoder_num_hidden_layers: int = 2,
        decoder_num_attention_heads: int = 4,
        decoder_intermediate_size: int = 512,
        norm_pix_loss: bool = True,
        sparse_last_layer: bool = True,
        **kwargs,
    ):
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.use_bias = use_bias
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout_prob = attention_dropout_prob
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.position_embedding_type = position_embedding_type
        self.pooling = pooling
        self.mask_ratio = mask_ratio
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_hidden_layers = decoder_num_hidden_layers
        self.decoder_num_attention_heads = decoder_num_attention_heads
        self.decoder_intermediate_size = decoder_intermediate_size
        self.norm_pix_loss = norm_pix_loss
        self.sparse_last_layer = sparse_last_layer
        kwargs.setdefault("auto_map", _auto_map())
        # AutoModelForPreTraining holds two classes for this config (MAE, contrastive) and picks by `architectures`;
        # transformers iterates it, so a fresh config's is an empty list (from_config then gives MAE), not None.
        if kwargs.get("architectures") is None:
            kwargs["architectures"] = []
        super().__init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        _check_choice("hidden_act", self.hidden_act, ACTIVATIONS)
        _check_choice("position_embedding_type", self.position_embedding_type, POSITION_TYPES)
        _check_choice("pooling", self.pooling, POOLING_TYPES)
        for name in ("image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers",
                     "num_attention_heads", "intermediate_size", "decoder_hidden_size",
                     "decoder_num_hidden_layers", "decoder_num_attention_heads", "decoder_intermediate_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        self._validate_patches()
        for prefix in ("", "decoder_"):
            width, heads = getattr(self, f"{prefix}hidden_size"), getattr(self, f"{prefix}num_attention_heads")
            if width % heads:
                raise ValueError(
                    f"{prefix}hidden_size ({width}) must be a multiple of {prefix}num_attention_heads ({heads}); "
                    "change one of them."
                )
            if self.position_embedding_type == "sincos" and width % 4:
                raise ValueError(
                    f"sincos positions need {prefix}hidden_size divisible by 4, got {width}; "
                    "change it or use position_embedding_type='learned'."
                )
        for name in ("hidden_dropout_prob", "attention_dropout_prob", "mask_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                hint = " (MAE needs it above 0; 0.75 in He et al. 2021)" if name == "mask_ratio" else ""
                raise ValueError(f"{name} must be a number in [0, 1){hint}, got {value!r}.")

    def _validate_patches(self) -> None:
        if self.patch_size > self.image_size:
            raise ValueError(
                f"patch_size ({self.patch_size}) is larger than image_size ({self.image_size}); "
                f"use a patch_size of at most {self.image_size}."
            )
        if self.image_size % self.patch_size:
            fit = round(self.image_size / self.patch_size) * self.patch_size
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size}); "
                f"use image_size={fit} or a patch_size that divides {self.image_size}."
            )

    @property
    def num_patches(self) -> int:
        """Patches per image at `image_size`: (image_size / patch_size) ** 2."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_size(cls, size: str, **overrides) -> HfsslVisionConfig:
        """A config from a size preset (`tiny`, `small`, `base`) with fields overridden by keyword."""
        if size not in VISION_SIZES:
            raise ValueError(f"Unknown model size {size!r}; valid sizes: {', '.join(VISION_SIZES)}.")
        return cls(**{**VISION_SIZES[size], **overrides})


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of: {', '.join(allowed)}.")


def _auto_map() -> dict[str, str]:
    # Every head is listed so a checkpoint saved from one head loads into another with
    # trust_remote_code=True where hfssl is not installed. MAE is a pretraining head, not the
    # SimMIM-style `bool_masked_pos` model that AutoModelForMaskedImageModeling expects.
    module = "modeling_hfssl_vision"
    return {
        "AutoConfig": "configuration_hfssl_vision.HfsslVisionConfig",
        "AutoModel": f"{module}.HfsslVisionModel",
        "AutoModelForPreTraining": f"{module}.HfsslVisionForMaskedImageModeling",
        "AutoModelForImageClassification": f"{module}.HfsslVisionForImageClassification",
    }
