"""Contrastive, non-contrastive and clustering pretraining on any hfssl backbone, and SimCSE for text.

``ContrastiveLearningMixin`` turns a backbone (``self.model``) into a self-supervised model trained by one
method of ``ssl_methods.METHODS``, chosen by the config attribute ``ssl``, e.g.
``HfsslTextConfig(..., ssl={"method": "simcse"})``. The resolved hyperparameters are written back into
``config.ssl``, so ``save_pretrained`` records every one of them.

Publishable: imports only torch, transformers and files of this folder.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch.nn.utils.parametrize import ParametrizationList
from transformers import initialization as init
from transformers.utils import ModelOutput

from .blocks import pool
from .configuration_hfssl_text import HfsslTextConfig
from .cpu_gemm import as_fast_linear
from .input_checks import output_flag
from .losses import DINOLoss, std_of_l2_normalized
from .modeling_hfssl_text import HfsslTextMaskedLMHead, HfsslTextModel, HfsslTextPreTrainedModel
from .ssl_heads import copy_weights, momentum_update
from .ssl_methods import METHOD_DEFAULTS, SSLMethod, build_method, resolve_method_params

logger = logging.getLogger(__name__)


@dataclass
class ContrastiveOutput(ModelOutput):
    """
    Args:
        loss: scalar self-supervised loss.
        embedding_std: scalar collapse signal, ``std_of_l2_normalized`` of the method's online embeddings of
            the first view (about 1/sqrt(d) when spread out, 0 when collapsed).
        embeddings: (B, hidden) pooled backbone features of the first view (dropout active in training).
    """

    loss: Optional[torch.FloatTensor] = None
    embedding_std: Optional[torch.FloatTensor] = None
    embeddings: Optional[torch.FloatTensor] = None


class ContrastiveLearningMixin:
    """Self-supervised training of ``self.model`` with the method named in ``config.ssl``.

    A subclass (with this mixin first among its bases, so :meth:`tie_weights` and :meth:`_init_weights`
    take effect) must:

    1. build the backbone as ``self.model`` in ``__init__`` and end ``__init__`` with
       ``self.setup_ssl(hidden_size, auto_class_entry)`` instead of ``self.post_init()``;
    2. implement ``pooled_features(backbone, view) -> (B, hidden)`` (dropout active in train mode);
    3. define ``forward`` that turns its inputs into a list of views (global views first) and returns
       ``self.forward_views(views)``.

    The training loop sets ``training_step_counter`` (optimizer steps done) before each step and calls
    :meth:`momentum_update` after each optimizer step.

    Attributes:
        ssl: the method (heads, its EMA heads and its loss).
        target_model: EMA copy of ``self.model`` (no gradients), or None when the method has no momentum encoder.
        last_ssl_logs: the method's logs of the latest forward, for a logging callback.
    """

    # The loss is a batch mean that ignores `num_items_in_batch`: the Trainer must divide it by the
    # gradient-accumulation steps itself (it would not if it saw `**kwargs` in forward and no such flag).
    accepts_loss_kwargs = False

    def setup_ssl(self, embed_dim: int, auto_class_entry: Optional[tuple[str, str]] = None) -> None:
        """Build the method from ``config.ssl``, run ``post_init``, then create the EMA copies.

        ``auto_class_entry``: ("AutoModelForPreTraining", "module.Class") added to ``config.auto_map``.
        """
        name, params = _read_ssl_config(self.config)
        self.config.ssl = {"method": name, **resolve_method_params(name, params)}
        if auto_class_entry is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), auto_class_entry[0]: auto_class_entry[1]}
        self.ssl: SSLMethod = build_method(name, embed_dim, params)
        self.training_step_counter = 0
        self.last_ssl_logs: dict[str, Any] = {}
        self.post_init()
        self.ssl.sync_targets()
        self.target_model = None
        if self.ssl.uses_target_encoder:
            # Shares the config object, so attention settings changed on the model apply to the copy too.
            self.target_model = copy.deepcopy(self.model, memo={id(self.config): self.config})
        self.freeze_targets()

    def pooled_features(self, backbone: torch.nn.Module, view: Any) -> torch.Tensor:
        """(B, hidden) pooled features of one view computed by ``backbone`` (``self.model`` or ``self.target_model``)."""
        raise NotImplementedError

    def encode(self, view: Any, target: bool = False) -> torch.Tensor:
        """(B, hidden) pooled features of one view, by the online backbone or (``target``) its EMA copy.

        Unlike ``get_features``, dropout stays active in train mode: for SimCSE it is the augmentation.
        """
        if target and self.target_model is None:
            raise ValueError(f"Method {self.config.ssl['method']!r} has no target (momentum) encoder.")
        return self.pooled_features(self.target_model if target else self.model, view)

    def refuse_output_flags(self, kwargs: dict[str, Any]) -> None:
        """A ValueError for `output_hidden_states` / `output_attentions` passed to the joint-embedding forward, which
        returns the loss and pooled embeddings only (they were ignored without a word)."""
        asked = [name for name in ("output_hidden_states", "output_attentions") if kwargs.get(name)]
        if asked:
            raise ValueError(
                f"{type(self).__name__} returns the SSL loss and the pooled embeddings only, not {' or '.join(asked)}. "
                f"Load the backbone for them: AutoModel.from_pretrained(<this checkpoint>)({asked[0]}=True, ...), "
                "or call model.model(...) on this one; model.get_features(...) gives the pooled features.")

    def forward_views(self, views: Sequence[Any], return_loss: bool = True) -> ContrastiveOutput:
        """Loss of the method on a list of views of the same B samples (global views first).

        ``return_loss=False`` drops the loss from the output (the method still runs: the collapse signal needs it).
        """
        online = [self.encode(view) for view in views]  # views x (B, hidden)
        target = None
        if self.ssl.uses_target_encoder:
            with torch.no_grad():
                target = [self.encode(view, target=True) for view in views[: self.ssl.n_global_views]]
        out = self.ssl(online, target, step=self.training_step_counter)
        self.last_ssl_logs = out.logs
        std = std_of_l2_normalized(out.embeddings_for_collapse.detach())
        return ContrastiveOutput(loss=out.loss if return_loss else None, embedding_std=std, embeddings=online[0])

    @torch.no_grad()
    def momentum_update(self, step: int, total_steps: int) -> Optional[float]:
        """EMA update of the target backbone and the method's target heads after optimizer step ``step`` of
        ``total_steps``; returns the momentum used, or None for methods without a momentum encoder."""
        m = self.ssl.momentum(step, total_steps)
        if m is not None and self.target_model is not None:
            momentum_update(self.model, self.target_model, m)
        self.ssl.momentum_update(step, total_steps)
        return m

    def target_pairs(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """Every (online module, EMA copy) pair: the backbone and the method's heads."""
        pairs = [(self.model, self.target_model)] if self.target_model is not None else []
        return pairs + self.ssl.target_pairs()

    def tie_weights(self, missing_keys: Optional[set[str]] = None, recompute_mapping: bool = True):
        """After the usual tying, start every EMA copy missing from a loaded checkpoint (e.g. when loading a
        masked-LM checkpoint) as a copy of its online module, as training starts it. ``from_pretrained``
        calls this right after initializing missing weights."""
        super().tie_weights(missing_keys=missing_keys, recompute_mapping=recompute_mapping)
        if missing_keys is None:
            return
        self.freeze_targets()
        names = {id(module): name for name, module in self.named_modules()}
        for online, target in self.target_pairs():
            prefix = names[id(target)] + "."
            copied = {key for key in missing_keys if key.startswith(prefix)}
            if copied:
                copy_weights(online, target)
                missing_keys.difference_update(copied)
                logger.info("Started %s as a copy of %s (not in the checkpoint).", prefix[:-1], names[id(online)])

    def freeze_targets(self) -> None:
        """``requires_grad=False`` on the EMA backbone and on the method's EMA heads and fixed parameters."""
        if self.target_model is not None:
            self.target_model.requires_grad_(False)
        self.ssl.freeze_targets()

    def _init_weights(self, module: torch.nn.Module) -> None:
        super()._init_weights(module)
        # transformers initializes custom code per module owning the parameters directly: for DINOHead's
        # weight-normalized last layer, that is the ParametrizationList holding g (original0) and v (original1).
        if isinstance(module, ParametrizationList) and hasattr(module, "original1"):
            init.ones_(module.original0)
            init.normal_(module.original1, std=self.config.initializer_range)
        elif isinstance(module, DINOLoss):
            init.zeros_(module.center)


def _read_ssl_config(config) -> tuple[str, dict[str, Any]]:
    ssl = getattr(config, "ssl", None)
    fix = (
        'Set it to a dict naming the method and any hyperparameters to override, e.g. config.ssl = '
        f'{{"method": "simcse", "temperature": 0.05}}. Methods: {", ".join(METHOD_DEFAULTS)}.'
    )
    if ssl is None:
        saved = [a for a in getattr(config, "architectures", None) or () if "ContrastiveLearning" not in a]
        if saved:  # e.g. AutoModelForPreTraining on a masked or next-token LM: name the class that loads it
            heads = {"ForMaskedLM": "AutoModelForMaskedLM", "ForCausalLM": "AutoModelForCausalLM",
                     "ForSequenceClassification": "AutoModelForSequenceClassification",
                     "ForImageClassification": "AutoModelForImageClassification"}
            auto = next((v for k, v in heads.items() if saved[0].endswith(k)), "AutoModel")
            raise ValueError(
                f"This checkpoint is a {saved[0]} (config.json architectures), not a joint-embedding model, so it has "
                f"no `ssl` method to load: load it with {auto}.from_pretrained (AutoModel for the backbone). To "
                f"pretrain it with a method instead, set the method on its config and pass that: config = "
                f"AutoConfig.from_pretrained(path); config.ssl = {{'method': 'simcse'}}; "
                f"AutoModelForPreTraining.from_pretrained(path, config=config). Methods: {', '.join(METHOD_DEFAULTS)}.")
        raise ValueError(f"{type(config).__name__} has no `ssl` attribute. {fix}")
    if not isinstance(ssl, dict) or "method" not in ssl:
        raise ValueError(f"config.ssl must be a dict with a 'method' key, got {ssl!r}. {fix}")
    params = {k: v for k, v in ssl.items() if k != "method"}
    return ssl["method"], _with_legacy_defaults(ssl["method"], params)


# Hyperparameters added to a method after hfssl had saved models with it, and the value that rebuilds those
# models. A saved config lists every hyperparameter (setup_ssl writes them all back), so one that has all
# of the others was written before the addition and must not pick up the new default.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "dino": {"use_bn_in_head": False, "norm_last_layer": True},
}


def _with_legacy_defaults(method: str, params: dict[str, Any]) -> dict[str, Any]:
    added = LEGACY_DEFAULTS.get(method, {})
    older = set(METHOD_DEFAULTS.get(method, {})) - set(added)
    if not added or not older <= set(params):
        return params
    return {**{k: v for k, v in added.items() if k not in params}, **params}


class HfsslTextForContrastiveLearning(ContrastiveLearningMixin, HfsslTextPreTrainedModel):
    """Sentence-embedding pretraining of the hfssl text backbone by two dropout views of the same batch:
    SimCSE (Gao et al. 2021) by default, or any method in ``config.ssl`` that needs only two views
    (simclr, moco, byol, simsiam, dino and swav without local crops).

    ``get_features`` (deterministic, no MLP pooler) is what downstream code uses; the saved checkpoint
    also loads as ``AutoModel`` (the bare backbone) or ``AutoModelForSequenceClassification``.
    """

    def __init__(self, config: HfsslTextConfig):
        super().__init__(config)
        self.model = HfsslTextModel(config)
        # Objective mlm+simcse: a masked-LM head on the same backbone, loss = ssl + mlm_weight * mlm.
        self.mlm_weight = float(getattr(config, "mlm_weight", 0.0) or 0.0)
        if self.mlm_weight < 0:
            raise ValueError(f"mlm_weight must be >= 0, got {self.mlm_weight}.")
        self.lm_head = HfsslTextMaskedLMHead(config) if self.mlm_weight > 0 else None
        entry = ("AutoModelForPreTraining", f"{__name__.split('.')[-1]}.{type(self).__name__}")
        self.setup_ssl(config.hidden_size, entry)

    def get_output_embeddings(self) -> Optional[torch.nn.Linear]:
        """The MLM head's vocabulary projection (objective mlm+simcse, not tied to the embeddings); None without one."""
        return self.lm_head.decoder if self.lm_head is not None else None

    def set_output_embeddings(self, value: torch.nn.Linear) -> None:
        if self.lm_head is None:
            raise ValueError("This model has no MLM head (config.mlm_weight is 0), so no output embeddings to set.")
        self.lm_head.decoder = as_fast_linear(value)

    def resize_token_embeddings(self, new_num_tokens: Optional[int] = None, pad_to_multiple_of: Optional[int] = None,
                                mean_resizing: bool = True) -> torch.nn.Embedding:
        """``PreTrainedModel.resize_token_embeddings`` (the MLM head's projection too, when there is one), and the EMA
        copy of the backbone (methods with a momentum encoder) alike: it keeps its own rows, and the added ones start
        as copies of the online model's, as the whole copy did when training started."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        if self.target_model is not None:
            old = self.target_model.get_input_embeddings()
            weight = embeddings.weight.detach().clone()  # (new vocab, hidden)
            kept = min(old.num_embeddings, weight.shape[0])
            weight[:kept] = old.weight.detach()[:kept].to(weight.dtype)
            resized = torch.nn.Embedding.from_pretrained(weight, freeze=True, padding_idx=old.padding_idx)
            self.target_model.set_input_embeddings(resized)
        return embeddings

    def pooled_features(self, backbone: torch.nn.Module, view: dict[str, torch.Tensor]) -> torch.Tensor:
        """view: {"input_ids": (B, T), "attention_mask": (B, T) or None} -> (B, hidden) by ``config.pooling``."""
        hidden = backbone(**view, return_dict=True).last_hidden_state  # (B, T, hidden)
        return pool(hidden, view.get("attention_mask"), self.config.pooling)

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        return_loss: bool = True,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> ContrastiveOutput:
        """input_ids (B, T) -> loss over two dropout views of the batch (identical views in eval mode).

        ``return_loss`` defaults to True, which also tells the Trainer to report an eval loss without labels
        (as for CLIP). With an MLM head (`config.mlm_weight > 0`), `input_ids` are the masked inputs and
        `labels` the MLM targets (-100 where unmasked): the contrastive views see the restored clean text.
        Other extra keys a Trainer passes (num_items_in_batch) are ignored.
        """
        self.refuse_output_flags(kwargs)
        labels = kwargs.get("labels")
        clean_ids = input_ids
        if self.lm_head is not None and labels is not None:
            clean_ids = torch.where(labels != -100, labels, input_ids)  # (B, T): undo the masking
        view = {"input_ids": clean_ids, "attention_mask": attention_mask, "position_ids": position_ids,
                "inputs_embeds": inputs_embeds}
        out = self.forward_views([view] * self.ssl.n_global_views, return_loss=return_loss)
        if self.lm_head is not None and labels is not None and out.loss is not None:
            mlm = self.mlm_loss(input_ids, attention_mask, labels)
            self.last_ssl_logs = {**self.last_ssl_logs, "mlm_loss": float(mlm.detach())}
            out.loss = out.loss + self.mlm_weight * mlm
        return out if output_flag(return_dict, self.config, "return_dict") else out.to_tuple()

    def mlm_loss(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor], labels: torch.Tensor):
        """Sparse masked-LM loss: the head runs on masked positions only. (B, T) inputs -> scalar."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        selected = labels != -100
        logits = self.lm_head(hidden[selected])  # (masked, vocab)
        return torch.nn.functional.cross_entropy(logits.float(), labels[selected]) if selected.any() \
            else logits.sum() * 0.0


HfsslTextForContrastiveLearning.register_for_auto_class("AutoModelForPreTraining")
