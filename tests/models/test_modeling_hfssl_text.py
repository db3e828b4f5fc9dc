import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslTextForSequenceClassification,
    HfsslTextModel,
)
from hfssl.models.linear_cross_entropy import default_chunk_rows
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from .model_tester import ModelTesterMixin, run_without_hfssl

VOCAB = 97


def tiny_config(**overrides) -> HfsslTextConfig:
    fields = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0)
    return HfsslTextConfig(**{**fields, **overrides})


def masked_inputs(config, batch=3, length=12):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, 2::4] = ids[:, 2::4]
    ids = ids.masked_fill(labels != -100, 4)
    return {"input_ids": ids, "labels": labels}


class TestMaskedLM(ModelTesterMixin):
    model_classes = (HfsslTextForMaskedLM,)

    def make_config(self, **overrides):
        return tiny_config(**overrides)

    def make_inputs(self, config):
        return masked_inputs(config)

    def test_sparse_and_dense_loss_are_equal(self):
        model, inputs = self.build(HfsslTextForMaskedLM)
        with torch.no_grad():
            sparse = model(**inputs)
            model.config.sparse_prediction = False
            dense = model(**inputs)
        n_masked = int((inputs["labels"] != -100).sum())
        assert sparse.logits.shape == (n_masked, VOCAB)
        assert dense.logits.shape == (*inputs["input_ids"].shape, VOCAB)
        torch.testing.assert_close(sparse.loss, dense.loss)

    def test_inference_without_labels_gives_dense_logits(self):
        model, inputs = self.build(HfsslTextForMaskedLM)
        logits = model(input_ids=inputs["input_ids"]).logits
        assert logits.shape == (*inputs["input_ids"].shape, VOCAB)

    def test_output_layer_is_tied_to_the_embeddings(self):
        model, _ = self.build(HfsslTextForMaskedLM)
        assert model.lm_head.decoder.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    def test_padding_does_not_change_real_tokens(self):
        model, inputs = self.build(HfsslTextForMaskedLM)
        ids = inputs["input_ids"][:1]
        padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
        mask = torch.cat([torch.ones_like(ids), torch.zeros(1, 5, dtype=torch.long)], dim=1)
        with torch.no_grad():
            plain = model(input_ids=ids).logits
            with_pad = model(input_ids=padded, attention_mask=mask).logits[:, : ids.shape[1]]
        torch.testing.assert_close(plain, with_pad, atol=1e-5, rtol=1e-4)


class TestCausalLM(ModelTesterMixin):
    model_classes = (HfsslTextForCausalLM,)

    def make_config(self, **overrides):
        return tiny_config(is_causal=True, **overrides)

    def make_inputs(self, config):
        ids = torch.randint(0, config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(2))
        return {"input_ids": ids, "labels": ids}

    def test_future_tokens_do_not_change_the_past(self):
        model, inputs = self.build(HfsslTextForCausalLM)
        ids = inputs["input_ids"]
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % VOCAB
        with torch.no_grad():
            a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
        torch.testing.assert_close(a[:, :-1], b[:, :-1])
        assert not torch.allclose(a[:, -1], b[:, -1])

    def test_loss_is_next_token_cross_entropy(self):
        model, inputs = self.build(HfsslTextForCausalLM)
        with torch.no_grad():
            logits = model(input_ids=inputs["input_ids"]).logits
        expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), inputs["input_ids"][:, 1:].flatten())
        trained = model(**inputs)  # with gradients: the fused head and loss
        assert trained.logits is None
        torch.testing.assert_close(trained.loss, expected)
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs).loss, expected)

    @pytest.mark.parametrize("position_embedding_type", ["rope", "learned"])
    def test_cached_generation_equals_uncached(self, position_embedding_type):
        model, inputs = self.build(HfsslTextForCausalLM, position_embedding_type=position_embedding_type)
        prompt = inputs["input_ids"][:2, :5]
        kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
        cached = model.generate(prompt, use_cache=True, **kwargs)
        uncached = model.generate(prompt, use_cache=False, **kwargs)
        assert cached.shape == (2, 15)
        torch.testing.assert_close(cached, uncached)

    def test_cached_logits_equal_full_forward(self):
        model, inputs = self.build(HfsslTextForCausalLM)
        ids = inputs["input_ids"]
        with torch.no_grad():
            full = model(input_ids=ids).logits
            first = model(input_ids=ids[:, :7], use_cache=True)
            cache = getattr(first, "cache", None) or first.past_key_values
            rest = model(input_ids=ids[:, 7:], cache=cache, use_cache=True).logits
        torch.testing.assert_close(torch.cat([first.logits, rest], dim=1), full, atol=1e-5, rtol=1e-4)

    def test_left_padded_batch_generates_like_single_prompts(self):
        model, inputs = self.build(HfsslTextForCausalLM)
        long, short = inputs["input_ids"][0, :6], inputs["input_ids"][1, :4]
        batch = torch.stack([long, torch.cat([torch.zeros(2, dtype=torch.long), short])])
        mask = torch.tensor([[1] * 6, [0, 0] + [1] * 4])
        kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
        together = model.generate(batch, attention_mask=mask, **kwargs)
        alone = model.generate(short[None], **kwargs)
        torch.testing.assert_close(together[1, 6:], alone[0, 4:])

    def test_sampling_is_seeded(self):
        model, inputs = self.build(HfsslTextForCausalLM)
        prompt = inputs["input_ids"][:1, :4]
        kwargs = dict(max_new_tokens=8, do_sample=True, top_p=0.9, temperature=1.5, pad_token_id=0)
        torch.manual_seed(3)
        a = model.generate(prompt, **kwargs)
        torch.manual_seed(3)
        b = model.generate(prompt, **kwargs)
        torch.testing.assert_close(a, b)


class TestVariants(ModelTesterMixin):
    """Config switches: learned positions, SwiGLU, no biases, untied embeddings."""

    model_classes = (HfsslTextForMaskedLM, HfsslTextForCausalLM)

    def make_config(self, **overrides):
        return tiny_config(position_embedding_type="learned", hidden_act="swiglu", use_bias=False,
                           tie_word_embeddings=False, **overrides)

    def make_inputs(self, config):
        return masked_inputs(config)


class TestSequenceClassification(ModelTesterMixin):
    model_classes = (HfsslTextForSequenceClassification,)

    def make_config(self, **overrides):
        return tiny_config(**{"num_labels": 3, "classifier_dropout": 0.0, **overrides})

    def make_inputs(self, config):
        ids = torch.randint(0, config.vocab_size, (4, 10), generator=torch.Generator().manual_seed(3))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 2, 1])}

    @pytest.mark.parametrize("pretrain_cls,is_causal", [(HfsslTextForMaskedLM, False), (HfsslTextForCausalLM, True)])
    def test_loads_a_pretrained_backbone(self, tmp_path, pretrain_cls, is_causal):
        torch.manual_seed(0)
        pretrained = pretrain_cls(tiny_config(is_causal=is_causal))
        pretrained.save_pretrained(tmp_path)
        classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
        assert isinstance(classifier, HfsslTextForSequenceClassification)
        for name, tensor in pretrained.model.state_dict().items():
            torch.testing.assert_close(classifier.model.state_dict()[name], tensor)
        assert classifier.config.pooling == ("last" if is_causal else "mean")

    def test_regression_with_one_label(self):
        model, inputs = self.build(HfsslTextForSequenceClassification, num_labels=1)
        loss = model(input_ids=inputs["input_ids"], labels=torch.tensor([0.5, 1.0, -1.0, 2.0])).loss
        assert torch.isfinite(loss)


def test_features_are_deterministic_and_leave_training_mode_alone():
    torch.manual_seed(0)
    model = HfsslTextForMaskedLM(tiny_config(hidden_dropout_prob=0.3)).train()
    ids = torch.randint(0, VOCAB, (2, 9))
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    a, b = model.get_features(ids, mask), model.get_features(ids, mask)
    assert a.shape == (2, 32)
    torch.testing.assert_close(a, b)
    assert model.training and model.model.training
    # Padding positions do not enter the pooled vector.
    short = model.get_features(ids[1:, :6], mask[1:, :6])
    torch.testing.assert_close(short, a[1:], atol=1e-5, rtol=1e-4)


def test_bare_model_loads_from_a_head_checkpoint(tmp_path):
    HfsslTextForMaskedLM(tiny_config()).save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), HfsslTextModel)
    assert isinstance(AutoModelForMaskedLM.from_pretrained(tmp_path), HfsslTextForMaskedLM)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"hidden_size": 30}, "multiple of num_attention_heads"),
        ({"hidden_act": "tanh"}, "gelu, swiglu"),
        ({"position_embedding_type": "alibi"}, "rope, learned"),
        ({"pooling": "max"}, "mean, cls, last"),
        ({"hidden_dropout_prob": 1.5}, "[0, 1)"),
        ({"num_hidden_layers": 0}, "positive integer"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        tiny_config(**overrides)


def test_unknown_size_lists_the_valid_ones():
    with pytest.raises(ValueError, match="tiny, small, base"):
        HfsslTextConfig.from_size("huge")


def test_learned_positions_reject_too_long_inputs():
    model = HfsslTextForMaskedLM(tiny_config(position_embedding_type="learned", max_position_embeddings=8))
    with pytest.raises(ValueError, match="truncate"):
        model(input_ids=torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("cls,auto", [(HfsslTextForMaskedLM, "AutoModelForMaskedLM"), (HfsslTextForCausalLM, "AutoModelForCausalLM")])
def test_remote_code_loads_where_hfssl_is_not_installed(tmp_path, cls, auto):
    torch.manual_seed(0)
    model = cls(tiny_config(is_causal=cls is HfsslTextForCausalLM)).eval()
    model.save_pretrained(tmp_path / "model")
    ids = torch.randint(0, VOCAB, (2, 7))
    torch.save({"ids": ids, "logits": model(input_ids=ids).logits.detach()}, tmp_path / "expected.pt")
    result = run_without_hfssl(
        f"""
        import torch
        from transformers import {auto}, AutoModelForSequenceClassification
        model = {auto}.from_pretrained("model", trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        expected = torch.load("expected.pt")
        torch.testing.assert_close(model(input_ids=expected["ids"]).logits, expected["logits"])
        clf = AutoModelForSequenceClassification.from_pretrained("model", trust_remote_code=True, num_labels=2)
        assert clf(input_ids=expected["ids"]).logits.shape == (2, 2)
        print("REMOTE-OK")
        """,
        cwd=tmp_path,
    )
    assert "REMOTE-OK" in result.stdout, result.stderr[-3000:]


def test_masked_positions_give_the_same_loss_as_the_boolean_sparse_head():
    from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM

    torch.manual_seed(0)
    config = HfsslTextConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, hidden_dropout_prob=0.0)
    model = HfsslTextForMaskedLM(config).eval()
    ids = torch.randint(5, 50, (3, 12))
    positions = torch.tensor([[1, 4, 7], [0, 2, -1], [11, 5, 3]])  # row 1 has one empty slot
    labels = torch.full_like(ids, -100)
    for row, cols in enumerate(positions.tolist()):
        for col in cols:
            if col >= 0:
                labels[row, col] = ids[row, col]
    with torch.no_grad():
        static = model(input_ids=ids, labels=labels, masked_positions=positions)
        dynamic = model(input_ids=ids, labels=labels)
    assert static.logits.shape == (9, 50) and dynamic.logits.shape == (8, 50)
    torch.testing.assert_close(static.loss, dynamic.loss)
    fused = model(input_ids=ids, labels=labels, masked_positions=positions)  # with gradients: the fused loss
    torch.testing.assert_close(fused.loss, dynamic.loss)


@pytest.mark.parametrize("given_positions", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("chunk", [None, 0])
def test_sparse_last_layer_gives_the_full_layers_loss_and_gradients_on_fewer_rows(given_positions, padded, chunk):
    """The last block computes the masked positions only: the loss, logits and every gradient equal the full
    block's, while its MLP sees b x k rows instead of b x t (positions from the collator, or from the labels)."""
    torch.manual_seed(0)
    config = tiny_config(loss_chunk_size=chunk)
    inputs = masked_inputs(config, batch=3, length=12)  # 3 masked positions per row
    inputs["labels"][1, 2] = -100  # rows with different counts: the labels' positions are padded with -1
    if padded:
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["attention_mask"][2, 8:] = 0
        inputs["labels"][2, 10] = -100
    if given_positions:
        inputs["masked_positions"] = torch.tensor([[2, 6, 10], [6, 10, -1], [2, 6, 10 if not padded else -1]])
    sparse = HfsslTextForMaskedLM(config).train()
    full = HfsslTextForMaskedLM(tiny_config(loss_chunk_size=chunk, sparse_last_layer=False)).train()
    full.load_state_dict(sparse.state_dict())
    rows = []
    for model in (sparse, full):
        model.model.layers[-1].mlp.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[:2]))
    outputs = [model(**inputs) for model in (sparse, full)]
    assert rows == [(3, 3), (3, 12)]
    torch.testing.assert_close(outputs[0].loss, outputs[1].loss)
    if chunk == 0:
        torch.testing.assert_close(outputs[0].logits, outputs[1].logits)
    for output in outputs:
        output.loss.backward()
    for (name, a), b in zip(sparse.named_parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_sparse_last_layer_steps_aside_for_hidden_states_and_a_cache():
    model = HfsslTextForMaskedLM(tiny_config()).train()
    inputs = masked_inputs(model.config)
    out = model(**inputs, output_hidden_states=True)  # every layer's states in full, the same loss
    assert [h.shape[1] for h in out.hidden_states] == [12, 12, 12]
    torch.testing.assert_close(out.loss, model(**inputs).loss)
    with pytest.raises(ValueError, match="output_positions"):
        model.model(input_ids=inputs["input_ids"], output_positions=torch.zeros(3, 2, dtype=torch.long),
                    use_cache=True)


@pytest.mark.parametrize("causal", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(causal):
    from hfssl.models import HfsslTextConfig, HfsslTextForCausalLM, HfsslTextForMaskedLM

    config = HfsslTextConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, hidden_dropout_prob=0.0, attention_dropout_prob=0.0,
                             is_causal=causal)
    model_class = HfsslTextForCausalLM if causal else HfsslTextForMaskedLM
    ids = torch.randint(5, 50, (2, 10))
    labels = ids.clone() if causal else ids.masked_fill(torch.rand(ids.shape) > 0.3, -100).index_fill(1, torch.tensor([0]), 7)

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = model_class(config).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.model.layers)
        calls = []
        model.model.layers[0].attn.register_forward_hook(lambda *_: calls.append(1))
        model(input_ids=ids, labels=labels).loss.backward()
        assert len(calls) == (2 if checkpointing else 1)  # recomputed in the backward pass
        return [p.grad for p in model.parameters() if p.grad is not None]

    for plain, recomputed in zip(grads(False), grads(True), strict=True):
        torch.testing.assert_close(plain, recomputed)


@pytest.mark.parametrize("cls", [HfsslTextForMaskedLM, HfsslTextForCausalLM])
@pytest.mark.parametrize("padded", [False, True])
def test_training_forward_traces_as_one_graph_for_torch_compile(cls, padded):
    # A graph break splits what torch.compile can fuse: a data-dependent branch on the mask or a
    # dataclasses lookup inside forward each made one. The MLM runs its static-shape head (masked_positions,
    # as --mlm-static-masking batches carry), the path meant for compilation.
    torch._dynamo.reset()
    model = cls(tiny_config(is_causal=cls is HfsslTextForCausalLM)).train()
    inputs = masked_inputs(model.config)
    if cls is HfsslTextForMaskedLM:
        inputs["masked_positions"] = (inputs["labels"] != -100).nonzero()[:, 1].view(len(inputs["labels"]), -1)
    if padded:
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["attention_mask"][0, -3:] = 0
    explained = torch._dynamo.explain(lambda **kw: model(**kw).loss)(**inputs)
    assert explained.graph_break_count == 0, [r.reason.splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_count == 1


def test_compiled_model_gives_the_eager_loss_and_gradients():
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = HfsslTextForMaskedLM(tiny_config()).train()
    compiled = HfsslTextForMaskedLM(tiny_config()).train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()
    inputs = masked_inputs(eager.config)
    inputs["masked_positions"] = (inputs["labels"] != -100).nonzero()[:, 1].view(len(inputs["labels"]), -1)
    losses = [model(**inputs).loss for model in (eager, compiled)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    for loss in losses:
        loss.backward()
    grads = [model.model.layers[0].attn.qkv.weight.grad for model in (eager, compiled)]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


class _LargestLogits(TorchDispatchMode):
    """Records the largest tensor any op allocates whose last dimension is the vocabulary: the logits, the
    softmax and their gradients, whole or one chunk at a time (views, such as the transposed weight, allocate
    nothing and are skipped)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.largest = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view:
            return out
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and tensor.dim() and tensor.shape[-1] == self.vocab:
                self.largest = max(self.largest, tensor.numel())
        return out


class _LinearSubclass(torch.nn.Linear):
    """Stands in for a projection the fused loss must not take apart (as a PEFT adapter would wrap it)."""


@pytest.mark.parametrize("head", ["clm", "mlm-sparse", "mlm-dense", "mlm-static"])
@pytest.mark.parametrize("chunk", [None, 8, "wrapped", "partitioned"])
def test_fused_loss_gives_the_plain_loss_and_gradients_without_building_the_logits(head, chunk):
    causal = head == "clm"
    vocab, batch, length = 4000, 4, 16
    inputs = masked_inputs(tiny_config(vocab_size=vocab), batch, length)
    if causal:
        inputs = {"input_ids": inputs["input_ids"], "labels": inputs["input_ids"].clone()}
    if head == "mlm-static":
        inputs["masked_positions"] = (inputs["labels"] != -100).nonzero()[:, 1].view(batch, -1)

    def run(chunk_size):
        torch.manual_seed(0)
        config = tiny_config(vocab_size=vocab, is_causal=causal, sparse_prediction=head != "mlm-dense",
                             loss_chunk_size=8 if chunk_size in ("wrapped", "partitioned") else chunk_size)
        model = (HfsslTextForCausalLM if causal else HfsslTextForMaskedLM)(config).train()
        if chunk_size == "wrapped":
            old = model.get_output_embeddings()
            new = _LinearSubclass(old.in_features, old.out_features, bias=old.bias is not None)
            new.weight, new.bias = old.weight, old.bias  # the same parameters, still tied to the embeddings
            model.set_output_embeddings(new)
        if chunk_size == "partitioned":  # as DeepSpeed ZeRO-3 marks the weights it shards
            model.get_output_embeddings().weight.ds_id = 0
        calls = []  # the projection module's own calls: none when the fused loss reads its weight directly
        model.get_output_embeddings().register_forward_hook(lambda *_: calls.append(1))
        with _LargestLogits(vocab) as probe:
            out = model(**inputs)
            out.loss.backward()
        return out, probe.largest, [p.grad for p in model.parameters() if p.grad is not None], len(calls)

    (plain, plain_largest, plain_grads, _), (fused, fused_largest, fused_grads, calls) = run(0), run(chunk)
    assert (calls == 0) == (chunk in (None, 8))  # wrapped or partitioned: called chunk by chunk instead
    torch.testing.assert_close(fused.loss, plain.loss)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    rows = batch * length if head in ("clm", "mlm-dense") else int((inputs["labels"] != -100).sum())
    assert plain.logits is not None and plain_largest >= rows * vocab  # the whole logits were built
    per_chunk = default_chunk_rows(torch.device("cpu")) if chunk is None else 8
    assert fused.logits is None and fused_largest <= min(rows, per_chunk) * vocab  # one chunk's at a time


def test_chunked_loss_is_off_without_gradients_and_without_labels():
    model = HfsslTextForCausalLM(tiny_config(is_causal=True, loss_chunk_size=4)).eval()
    ids = torch.randint(5, VOCAB, (2, 10))
    with torch.no_grad():
        scored = model(input_ids=ids, labels=ids)
    assert scored.logits.shape == (2, 10, VOCAB) and scored.loss is not None  # evaluation keeps its logits
    assert model(input_ids=ids).logits.shape == (2, 10, VOCAB)


@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_config_rejects_a_bad_loss_chunk_size(value):
    with pytest.raises(ValueError, match="loss_chunk_size must be None"):
        tiny_config(loss_chunk_size=value)
