"""Joint-embedding pretraining of the hfssl ViT (SimCLR, MoCo v3, BYOL, SimSiam, DINO, SwAV), optionally
with MAE reconstruction on the same backbone (a hybrid objective).

Publishable: imports only torch, transformers and files of this folder.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .configuration_hfssl_vision import HfsslVisionConfig
from .input_checks import output_flag
from .modeling_hfssl_contrastive import ContrastiveLearningMixin, ContrastiveOutput
from .modeling_hfssl_vision import (
    HfsslVisionDecoder,
    HfsslVisionModel,
    HfsslVisionPreTrainedModel,
    MaskedAutoencoderMixin,
)


class HfsslVisionForContrastiveLearning(ContrastiveLearningMixin, MaskedAutoencoderMixin, HfsslVisionPreTrainedModel):
    """A ViT trained by the method in `config.ssl` on augmented views of each image.

    With `config.mae_weight > 0` (objective `mae+<method>`) a MAE decoder is added and the loss is
    `ssl_loss + mae_weight * mae_loss`, the MAE term on the first global view. `get_features` and the
    checkpoint's `AutoModel` / `AutoModelForImageClassification` loading see only the online backbone.
    """

    def __init__(self, config: HfsslVisionConfig):
        super().__init__(config)
        self.model = HfsslVisionModel(config)
        self.mae_weight = float(getattr(config, "mae_weight", 0.0) or 0.0)
        if self.mae_weight < 0:
            raise ValueError(f"mae_weight must be >= 0, got {self.mae_weight}.")
        self.decoder = HfsslVisionDecoder(config) if self.mae_weight > 0 else None
        entry = ("AutoModelForPreTraining", f"{__name__.split('.')[-1]}.{type(self).__name__}")
        self.setup_ssl(config.hidden_size, entry)

    def pooled_features(self, backbone: torch.nn.Module, view: torch.Tensor) -> torch.Tensor:
        """view (b, c, h, w), any size the patches tile (local crops are smaller) -> (b, hidden)."""
        return backbone.forward_features(view)

    def forward(
        self,
        views: Optional[Sequence[torch.Tensor]] = None,
        pixel_values: Optional[torch.Tensor] = None,
        noise: Optional[torch.Tensor] = None,
        return_loss: bool = True,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ContrastiveOutput:
        """views: global views first, then local crops, each (b, c, h_i, w_i); or pixel_values (b, c, h, w),
        used as every global view (identical views: a check, not training)."""
        self.refuse_output_flags(kwargs)
        if views is None:
            if pixel_values is None:
                raise ValueError("Pass views=[...] (augmented views of one batch) or pixel_values.")
            views = [pixel_values] * self.ssl.n_global_views
        out = self.forward_views(list(views), return_loss=return_loss)
        if self.decoder is not None and out.loss is not None:
            mae = self.mae_loss(views[0], noise)
            self.last_ssl_logs = {**self.last_ssl_logs, "mae_loss": float(mae.detach())}
            out.loss = out.loss + self.mae_weight * mae
        return out if output_flag(return_dict, self.config, "return_dict") else out.to_tuple()


HfsslVisionForContrastiveLearning.register_for_auto_class("AutoModelForPreTraining")
