import ast
import inspect
import json
import re

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

import hfssl  # noqa: F401  (registers the Auto classes)
from hfssl.models import HfsslTextConfig, HfsslTextForMaskedLM, HfsslTextModel
from hfssl.models.losses import std_of_l2_normalized
from hfssl.models.modeling_hfssl_contrastive import ContrastiveOutput, HfsslTextForContrastiveLearning
from hfssl.models.ssl_methods import METHOD_DEFAULTS

from .model_tester import ModelTesterMixin, run_without_hfssl

VOCAB = 97
SMALL_HEADS = {
    "simcse": {},
    "byol": {"projection_hidden_dim": 64, "projection_dim": 16, "prediction_hidden_dim": 64},
    "dino": {"out_dim": 64, "projection_hidden_dim": 64, "bottleneck_dim": 16, "freeze_last_layer_steps": 0},
}


@pytest.fixture(autouse=True, scope="module")
def register_auto_class():
    AutoModelForPreTraining.register(HfsslTextConfig, HfsslTextForContrastiveLearning, exist_ok=True)


def tiny_config(method: str = "simcse", **overrides) -> HfsslTextConfig:
    fields = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64, hidden_dropout_prob=0.1, ssl={"method": method, **SMALL_HEADS[method]})
    return HfsslTextConfig(**{**fields, **overrides})


def text_inputs(batch: int = 6, length: int = 10, seed: int = 1) -> dict:
    ids = torch.randint(2, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


class _ContrastiveTester(ModelTesterMixin):
    """The common checks, comparing `embeddings` where the language models compare `logits`."""

    model_classes = (HfsslTextForContrastiveLearning,)
    method = "simcse"

    def make_config(self, **overrides):
        return tiny_config(self.method, **overrides)

    def make_inputs(self, config):
        return text_inputs()

    def test_save_load_round_trip_gives_equal_outputs(self, tmp_path):
        model, inputs = self.build(HfsslTextForContrastiveLearning)
        model.save_pretrained(tmp_path)
        loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
        assert type(loaded) is HfsslTextForContrastiveLearning
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), name
        with torch.no_grad():
            a, b = model(**inputs), loaded(**inputs)
        torch.testing.assert_close(a.embeddings, b.embeddings)
        torch.testing.assert_close(a.loss, b.loss)

    def test_eager_and_sdpa_attention_are_equal(self):
        model, inputs = self.build(HfsslTextForContrastiveLearning)
        outputs = {}
        for implementation in ("sdpa", "eager"):
            model.config._attn_implementation = implementation
            with torch.no_grad():
                outputs[implementation] = model(**inputs).embeddings
        torch.testing.assert_close(outputs["sdpa"], outputs["eager"], atol=self.atol, rtol=1e-4)

    def test_output_fields(self):
        model, inputs = self.build(HfsslTextForContrastiveLearning)
        out = model.train()(**inputs)
        assert isinstance(out, ContrastiveOutput)
        assert out.embeddings.shape == (6, 32) and out.embedding_std.dim() == 0 and out.embedding_std > 0
        assert torch.isfinite(out.loss) and model(**inputs, return_loss=False).loss is None


class TestSimCSE(_ContrastiveTester):
    method = "simcse"

    def test_views_differ_by_dropout_and_get_features_is_deterministic(self):
        model, inputs = self.build(HfsslTextForContrastiveLearning)
        model.train()
        a, b = model.encode(inputs), model.encode(inputs)
        assert not torch.allclose(a, b), "encode() must keep dropout on in training: it makes the SimCSE views"
        torch.testing.assert_close(model.get_features(**inputs), model.get_features(**inputs))
        assert model.training
        assert model.target_model is None and model.momentum_update(0, 10) is None
        with pytest.raises(ValueError, match="no target"):
            model.encode(inputs, target=True)


class TestBYOL(_ContrastiveTester):
    method = "byol"

    def test_target_backbone_is_a_frozen_copy_moved_by_momentum(self):
        model, inputs = self.build(HfsslTextForContrastiveLearning)
        assert not any(p.requires_grad for p in model.target_model.parameters())
        for a, b in zip(model.model.parameters(), model.target_model.parameters()):
            assert torch.equal(a, b)
        model.train()(**inputs).loss.backward()
        assert all(p.grad is None for p in model.target_model.parameters())
        with torch.no_grad():
            for p in model.model.parameters():
                p.add_(1.0)
        before = [p.clone() for p in model.target_model.parameters()]
        m = model.momentum_update(step=5, total_steps=10)
        assert m == pytest.approx((0.996 + 1) / 2)
        for new, old, online in zip(model.target_model.parameters(), before, model.model.parameters()):
            torch.testing.assert_close(new, m * old + (1 - m) * online, rtol=0, atol=1e-6)

    def test_target_config_is_shared(self):
        model, _ = self.build(HfsslTextForContrastiveLearning)
        assert model.target_model.config is model.config

    def test_starting_from_a_masked_lm_checkpoint_copies_the_targets(self, tmp_path):
        torch.manual_seed(0)
        HfsslTextForMaskedLM(tiny_config()).save_pretrained(tmp_path)
        config = AutoConfig.from_pretrained(tmp_path)
        config.ssl = {"method": "byol", **SMALL_HEADS["byol"]}
        model, info = HfsslTextForContrastiveLearning.from_pretrained(tmp_path, config=config, output_loading_info=True)
        assert not any(k.startswith(("target_model.", "ssl.target_projector.")) for k in info["missing_keys"])
        for online, target in model.target_pairs():
            for a, b in zip(online.state_dict().values(), target.state_dict().values()):
                assert torch.equal(a, b)
            assert not any(p.requires_grad for p in target.parameters()), "loading must keep EMA copies frozen"
        assert torch.isfinite(model.train()(**text_inputs()).loss)


class TestDINO(_ContrastiveTester):
    method = "dino"

    def test_teacher_center_and_norm_survive_round_trip_and_start_right_from_a_masked_lm(self, tmp_path):
        model, inputs = self.build(HfsslTextForContrastiveLearning)
        model.train()(**inputs)
        model.momentum_update(1, 10)
        model.save_pretrained(tmp_path / "dino")
        loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "dino")
        torch.testing.assert_close(loaded.ssl.loss.center, model.ssl.loss.center)
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        assert frozen and frozen == {n for n, p in loaded.named_parameters() if not p.requires_grad}
        assert model.ssl.loss.center.abs().sum() > 0

        torch.manual_seed(0)
        HfsslTextForMaskedLM(tiny_config()).save_pretrained(tmp_path / "mlm")
        config = AutoConfig.from_pretrained(tmp_path / "mlm")
        config.ssl = {"method": "dino", **SMALL_HEADS["dino"]}
        fresh = HfsslTextForContrastiveLearning.from_pretrained(tmp_path / "mlm", config=config)
        assert torch.equal(fresh.ssl.loss.center, torch.zeros(1, 64))
        assert torch.equal(fresh.ssl.student_head.last_layer_norm, torch.ones(64, 1))
        assert not fresh.ssl.student_head.last_layer_norm.requires_grad
        assert not any(p.requires_grad for p in fresh.ssl.teacher_head.parameters())
        for a, b in zip(fresh.ssl.student_head.parameters(), fresh.ssl.teacher_head.parameters()):
            assert torch.isfinite(a).all() and torch.equal(a, b)


def test_resolved_hyperparameters_and_auto_map_are_saved(tmp_path):
    config = tiny_config("simcse")
    HfsslTextForContrastiveLearning(config).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["ssl"] == {"method": "simcse", **METHOD_DEFAULTS["simcse"]}
    assert saved["auto_map"]["AutoModelForPreTraining"] == "modeling_hfssl_contrastive.HfsslTextForContrastiveLearning"
    for name in ("modeling_hfssl_contrastive.py", "ssl_methods.py", "ssl_heads.py", "losses.py"):
        assert (tmp_path / name).exists(), name


def test_checkpoint_loads_as_bare_backbone_and_classifier(tmp_path):
    torch.manual_seed(0)
    model = HfsslTextForContrastiveLearning(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    backbone = AutoModel.from_pretrained(tmp_path)
    assert type(backbone) is HfsslTextModel
    inputs = text_inputs()
    torch.testing.assert_close(backbone.get_features(**inputs), model.get_features(**inputs))
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    for name, tensor in model.model.state_dict().items():
        assert torch.equal(classifier.model.state_dict()[name], tensor)


def test_trainer_scales_the_loss_for_gradient_accumulation(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = HfsslTextForContrastiveLearning(tiny_config())
    args = TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=4, report_to=[], use_cpu=True)
    assert Trainer(model=model, args=args).model_accepts_loss_kwargs is False


def test_missing_or_bad_ssl_config_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"no `ssl` attribute.*config.ssl = \{\"method\": \"simcse\""):
        HfsslTextForContrastiveLearning(tiny_config(ssl=None))
    with pytest.raises(ValueError, match="'method' key"):
        HfsslTextForContrastiveLearning(tiny_config(ssl={"temperature": 0.1}))
    with pytest.raises(KeyError, match="valid methods: simclr"):
        HfsslTextForContrastiveLearning(tiny_config(ssl={"method": "barlow"}))
    with pytest.raises(ValueError, match="Unknown hyperparameter"):
        HfsslTextForContrastiveLearning(tiny_config(ssl={"method": "simcse", "tau": 0.1}))


def test_remote_code_loads_where_hfssl_is_not_installed(tmp_path):
    torch.manual_seed(0)
    model = HfsslTextForContrastiveLearning(tiny_config()).eval()
    model.save_pretrained(tmp_path / "model")
    inputs = text_inputs()
    with torch.no_grad():
        expected = {"inputs": inputs, "embeddings": model(**inputs).embeddings, "features": model.get_features(**inputs)}
    torch.save(expected, tmp_path / "expected.pt")
    result = run_without_hfssl(
        """
        import torch
        from transformers import AutoModel, AutoModelForPreTraining
        expected = torch.load("expected.pt")
        model = AutoModelForPreTraining.from_pretrained("model", trust_remote_code=True).eval()
        assert type(model).__name__ == "HfsslTextForContrastiveLearning", type(model)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            torch.testing.assert_close(model(**expected["inputs"]).embeddings, expected["embeddings"])
        backbone = AutoModel.from_pretrained("model", trust_remote_code=True)
        torch.testing.assert_close(backbone.get_features(**expected["inputs"]), expected["features"])
        print("REMOTE-OK")
        """,
        cwd=tmp_path,
    )
    assert "REMOTE-OK" in result.stdout, result.stderr[-3000:]


# --------------------------------------------------------------------------- a short real training run


def stdlib_sentences(limit: int = 512) -> list[str]:
    """Sentences of 5-30 words from the docstrings of a few standard-library modules."""
    import argparse
    import collections
    import json.decoder
    import logging
    import pathlib
    import typing

    sentences = []
    for module in (argparse, logging, inspect, pathlib, json.decoder, collections, typing):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join((ast.get_docstring(node) or "").split())):
                    if 5 <= len(sentence.split()) <= 30:
                        sentences.append(sentence)
    return list(dict.fromkeys(sentences))[:limit]


def tokenize(sentences: list[str], max_length: int = 32) -> tuple[torch.Tensor, torch.Tensor, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(sentences, trainers.WordLevelTrainer(vocab_size=1000, special_tokens=["[PAD]", "[UNK]"]))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length)
    encodings = tokenizer.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    return ids, mask, tokenizer.get_vocab_size()


def test_simcse_training_lowers_the_loss_without_collapse():
    sentences = stdlib_sentences()
    assert len(sentences) >= 300
    ids, mask, vocab_size = tokenize(sentences)
    torch.manual_seed(0)
    model = HfsslTextForContrastiveLearning(tiny_config(vocab_size=vocab_size)).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    probe = {"input_ids": ids[:64], "attention_mask": mask[:64]}

    def probe_loss() -> float:
        torch.manual_seed(123)  # the same dropout masks before and after training
        with torch.no_grad():
            return float(model(**probe).loss)

    before = probe_loss()
    generator = torch.Generator().manual_seed(0)
    total_steps = 100
    for step in range(total_steps):
        batch = torch.randint(0, len(ids), (32,), generator=generator)
        model.training_step_counter = step
        out = model(input_ids=ids[batch], attention_mask=mask[batch])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.momentum_update(step + 1, total_steps)
    after = probe_loss()
    assert after < 0.7 * before, (before, after)
    spread = 1 / 32**0.5  # std_of_l2_normalized of well-spread 32-d embeddings
    assert float(out.embedding_std) > 0.5 * spread
    model.eval()
    with torch.no_grad():
        assert float(std_of_l2_normalized(model.get_features(**probe))) > 0.5 * spread


def test_a_dino_checkpoint_saved_before_use_bn_in_head_loads_with_its_own_head(tmp_path):
    """Saved configs list every hyperparameter; one written before use_bn_in_head existed keeps the BN-free
    head (the new default would rename the head's layers and drop their biases)."""
    model = HfsslTextForContrastiveLearning(
        tiny_config("dino", ssl={"method": "dino", **SMALL_HEADS["dino"], "use_bn_in_head": False})
    )
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    for key in ("use_bn_in_head", "norm_last_layer"):  # what an older hfssl wrote
        del saved["ssl"][key]
    config_file.write_text(json.dumps(saved))
    loaded = HfsslTextForContrastiveLearning.from_pretrained(tmp_path)
    assert loaded.config.ssl["use_bn_in_head"] is False
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in loaded.modules())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name

    fresh = HfsslTextForContrastiveLearning(tiny_config("dino"))  # a partial ssl dict gets the new defaults
    assert fresh.config.ssl["use_bn_in_head"] is True
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in fresh.ssl.student_head.modules())
