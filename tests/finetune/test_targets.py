"""Target-module detection by module names, for hfssl backbones and stock transformers families."""

from __future__ import annotations

import pytest
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hfssl.finetune.targets import compress_names, detect_targets, head_modules, matches, resolve_targets
from hfssl.models import (
    HfsslTextConfig,
    HfsslTextForSequenceClassification,
    HfsslVisionConfig,
    HfsslVisionForImageClassification,
)

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def hfssl_text():
    return HfsslTextForSequenceClassification(HfsslTextConfig(vocab_size=50, num_labels=3, **SMALL))


def hfssl_vision():
    return HfsslVisionForImageClassification(HfsslVisionConfig(image_size=8, patch_size=4, num_labels=3, **SMALL))


STOCK = {
    "bert": lambda: BertForSequenceClassification(BertConfig(vocab_size=50, **SMALL)),
    "distilbert": lambda: DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=50, dim=32, n_layers=2, n_heads=2, hidden_dim=64)),
    "gpt2": lambda: GPT2ForSequenceClassification(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=2)),
    "llama-like": lambda: LlamaForSequenceClassification(LlamaConfig(vocab_size=50, num_key_value_heads=2, **SMALL)),
    "vit": lambda: ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, **SMALL)),
}
EXPECTED = {  # family, peft names of attention + MLP projections, head
    "bert": ("bert", {"self.query", "self.key", "self.value", "output.dense", "intermediate.dense"}, ["classifier"]),
    "distilbert": ("distilbert", {"attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
                                  "ffn.lin1", "ffn.lin2"}, ["pre_classifier", "classifier"]),
    "gpt2": ("gpt2", {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}, ["score"]),
    "llama-like": ("llama-like", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}, ["score"]),
    "vit": ("llama-like", {"attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj",
                           "mlp.fc1", "mlp.fc2"}, ["classifier"]),
}


@pytest.mark.parametrize("build", [hfssl_text, hfssl_vision])
def test_hfssl_backbones_adapt_attention_and_mlp(build):
    model = build()
    targets = detect_targets(model)
    assert targets.family == "hfssl"
    assert set(targets.as_peft(targets.all)) == {"attn.qkv", "attn.out", "mlp.up", "mlp.down"}
    assert len(targets.all) == 4 * 2  # four projections in each of two blocks
    assert targets.mlp_out == ("model.layers.0.mlp.down", "model.layers.1.mlp.down")
    assert head_modules(model) == ["classifier"]


@pytest.mark.parametrize("name", list(STOCK))
def test_stock_families_are_recognized_by_their_layer_names(name):
    model = STOCK[name]()
    family, names, head = EXPECTED[name]
    targets = detect_targets(model)
    assert targets.family == family
    assert set(targets.as_peft(targets.all)) == names
    assert head_modules(model) == head
    assert not any(n.startswith(tuple(head)) for n in targets.all), "the head is trained in full, never adapted"


def test_bert_mlp_output_is_told_apart_from_the_attention_output():
    targets = detect_targets(STOCK["bert"]())
    assert all(".attention." not in n for n in targets.mlp_out) and len(targets.mlp_out) == 2
    suffixes = targets.as_peft(targets.mlp_out)
    selected = [n for n in targets.linear if any(matches(n, s) for s in suffixes)]
    assert selected == list(targets.mlp_out)


def test_compressed_names_select_exactly_the_wanted_modules():
    linear = ["m.layers.0.attn.qkv", "m.layers.0.attn.out", "m.layers.1.attn.qkv", "m.layers.1.attn.out", "head.out"]
    assert compress_names(linear[:4], linear) == ["attn.qkv", "attn.out"]
    assert compress_names(["m.layers.0.attn.out"], linear) == ["0.attn.out"]


def test_override_keeps_only_the_named_modules():
    targets = resolve_targets(hfssl_text(), ["attn.qkv"])
    assert targets.overridden and targets.as_peft(targets.all) == ["attn.qkv"]
    assert targets.mlp_in == () and targets.mlp_out == ()


def test_target_modules_that_match_nothing_name_what_exists():
    with pytest.raises(ValueError) as error:
        resolve_targets(hfssl_text(), ["attn.qkv", "q_proj"])
    message = str(error.value)
    assert "'q_proj'" in message and "'attn.qkv'" not in message.split("match no")[0]
    for existing in ("attn.qkv", "attn.out", "mlp.up", "mlp.down", "classifier"):
        assert existing in message
