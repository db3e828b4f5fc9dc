"""hfssl Vision Transformer: backbone, masked autoencoder (MAE) and image classification.

Publishable: imports only torch, transformers and files of this folder, so `save_pretrained` copies
everything that `from_pretrained(..., trust_remote_code=True)` needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput

from .blocks import (
    Block,
    classifier_loss,
    keep_saved_auto_map,
    pool,
    remote_pretraining_class,
)
from .configuration_hfssl_vision import HfsslVisionConfig
from .cpu_gemm import Linear
from .input_checks import output_flag, prepare_pixel_values


@dataclass
class HfsslVisionModelOutput(ModelOutput):
    """last_hidden_state (b, 1 + kept patches, hidden): the class token first. pooler_output (b, hidden): the
    features of `config.pooling` (what `get_features` returns in eval mode), None with masking. With masking,
    mask (b, L) is 1 where a patch was hidden and ids_restore (b, L) undoes the shuffle; both are None without
    masking. attentions: each layer's weights (b, heads, tokens, tokens) with `output_attentions`."""

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class HfsslVisionMaskedImageModelingOutput(ModelOutput):
    """loss: MSE on masked patches; logits (b, L, patch_size**2 * channels): predicted (normalized) pixels per patch
    (None from a training step with `config.sparse_last_layer`, which predicts the masked patches only);
    mask (b, L): 1 = masked; ids_restore (b, L); hidden_states and attentions: the encoder's, over visible patches."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def sincos_positions(grid_h: int, grid_w: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 2-D sin-cos positions (MAE): (1 + grid_h * grid_w, dim), a zero row first for the class token.

    Row-major patches; channels laid out [sin_w | cos_w | sin_h | cos_h] as in facebookresearch/mae and
    transformers ViTMAE, so their weights convert. `dim` must be divisible by 4.
    """
    exact = torch.float32 if device is not None and torch.device(device).type == "mps" else torch.float64
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, device=device, dtype=exact) / (dim // 4))  # (dim/4,)
    rows = torch.arange(grid_h, device=device, dtype=exact)[:, None].expand(grid_h, grid_w)  # (h, w)
    cols = torch.arange(grid_w, device=device, dtype=exact)[None, :].expand(grid_h, grid_w)  # (h, w)
    angle_w, angle_h = cols.flatten().outer(omega), rows.flatten().outer(omega)  # (h * w, dim/4) each
    patches = torch.cat([angle_w.sin(), angle_w.cos(), angle_h.sin(), angle_h.cos()], dim=1)  # (h * w, dim)
    return F.pad(patches, (0, 0, 1, 0)).to(dtype)  # (1 + h * w, dim)


def random_masking(
    x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.LongTensor]:
    """Per-sample random masking by argsort of noise (He et al. 2021): keep the patches with the lowest noise.

    x: (b, L, d), noise: (b, L) uniform, drawn when None -> kept (b, keep, d), mask (b, L) with 1 = masked,
    ids_restore (b, L); keep = int(L * (1 - mask_ratio)).
    """
    b, length, d = x.shape
    keep = int(length * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(f"mask_ratio={mask_ratio} leaves none of the {length} patches visible; lower it or use "
                         "smaller patches.")
    if noise is None:
        noise = torch.rand(b, length, device=x.device)
    elif noise.shape != (b, length):
        raise ValueError(f"noise must have shape (batch, num_patches) = {(b, length)}, got {tuple(noise.shape)}.")
    ids_shuffle = noise.to(x.device).argsort(dim=1)  # (b, L): ascending noise, the kept ones first
    ids_restore = ids_shuffle.argsort(dim=1)  # (b, L)
    kept = x.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, d))  # (b, keep, d)
    mask = torch.ones(b, length, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    return kept, mask.gather(1, ids_restore), ids_restore  # mask back in patch order


class _DecoderConfig:
    """The config as the MAE decoder's blocks see it: decoder sizes, everything else (dropout, norm epsilon,
    attention implementation) read live from the model config, so `attn_implementation` switches reach it."""

    _RENAMED = {
        "hidden_size": "decoder_hidden_size",
        "num_attention_heads": "decoder_num_attention_heads",
        "intermediate_size": "decoder_intermediate_size",
    }

    def __init__(self, config: HfsslVisionConfig):
        self.config = config

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "config":  # copy and pickle probe dunders before __init__ runs
            raise AttributeError(name)
        return getattr(self.config, self._RENAMED.get(name, name))


class HfsslVisionEmbeddings(nn.Module):
    """Patches (Conv2d patch x patch, stride patch) plus positions, and the class token."""

    def __init__(self, config: HfsslVisionConfig):
        super().__init__()
        self.config = config
        p = config.patch_size
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size, p, stride=p, bias=config.use_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, 1 + config.num_patches, config.hidden_size))
            if config.position_embedding_type == "learned"
            else None
        )

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values (b, c, h, w) -> patches (b, L, hidden) and class token (b, 1, hidden), positions added."""
        pixel_values, grid = prepare_pixel_values(pixel_values, self.config, self.projection.weight.dtype)
        x = self.projection(pixel_values).flatten(2).transpose(1, 2)  # (b, L, hidden)
        positions = _positions(self.position_embeddings, grid, x)  # (1, 1 + L, hidden)
        cls = (self.cls_token + positions[:, :1]).expand(x.shape[0], -1, -1)  # (b, 1, hidden)
        return x + positions[:, 1:], cls


def _positions(learned: nn.Parameter | None, grid: tuple[int, int], x: torch.Tensor) -> torch.Tensor:
    """Learned positions, or sin-cos ones computed for `grid` on x's device and dtype: (1, 1 + L, dim)."""
    if learned is not None:
        return learned
    return sincos_positions(*grid, x.shape[-1], device=x.device, dtype=x.dtype)[None]


class HfsslVisionPreTrainedModel(PreTrainedModel):
    config_class = HfsslVisionConfig
    config: HfsslVisionConfig
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["Block"]
    _supports_sdpa = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with a config.json whose auto_map names only code the folder holds
        (see `keep_saved_auto_map`)."""
        keep_saved_auto_map(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, HfsslVisionEmbeddings):
            # MAE initializes the patch projection like a linear layer over flattened patches.
            init.xavier_uniform_(module.projection.weight.view(module.projection.weight.shape[0], -1))
            init.normal_(module.cls_token, std=std)
            if module.position_embeddings is not None:
                init.normal_(module.position_embeddings, std=std)
        elif isinstance(module, HfsslVisionDecoder):
            init.normal_(module.mask_token, std=std)
            if module.position_embeddings is not None:
                init.normal_(module.position_embeddings, std=std)

    def get_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Deterministic pooled features: pixel_values (b, c, h, w) -> (b, hidden). No masking, no dropout.

        Gradients still flow; wrap in `torch.no_grad()` for inference.
        """
        backbone = self.base_model
        was_training = backbone.training
        backbone.eval()
        try:
            return backbone.forward_features(pixel_values)
        finally:
            backbone.train(was_training)


class HfsslVisionModel(HfsslVisionPreTrainedModel):
    """The bare ViT: patch embedding, class token, positions, pre-norm blocks, a final norm."""

    def __init__(self, config: HfsslVisionConfig):
        super().__init__(config)
        self.embeddings = HfsslVisionEmbeddings(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([Block(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.post_init()

    def get_input_embeddings(self) -> nn.Conv2d:
        return self.embeddings.projection

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> HfsslVisionModelOutput:
        """pixel_values (b, c, h, w) -> last_hidden_state (b, 1 + L', hidden).

        No masking by default (L' = L patches). With `mask_ratio` > 0, or with `noise` (b, L) (then
        `config.mask_ratio` unless `mask_ratio` is given), only L' = int(L * (1 - mask_ratio)) visible patches
        are encoded; `noise` makes the choice reproducible.
        """
        if pixel_values is None:
            raise ValueError("Pass pixel_values of shape (batch, num_channels, height, width).")
        output_hidden_states = output_flag(output_hidden_states, self.config, "output_hidden_states")
        output_attentions = output_flag(output_attentions, self.config, "output_attentions")
        patches, cls = self.embeddings(pixel_values)  # (b, L, hidden), (b, 1, hidden)
        if mask_ratio is None and noise is not None:
            mask_ratio = self.config.mask_ratio
        mask = ids_restore = None
        if mask_ratio:
            patches, mask, ids_restore = random_masking(patches, mask_ratio, noise)  # (b, L', hidden)
        x = self.dropout(torch.cat([cls, patches], dim=1))  # (b, 1 + L', hidden)
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            if attentions is not None:
                x, probs = layer(x, output_attentions=True)
                attentions.append(probs)
            else:
                x = layer(x)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.norm(x)
        out = HfsslVisionModelOutput(
            last_hidden_state=x, pooler_output=_pool(x, self.config.pooling) if mask is None else None,
            mask=mask, ids_restore=ids_restore, hidden_states=tuple(hidden_states) if hidden_states else None,
            attentions=tuple(attentions) if attentions else None,
        )
        return out if output_flag(return_dict, self.config, "return_dict") else out.to_tuple()

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """All patches, pooled per `config.pooling`: (b, c, h, w) -> (b, hidden). Dropout follows train/eval mode."""
        return self(pixel_values, return_dict=True).pooler_output


def _pool(hidden: torch.Tensor, how: str) -> torch.Tensor:
    """hidden (b, 1 + L, d) -> (b, d): the class token, or the mean of the patch tokens (MAE's global pool)."""
    return pool(hidden if how == "cls" else hidden[:, 1:], None, how)


class HfsslVisionDecoder(nn.Module):
    """MAE decoder: embed visible tokens, add mask tokens, unshuffle, add positions, blocks, predict pixels."""

    def __init__(self, config: HfsslVisionConfig):
        super().__init__()
        if not config.mask_ratio > 0:
            raise ValueError(f"MAE predicts the patches it hides, so mask_ratio must be in (0, 1), got "
                             f"{config.mask_ratio!r}; set mask_ratio (0.75 in He et al. 2021).")
        if int(config.num_patches * (1 - config.mask_ratio)) < 1:
            raise ValueError(
                f"mask_ratio={config.mask_ratio} leaves none of the {config.num_patches} patches of a "
                f"{config.image_size}x{config.image_size} image visible to the encoder; lower mask_ratio, or use a "
                f"smaller patch_size than {config.patch_size} (more patches).")
        if config.norm_pix_loss and config.patch_size**2 * config.num_channels < 2:
            raise ValueError(
                f"norm_pix_loss normalizes each patch by the mean and variance of its own pixels, and a "
                f"{config.patch_size}x{config.patch_size} patch of {config.num_channels} channel has one value (no "
                f"variance): use patch_size >= 2 (with a larger image_size), or norm_pix_loss=False.")
        width = config.decoder_hidden_size
        block_config = _DecoderConfig(config)
        self.embed = Linear(config.hidden_size, width, bias=config.use_bias)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, 1 + config.num_patches, width))
            if config.position_embedding_type == "learned"
            else None
        )
        self.layers = nn.ModuleList([Block(block_config, i) for i in range(config.decoder_num_hidden_layers)])
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps, bias=config.use_bias)
        self.pred = Linear(width, config.patch_size**2 * config.num_channels)

    def forward(
        self,
        latent: torch.Tensor,
        ids_restore: torch.LongTensor,
        grid: tuple[int, int],
        patches: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """latent (b, 1 + L', hidden), ids_restore (b, L) -> predicted pixels (b, L, patch_size**2 * channels).

        patches (b, k), optional: predict these patches only (indices into L), (b, k, patch_size**2 * channels);
        the last block then computes those rows alone (`Block.forward`'s `keep`), the same values as a full pass.
        """
        x = self.embed(latent)  # (b, 1 + L', width)
        b, length = ids_restore.shape
        mask_tokens = self.mask_token.expand(b, length + 1 - x.shape[1], -1)  # (b, L - L', width)
        tokens = torch.cat([x[:, 1:], mask_tokens], dim=1)  # (b, L, width), in shuffled order
        tokens = tokens.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))  # (b, L, width), image order
        x = torch.cat([x[:, :1], tokens], dim=1) + _positions(self.position_embeddings, grid, x)  # (b, 1 + L, width)
        keep = None if patches is None else patches + 1  # (b, k): rows of x, after the class token
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, keep=keep if i == last else None)
        if keep is not None and last < 0:
            x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
        predicted = self.pred(self.norm(x))
        return predicted if keep is not None else predicted[:, 1:]  # (b, k or L, patch_size**2 * channels)


class MaskedAutoencoderMixin:
    """The MAE steps, shared by the MAE model and hybrid objectives: needs `self.model` (HfsslVisionModel),
    `self.decoder` (HfsslVisionDecoder) and `self.config`. Its two users are the vision AutoModelForPreTraining
    classes, which is why their shared `from_pretrained` is here too."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`; loaded as remote code by AutoModelForPreTraining for a checkpoint whose
        auto_map names the other pretraining class (MAE or joint-embedding), that class (`remote_pretraining_class`)."""
        other = remote_pretraining_class(cls, pretrained_model_name_or_path, kwargs)
        target = super() if other is None else other
        return target.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def mae_loss(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The MAE loss of one batch (b, c, h, w): a scalar."""
        encoded = self.forward_encoder(pixel_values, noise)
        if self.config.sparse_last_layer and _masked_count(encoded) > 0:  # no logits to return: predict masked only
            return self.masked_patch_loss(pixel_values, encoded)
        logits = self.forward_decoder(encoded.last_hidden_state, encoded.ids_restore, pixel_values.shape[-2:])
        return self.forward_loss(pixel_values, logits, encoded.mask)

    def forward_encoder(
        self,
        pixel_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> HfsslVisionModelOutput:
        """Encode the visible patches only: last_hidden_state (b, 1 + int(L * (1 - mask_ratio)), hidden)."""
        return self.model(pixel_values, noise=noise, mask_ratio=self.config.mask_ratio,
                          output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                          return_dict=True)

    def forward_decoder(
        self, latent: torch.Tensor, ids_restore: torch.LongTensor, image_size, patches: torch.LongTensor | None = None
    ) -> torch.Tensor:
        """latent (b, 1 + L', hidden), ids_restore (b, L), image_size (h, w) -> logits (b, L, p*p*c); with
        patches (b, k), the logits of those patches only, (b, k, p*p*c)."""
        p = self.config.patch_size
        return self.decoder(latent, ids_restore, (image_size[0] // p, image_size[1] // p), patches)

    def forward_loss(self, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over masked patches of the per-patch MSE to the (normalized, if norm_pix_loss) pixels: a scalar."""
        loss = (logits.float() - self._pixel_targets(pixel_values).float()).pow(2).mean(dim=-1)  # (b, L)
        return (loss * mask).sum() / mask.sum().clamp(min=1)

    def masked_patch_loss(self, pixel_values: torch.Tensor, encoded: HfsslVisionModelOutput) -> torch.Tensor:
        """`forward_loss`'s value with the decoder predicting the masked patches only (its last block and pixel
        head skip the rest): a scalar. `encoded` is `forward_encoder`'s output with at least one masked patch."""
        kept = encoded.last_hidden_state.shape[1] - 1
        masked = encoded.ids_restore.argsort(dim=1)[:, kept:]  # (b, k): the masked patches, in shuffled order
        predicted = self.forward_decoder(  # (b, k, p*p*c)
            encoded.last_hidden_state, encoded.ids_restore, pixel_values.shape[-2:], masked)
        target = self._pixel_targets(pixel_values, masked)  # (b, k, p*p*c)
        return (predicted.float() - target.float()).pow(2).mean()

    def _pixel_targets(self, pixel_values: torch.Tensor, patches: torch.LongTensor | None = None) -> torch.Tensor:
        """What the decoder regresses: (b, L, p*p*c) patches, or (b, k, p*p*c) at `patches` (b, k), normalized per
        patch when norm_pix_loss."""
        target = self.patchify(pixel_values)  # (b, L, p*p*c)
        if patches is not None:
            target = target.gather(1, patches[..., None].expand(-1, -1, target.shape[-1]))
        if self.config.norm_pix_loss:
            mean, std = _patch_statistics(target)
            target = (target - mean) / std
        return target

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, L, p*p*c), patches row-major, each flattened as (p, p, c)."""
        b, c, h, w = pixel_values.shape
        p = self.config.patch_size
        x = pixel_values.reshape(b, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)

    def unpatchify(self, patches: torch.Tensor, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """(b, L, p*p*c) -> (b, c, h, w); image_size (h, w) defaults to the config's square size."""
        h, w = image_size if image_size is not None else (self.config.image_size,) * 2
        p, c = self.config.patch_size, self.config.num_channels
        if (h // p) * (w // p) != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} patches do not tile a {h}x{w} image with patch_size={p}.")
        x = patches.reshape(patches.shape[0], h // p, w // p, p, p, c)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(patches.shape[0], c, h, w)

    def reconstruction(self, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Images (b, c, h, w) in pixel space: visible patches from the input, masked ones predicted (for demos).

        With norm_pix_loss the predictions are per-patch normalized; each is mapped back with the mean and
        std of its true patch, as in the MAE demo.
        """
        target = self.patchify(pixel_values)  # (b, L, p*p*c)
        predicted = logits.to(target.dtype)
        if self.config.norm_pix_loss:
            mean, std = _patch_statistics(target)
            predicted = predicted * std + mean
        patches = torch.where(mask[..., None].bool(), predicted, target)  # (b, L, p*p*c)
        return self.unpatchify(patches, pixel_values.shape[-2:])



class HfsslVisionForMaskedImageModeling(MaskedAutoencoderMixin, HfsslVisionPreTrainedModel):
    """Masked autoencoder (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners"): the encoder sees a
    random 1 - mask_ratio of the patches, a light decoder predicts the pixels of the rest, MSE on masked patches."""

    # A mean over masked patches that ignores `num_items_in_batch` (which the Trainer counts when the batch holds
    # `labels`): the Trainer divides it by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: HfsslVisionConfig):
        super().__init__(config)
        self.model = HfsslVisionModel(config)
        self.decoder = HfsslVisionDecoder(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        return_loss: bool = True,
        **kwargs,
    ) -> HfsslVisionMaskedImageModelingOutput:
        """pixel_values (b, c, h, w), noise (b, L) optional (fixes the masking) -> loss, logits (b, L, p*p*c), mask.

        A training step (train mode, gradients on) with `config.sparse_last_layer` predicts the masked patches only
        and returns logits=None; otherwise (evaluation, inference, or the flag off) the decoder predicts every patch.
        `return_loss=False` leaves the loss out (None; the decoder then predicts every patch). Its default, True,
        also tells a plain `transformers.Trainer` that this model computes its loss without labels, so its
        evaluations report `eval_loss` (which `load_best_model_at_end` and early stopping read).
        """
        encoded = self.forward_encoder(pixel_values, noise, output_hidden_states, output_attentions)
        sparse = self.config.sparse_last_layer and self.training and torch.is_grad_enabled()
        if sparse and return_loss and _masked_count(encoded) > 0:
            logits, loss = None, self.masked_patch_loss(pixel_values, encoded)
        else:
            logits = self.forward_decoder(encoded.last_hidden_state, encoded.ids_restore, pixel_values.shape[-2:])
            loss = self.forward_loss(pixel_values, logits, encoded.mask) if return_loss else None
        out = HfsslVisionMaskedImageModelingOutput(
            loss=loss, logits=logits, mask=encoded.mask, ids_restore=encoded.ids_restore,
            hidden_states=encoded.hidden_states, attentions=encoded.attentions,
        )
        return out if output_flag(return_dict, self.config, "return_dict") else out.to_tuple()


def _masked_count(encoded: HfsslVisionModelOutput) -> int:
    """Masked patches per image of an encoder output: L minus the visible ones."""
    return encoded.ids_restore.shape[1] - (encoded.last_hidden_state.shape[1] - 1)


def _patch_statistics(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch mean and std (unbiased variance + 1e-6, as in MAE) of (b, L, n) patches: (b, L, 1) each."""
    return patches.mean(dim=-1, keepdim=True), (patches.var(dim=-1, keepdim=True) + 1e-6) ** 0.5


class HfsslVisionForImageClassification(HfsslVisionPreTrainedModel):
    """Pooled features (config.pooling) -> linear. Loads any hfssl vision checkpoint, MAE included (shared `model.`)."""

    # A batch-mean loss that ignores `num_items_in_batch`: the Trainer divides it by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: HfsslVisionConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = HfsslVisionModel(config)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        """labels: (b,) class ids, (b, num_labels) 0/1 floats for multi-label, or (b,) floats for num_labels == 1
        regression (see `classification_loss`, `config.problem_type`) -> logits (b, num_labels)."""
        out = self.model(pixel_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                         return_dict=True)
        logits = self.classifier(out.pooler_output)  # (b, num_labels)
        loss = classifier_loss(self.config, logits, labels) if labels is not None else None
        result = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return result if output_flag(return_dict, self.config, "return_dict") else result.to_tuple()


HfsslVisionConfig.register_for_auto_class()
HfsslVisionModel.register_for_auto_class("AutoModel")
HfsslVisionForMaskedImageModeling.register_for_auto_class("AutoModelForPreTraining")
HfsslVisionForImageClassification.register_for_auto_class("AutoModelForImageClassification")
