"""hfssl text transformer: backbone, masked LM (sparse prediction), causal LM and sequence classification.

Publishable: imports only torch, transformers and files of this folder, so `save_pretrained` copies
everything that `from_pretrained(..., trust_remote_code=True)` needs.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

from .blocks import (
    Block,
    RotaryEmbedding,
    build_attention_mask,
    classifier_loss,
    keep_saved_auto_map,
    pool,
    prepared_attention_mask,
)
from .configuration_hfssl_text import HfsslTextConfig
from .cpu_gemm import Linear, as_fast_linear
from .input_checks import check_token_inputs, check_token_labels, describe, output_flag
from .linear_cross_entropy import default_chunk_rows, linear_cross_entropy


logger = logging.getLogger(__name__)


def _cache_field(output_cls) -> str:
    # transformers renamed `past_key_values` to `cache` in 5.2x; accept and emit whichever the installed one uses.
    names = {f.name for f in dataclasses.fields(output_cls)}
    return "cache" if "cache" in names else "past_key_values"


# Looked up once at import: dataclasses.fields() inside forward is a graph break under torch.compile.
_BASE_CACHE_FIELD = _cache_field(BaseModelOutputWithPast)
_CAUSAL_LM_CACHE_FIELD = _cache_field(CausalLMOutputWithPast)


def _input_shape(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> tuple[int, int]:
    """(batch, sequence) of the token inputs, whichever was given (the backbone validates them)."""
    if torch.is_tensor(input_ids) and input_ids.dim() == 2:
        return tuple(input_ids.shape)
    if torch.is_tensor(inputs_embeds) and inputs_embeds.dim() == 3:
        return tuple(inputs_embeds.shape[:2])
    raise ValueError(f"input_ids must be an integer tensor of shape (batch, sequence), got {describe(input_ids)}.")


class HfsslTextPreTrainedModel(PreTrainedModel):
    config_class = HfsslTextConfig
    config: HfsslTextConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Block"]
    _supports_sdpa = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with a config.json whose auto_map names only code the folder holds
        (see `keep_saved_auto_map`)."""
        keep_saved_auto_map(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    def get_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic pooled features: input_ids (b, t) -> (b, hidden). No masking, no dropout.

        Gradients still flow; wrap in `torch.no_grad()` for inference.
        """
        backbone = self.base_model
        was_training = backbone.training
        backbone.eval()
        try:
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        finally:
            backbone.train(was_training)
        return pool(hidden, attention_mask, self.config.pooling)


class HfsslTextModel(HfsslTextPreTrainedModel):
    """The bare transformer: token (and optionally learned position) embeddings, blocks, a final norm."""

    def __init__(self, config: HfsslTextConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_positions = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_embedding_type == "learned"
            else None
        )
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([Block(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache=None,
        past_key_values=None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_positions: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """input_ids (b, t) -> last_hidden_state (b, t, hidden).

        output_positions (b, k), optional: return the last hidden state at these positions only, (b, k, hidden).
        The last block then computes just those rows (see `Block.forward`): what a masked LM's loss reads, for
        less work. Not with a KV cache, `output_hidden_states` or `output_attentions`.
        output_attentions: also return each layer's attention weights (b, heads, t, past + t).
        """
        output_hidden_states = output_flag(output_hidden_states, self.config, "output_hidden_states")
        output_attentions = output_flag(output_attentions, self.config, "output_attentions")
        if output_positions is not None and (use_cache or cache is not None or past_key_values is not None
                                             or output_hidden_states or output_attentions):
            raise ValueError("output_positions computes the last layer at some positions only; it cannot be "
                             "combined with a KV cache, output_hidden_states or output_attentions. Pass "
                             "output_positions=None.")
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = DynamicCache()
        past = cache.get_seq_length() if cache is not None else 0
        check_token_inputs(input_ids, inputs_embeds, attention_mask, position_ids, past, self.config.hidden_size)
        x = self._embed(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, hidden)
        if position_ids is None:
            position_ids = torch.arange(past, past + x.shape[1], device=x.device)[None]  # (1, t)
        x = self._add_positions(x, position_ids)
        if attention_mask is not None and attention_mask.dim() == 4:  # as generate() builds for a static cache
            mask, is_causal = prepared_attention_mask(attention_mask), False
        else:
            mask, is_causal = build_attention_mask(attention_mask, x.shape[1], past, self.config.is_causal)
        rope = self.rotary(position_ids, x.dtype) if self.embed_positions is None else None
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            keep = output_positions if i == last else None
            if attentions is not None:
                x, probs = layer(x, mask, is_causal, rope, cache=cache, keep=keep, output_attentions=True)
                attentions.append(probs)
            else:
                x = layer(x, mask, is_causal, rope, cache=cache, keep=keep)
            if hidden_states is not None:
                hidden_states.append(x)
        if output_positions is not None and last < 0:  # no layers: the embeddings at those positions
            x = x.gather(1, output_positions[..., None].expand(-1, -1, x.shape[-1]))
        x = self.norm(x)
        extra = {_BASE_CACHE_FIELD: cache}
        out = BaseModelOutputWithPast(
            last_hidden_state=x, hidden_states=tuple(hidden_states) if hidden_states else None,
            attentions=tuple(attentions) if attentions else None, **extra,
        )
        return out if output_flag(return_dict, self.config, "return_dict") else out.to_tuple()

    def _embed(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """input_ids (b, t) -> token embeddings (b, t, hidden), with a clear error for ids beyond the vocabulary."""
        try:
            return self.embed_tokens(input_ids)
        except IndexError as error:  # raised on CPU; accelerators report out-of-range ids asynchronously
            size = self.config.vocab_size  # kept current by resize_token_embeddings
            raise ValueError(
                f"input_ids hold ids from {int(input_ids.min())} to {int(input_ids.max())}, but the model's "
                f"vocabulary has {size} tokens (ids 0 to {size - 1}): the tokenizer does not match the model. Use "
                f"the tokenizer saved with the model, or call model.resize_token_embeddings(len(tokenizer))."
            ) from error

    def _add_positions(self, x: torch.Tensor, position_ids: torch.LongTensor) -> torch.Tensor:
        if self.embed_positions is not None:
            if int(position_ids.max()) >= self.config.max_position_embeddings:
                limit = self.config.max_position_embeddings
                raise ValueError(
                    f"Sequence reaches position {int(position_ids.max())} but the model has {limit} learned "
                    f"positions (max_position_embeddings); truncate the input (tokenizer(..., truncation=True, "
                    f"max_length={limit})), and when generating keep prompt + max_new_tokens <= {limit}."
                )
            x = x + self.embed_positions(position_ids)
        return self.dropout(x)


class HfsslTextMaskedLMHead(nn.Module):
    """dense -> GELU -> norm -> vocabulary projection (weights tied to the token embeddings)."""

    def __init__(self, config: HfsslTextConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.decoder = Linear(config.hidden_size, config.vocab_size, bias=True)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., hidden): everything before the vocabulary projection."""
        return self.norm(F.gelu(self.dense(hidden)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., vocab)."""
        return self.decoder(self.transform(hidden))


def _summed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")


def _token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Mean cross-entropy over targets != -100; with `num_items_in_batch` (gradient accumulation), sum / that."""
    return _per_item(_summed_cross_entropy(logits, targets), targets, num_items_in_batch)


def _per_item(loss: torch.Tensor, targets: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    count = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum().clamp(min=1)
    if torch.is_tensor(count):
        count = count.to(loss.device)
    return loss / count


def _head_parts(head: nn.Module) -> tuple[nn.Module | None, nn.Linear | None]:
    """(what runs before the vocabulary projection or None, the projection) when that projection is a plain
    `nn.Linear` or hfssl's `cpu_gemm.Linear` whose weight the fused loss can read directly; (None, None)
    otherwise: a PEFT adapter wraps it, or DeepSpeed ZeRO-3 partitions its weight (gathered only inside the
    module's own call)."""
    transform, linear = (head.transform, head.decoder) if isinstance(head, HfsslTextMaskedLMHead) else (None, head)
    if type(linear) not in (nn.Linear, Linear) or hasattr(linear.weight, "ds_id"):
        return None, None
    return transform, linear


def head_cross_entropy(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk_size: int | None = None, num_items_in_batch=None
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """hidden (rows, hidden), targets (rows,) -> (logits (rows, vocab) or None, mean cross-entropy).

    `chunk_size` 0 runs the head on every row and returns the logits. Otherwise, while autograd records
    (training), the vocabulary projection and the loss run fused, `chunk_size` rows at a time (None: a
    per-device default), with their gradients computed on the way (`linear_cross_entropy`): the full logits
    are never built and come back as None. Same loss and gradients. A projection the fused loss cannot read
    directly (see `_head_parts`) takes the chunks under activation checkpointing instead.
    """
    wants_grad = hidden.requires_grad or any(p.requires_grad for p in head.parameters())
    if chunk_size == 0 or not torch.is_grad_enabled() or not wants_grad:
        logits = head(hidden)
        return logits, _token_cross_entropy(logits, targets, num_items_in_batch)
    rows = chunk_size or default_chunk_rows(hidden.device)
    count = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum().clamp(min=1)
    transform, linear = _head_parts(head)
    if linear is not None:
        features = transform(hidden) if transform is not None else hidden
        return None, linear_cross_entropy(features, linear.weight, linear.bias, targets, count, rows)

    def chunk_loss(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _summed_cross_entropy(head(h), t)

    total = sum(
        checkpoint(chunk_loss, h, t, use_reentrant=False) for h, t in zip(hidden.split(rows), targets.split(rows))
    )
    return None, _per_item(total, targets, num_items_in_batch)


def _label_positions(labels: torch.Tensor) -> torch.LongTensor:
    """labels (b, t) -> (b, k): each row's positions holding a target (label != -100) in ascending order, -1 after
    them; k is the largest count of a row (at least 1)."""
    selected = labels != -100
    counts = selected.sum(dim=1, keepdim=True)  # (b, 1)
    k = max(1, int(counts.max())) if labels.numel() else 1
    order = torch.argsort((~selected).to(torch.uint8), dim=1, stable=True)[:, :k]  # targets first, in order
    return order.masked_fill(torch.arange(order.shape[1], device=labels.device) >= counts, -1)


class HfsslTextForMaskedLM(HfsslTextPreTrainedModel):
    """Masked language model. With labels and `config.sparse_prediction`, the head runs on masked positions only
    and `logits` has shape (masked tokens, vocab); otherwise logits are (b, t, vocab). Training forward passes with
    labels return no logits unless `config.loss_chunk_size` is 0 (see `head_cross_entropy`)."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.embed_tokens.weight"}

    def __init__(self, config: HfsslTextConfig):
        super().__init__(config)
        self.model = HfsslTextModel(config)
        self.lm_head = HfsslTextMaskedLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = as_fast_linear(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        masked_positions: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """labels (b, t): target ids at masked positions, -100 elsewhere.

        masked_positions (b, k), optional with labels: the masked positions of each row (-1 for none), as a
        static-shape collator gives them; the head then runs on exactly b * k positions (logits (b * k, vocab),
        no data-dependent shapes).
        """
        output_hidden_states = output_flag(output_hidden_states, self.config, "output_hidden_states")
        output_attentions = output_flag(output_attentions, self.config, "output_attentions")
        if labels is not None:
            check_token_labels(labels, *_input_shape(input_ids, inputs_embeds), "token ids at masked positions, -100 "
                               "elsewhere (DataCollatorForLanguageModeling makes them)")
        if masked_positions is not None and (labels is None or masked_positions.dim() != 2
                                             or masked_positions.shape[0] != labels.shape[0]):
            raise ValueError(f"masked_positions must be (batch, k) position indices (-1 for none) and come with "
                             f"labels; got {describe(masked_positions)} with labels {describe(labels)}.")
        # With labels, the sparse head reads the masked positions only, and so may the last layer: it then
        # computes those rows alone (`config.sparse_last_layer`: the same loss and gradients for less work).
        given = masked_positions is not None
        sparse_last = (labels is not None and self.config.sparse_last_layer and not output_hidden_states
                       and not output_attentions)
        positions = masked_positions
        if positions is None and sparse_last and self.config.sparse_prediction:
            positions = _label_positions(labels)  # (b, k), -1 = no position
        index = positions.clamp(min=0) if positions is not None else None  # (b, k)
        in_model = sparse_last and index is not None
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, output_positions=index if in_model else None, return_dict=True,
        )
        hidden = out.last_hidden_state  # (b, t, hidden), or (b, k, hidden) at the kept positions
        loss, chunk = None, self.config.loss_chunk_size
        if labels is not None and index is not None:
            picked = hidden if in_model else hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
            rows = picked.flatten(0, 1)  # (b * k, hidden)
            targets = labels.gather(1, index).masked_fill(positions < 0, -100).flatten()  # (b * k,)
            if not given:  # positions found from the labels: only the real ones, in row-major order
                real = positions.flatten() >= 0
                rows, targets = rows[real], targets[real]
            logits, loss = head_cross_entropy(  # logits (b * k or masked, vocab)
                self.lm_head, rows, targets, chunk, kwargs.get("num_items_in_batch"))
        elif labels is not None and self.config.sparse_prediction:
            selected = labels != -100  # (b, t)
            logits, loss = head_cross_entropy(  # logits (masked, vocab)
                self.lm_head, hidden[selected], labels[selected], chunk, kwargs.get("num_items_in_batch"))
        elif labels is not None:
            logits, loss = head_cross_entropy(
                self.lm_head, hidden.flatten(0, 1), labels.flatten(), chunk, kwargs.get("num_items_in_batch"))
            logits = None if logits is None else logits.view(*hidden.shape[:2], -1)  # (b, t, vocab)
        else:
            logits = self.lm_head(hidden)  # (b, t, vocab)
        result = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return result if output_flag(return_dict, self.config, "return_dict") else result.to_tuple()


class HfsslTextForCausalLM(HfsslTextPreTrainedModel, GenerationMixin):
    """Next-token language model with a KV cache; `generate()` works (greedy, sampling, beams). Training
    forward passes with labels return no logits unless `config.loss_chunk_size` is 0 (see `head_cross_entropy`)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: HfsslTextConfig):
        super().__init__(config)
        if not config.is_causal:
            # A masked-LM or SimCSE checkpoint (bidirectional) loaded as a next-token model: with its attention
            # each position would read the token it predicts (training leaks the targets, generation is noise).
            logger.warning("HfsslTextForCausalLM predicts the next token, so it attends causally: config.is_causal "
                           "was False (a bidirectional checkpoint, e.g. a masked LM) and is set to True.")
            if config.pooling == "mean":  # the bidirectional default follows the attention, as hfssl's clm runs do
                config.pooling = "last"
            config.is_causal = True
        self.model = HfsslTextModel(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = as_fast_linear(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache=None,
        past_key_values=None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """labels (b, t): usually input_ids; shifted inside, so position i predicts token i + 1."""
        if labels is not None:
            check_token_labels(labels, *_input_shape(input_ids, inputs_embeds), "the token ids (usually input_ids; "
                               "shifted inside) with -100 where no loss is wanted")
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            inputs_embeds=inputs_embeds, cache=cache, past_key_values=past_key_values, use_cache=use_cache,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )
        hidden = out.last_hidden_state  # (b, t, hidden)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        loss = None
        if labels is not None:
            targets = F.pad(labels, (0, 1), value=-100)[:, 1:]  # (b, t): the next token, -100 at the end
            logits, loss = head_cross_entropy(self.lm_head, hidden.flatten(0, 1), targets.flatten(),
                                              self.config.loss_chunk_size, kwargs.get("num_items_in_batch"))
            logits = None if logits is None else logits.view(*hidden.shape[:2], -1)  # (b, t', vocab)
        else:
            logits = self.lm_head(hidden)  # (b, t', vocab)
        field = _CAUSAL_LM_CACHE_FIELD
        result = CausalLMOutputWithPast(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions,
            **{field: getattr(out, field)},
        )
        return result if output_flag(return_dict, self.config, "return_dict") else result.to_tuple()


class HfsslTextForSequenceClassification(HfsslTextPreTrainedModel):
    """Pooled features (config.pooling) -> dropout -> linear. Loads MLM or CLM checkpoints (shared `model.` prefix)."""

    # The loss is a batch mean that ignores `num_items_in_batch`: the Trainer must divide it by the
    # gradient-accumulation steps itself, which it skips for a forward taking `**kwargs` unless told so.
    accepts_loss_kwargs = False

    def __init__(self, config: HfsslTextConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = HfsslTextModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """labels: (b,) class ids, (b, num_labels) 0/1 floats for multi-label, or (b,) floats for num_labels == 1
        regression (see `classification_loss`, `config.problem_type`) -> logits (b, num_labels)."""
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )
        pooled = pool(out.last_hidden_state, attention_mask, self.config.pooling)  # (b, hidden)
        logits = self.classifier(self.dropout(pooled))  # (b, num_labels)
        loss = classifier_loss(self.config, logits, labels) if labels is not None else None
        result = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return result if output_flag(return_dict, self.config, "return_dict") else result.to_tuple()


HfsslTextConfig.register_for_auto_class()
HfsslTextModel.register_for_auto_class("AutoModel")
HfsslTextForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
HfsslTextForCausalLM.register_for_auto_class("AutoModelForCausalLM")
HfsslTextForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
