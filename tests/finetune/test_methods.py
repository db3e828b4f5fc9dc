"""The method registry: lookups, options, and which parameters each method trains."""

from __future__ import annotations

import pytest
from peft import IA3Config, LoraConfig, get_peft_model

from hfssl.finetune.methods import METHODS, MethodOptions, build_peft_config, check_options, get_method
from hfssl.finetune.targets import head_modules, resolve_targets

from .test_targets import STOCK, hfssl_text


def peft_model(name: str, model=None, options: MethodOptions | None = None, task_type="SEQ_CLS"):
    model = model if model is not None else hfssl_text()
    options = options or MethodOptions()
    config = build_peft_config(get_method(name), options, resolve_targets(model, options.target_modules),
                               head_modules(model), task_type)
    return get_peft_model(model, config)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(KeyError) as error:
        get_method("lorra")
    message = str(error.value)
    assert "'lorra'" in message and "none, lora, dora, ia3" in message and "vera" in message


def test_lookup_is_case_insensitive_and_reaches_any_peft_method():
    assert get_method("LoRA") is METHODS["lora"]
    vera = get_method("vera")
    assert vera.name == "vera" and vera.config_class.__name__ == "VeraConfig"


def test_dora_is_lora_with_a_learned_magnitude():
    config = build_peft_config(get_method("dora"), MethodOptions(r=4, alpha=8), resolve_targets(hfssl_text()),
                               ["classifier"], "SEQ_CLS")
    assert isinstance(config, LoraConfig) and config.use_dora and config.r == 4 and config.lora_alpha == 8


def test_ia3_scales_the_mlp_input_of_the_output_projection():
    config = build_peft_config(get_method("ia3"), MethodOptions(), resolve_targets(hfssl_text()), ["classifier"], None)
    assert isinstance(config, IA3Config)
    assert set(config.feedforward_modules) == {"mlp.down"} and set(config.target_modules) == {"attn.qkv", "attn.out",
                                                                                           "mlp.down"}


def test_ia3_builds_on_bert_where_the_mlp_output_needs_a_longer_name():
    model = peft_model("ia3", STOCK["bert"]())
    assert any(name.endswith("output.dense.ia3_l.default") for name, _ in model.named_parameters())


@pytest.mark.parametrize("name", ["lora", "dora", "ia3", "loha", "lokr", "vera"])
def test_only_adapter_weights_and_the_head_train(name):
    model = peft_model(name)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    adapter_marks = ("lora_", "ia3_", "hada_", "lokr_", "vera_")
    assert trainable and all("modules_to_save" in n or any(m in n for m in adapter_marks) for n in trainable)
    assert any("classifier.modules_to_save" in n for n in trainable)
    assert any(any(m in n for m in adapter_marks) for n in trainable)


def test_full_fine_tuning_builds_no_peft_config():
    assert build_peft_config(get_method("none"), MethodOptions(), resolve_targets(hfssl_text()), [], None) is None


def test_extra_options_reach_the_peft_config_and_unknown_ones_are_named():
    options = MethodOptions(extra={"use_rslora": True})
    config = build_peft_config(get_method("lora"), options, resolve_targets(hfssl_text()), ["classifier"], None)
    assert config.use_rslora
    with pytest.raises(ValueError, match="rank_dropout is not an option of LoraConfig; valid options: .*lora_alpha"):
        build_peft_config(get_method("lora"), MethodOptions(extra={"rank_dropout": 0.1}),
                          resolve_targets(hfssl_text()), ["classifier"], None)


@pytest.mark.parametrize("bad", [{"r": 0}, {"alpha": 0.0}, {"dropout": 1.0}])
def test_bad_method_options_are_refused(bad):
    with pytest.raises(ValueError, match="--lora-"):
        MethodOptions(**bad)


# ------------------------------------------------------------------------------------ options a method ignores


@pytest.mark.parametrize("name,options,merge,match", [
    ("ia3", {"r": 8}, False, r"--lora-r does not apply to --peft ia3: IA3Config has no rank\. Drop --lora-r"),
    ("ia3", {"alpha": 16.0}, False, r"--lora-alpha does not apply to --peft ia3"),
    ("prompt_tuning", {"r": 4}, False, r"--lora-r does not apply to --peft prompt_tuning: PromptTuningConfig learns"),
    ("prompt_tuning", {"target_modules": ["attn.qkv"]}, False, r"--target-modules does not apply to --peft prompt_"),
    ("none", {"dropout": 0.1}, False, r"--lora-dropout does not apply to --peft none: .* pick an adapter method"),
    ("none", {"target_modules": ["attn.qkv"]}, False, r"--target-modules does not apply to --peft none"),
    ("vera", {"alpha": 4.0}, False, r"--lora-alpha does not apply to --peft vera: VeraConfig has no scaling alpha"),
    ("adalora", {"r": 4}, False, r"AdaLoraConfig ignores r: .*--peft-option init_r=N"),
    ("none", {}, True, r"--merge does not apply to --peft none: .* Drop --merge"),
    ("prompt_tuning", {}, True, r"--merge does not apply to --peft prompt_tuning: its learned virtual tokens cannot"),
])
def test_options_the_method_has_no_use_for_are_refused(name, options, merge, match):
    """They used to be dropped without a word: `--lora-r 4 --peft ia3` trained IA3 as if the flag were not there."""
    with pytest.raises(ValueError, match=match):
        check_options(get_method(name), MethodOptions(**options), merge)


def test_options_left_unset_pass_and_keep_each_methods_defaults():
    for name in ("ia3", "prompt_tuning", "none", "vera", "adalora"):
        check_options(get_method(name), MethodOptions())
    lora = build_peft_config(get_method("lora"), MethodOptions(), resolve_targets(hfssl_text()), ["classifier"], None)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16.0, 0.05)
    adalora = get_method("adalora")
    config = build_peft_config(adalora, MethodOptions(training_steps=10), resolve_targets(hfssl_text()),
                               ["classifier"], None)
    assert config.lora_alpha == 8  # peft's default, not hfssl's 16: the user set nothing
    config = build_peft_config(adalora, MethodOptions(alpha=4.0, dropout=0.2, training_steps=10),
                               resolve_targets(hfssl_text()), ["classifier"], None)
    assert (config.lora_alpha, config.lora_dropout) == (4.0, 0.2)  # set, so they reach the config


def test_generic_methods_take_alpha_and_dropout_under_their_own_field_names():
    assert get_method("vera").fields == {"r": "r", "dropout": "vera_dropout", "target_modules": "target_modules"}
    config = build_peft_config(get_method("vera"), MethodOptions(r=4, dropout=0.2), resolve_targets(hfssl_text()),
                               ["classifier"], None)
    assert (config.r, config.vera_dropout) == (4, 0.2)


def test_peft_options_for_fields_hfssl_sets():
    """`--peft-option r=4` used to crash LoraConfig with 'got multiple values for keyword argument r'."""
    targets = resolve_targets(hfssl_text())
    config = build_peft_config(get_method("lora"), MethodOptions(extra={"r": 4, "use_dora": True}), targets,
                               ["classifier"], None)
    assert config.r == 4 and config.use_dora
    config = build_peft_config(get_method("loha"), MethodOptions(extra={"alpha": 2.0}), targets, ["classifier"], None)
    assert config.alpha == 2.0
    with pytest.raises(ValueError, match=r"--peft-option r=\.\.\. and --lora-r both set LoraConfig\.r; pass only one"):
        check_options(get_method("lora"), MethodOptions(r=8, extra={"r": 4}))
    with pytest.raises(ValueError, match=r"--peft-option target_modules=\.\.\. is not accepted: pass --target-modules"):
        check_options(get_method("lora"), MethodOptions(extra={"target_modules": ["attn.qkv"]}))
    with pytest.raises(ValueError, match=r"--peft-option task_type=\.\.\. is not accepted: it follows --task"):
        check_options(get_method("ia3"), MethodOptions(extra={"task_type": "CAUSAL_LM"}))


def test_prompt_learning_is_refused_for_images():
    with pytest.raises(ValueError, match="--peft prompt_tuning prepends virtual tokens to a text input"):
        check_options(get_method("prompt_tuning"), MethodOptions(), modality="image")
    check_options(get_method("lora"), MethodOptions(), modality="image")
