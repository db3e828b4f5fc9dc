"""Each bad input is refused with a message naming it and the fix, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfssl.cli import main as cli_main
from hfssl.finetune import finetune
from hfssl.finetune.command import main


def refuse(error_type, match: str, out: Path, parent, **kwargs) -> None:
    with pytest.raises(error_type, match=match):
        finetune(parent, output=out, **kwargs)
    assert not out.exists(), "a refused run left a directory behind"


def test_unknown_peft_method_lists_the_valid_ones(text_parent, tmp_path):
    refuse(KeyError, "Unknown PEFT method 'lorra'; valid methods: none, lora, dora, ia3", tmp_path / "run",
           text_parent, task="text-classification", dataset="stdlib-docstrings", peft="lorra")


def test_target_modules_matching_nothing_name_the_linear_modules(text_parent, tmp_path):
    refuse(ValueError, "'query' match no linear module.*attn.qkv, attn.out, mlp.up, mlp.down", tmp_path / "run",
           text_parent, task="text-classification", dataset="stdlib-docstrings", target_modules=["query"])


def test_test_labels_that_name_no_training_class_are_refused(text_parent, tmp_path):
    """Some test-only classes are scored (F1 0); none in common means the splits spell their classes differently."""
    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("text,label\nfine film,positive\nbad,negative\n", encoding="utf-8")
    refuse(ValueError, "None of the test labels \\(negative, positive\\) is a label of the training", tmp_path / "run",
           text_parent,
           task="text-classification", train_files=[str(tmp_path / "train.csv")],
           test_files=[str(tmp_path / "test.csv")])


def test_an_image_parent_is_refused_for_text(image_parent, tmp_path):
    refuse(ValueError, "is an image model but --task text-classification needs a text model; use --task "
           "image-classification", tmp_path / "run", image_parent, task="text-classification",
           dataset="stdlib-docstrings")


def test_a_text_parent_is_refused_for_images(text_parent, tmp_path):
    refuse(ValueError, "is a text model but --task image-classification needs an image model", tmp_path / "run",
           text_parent, task="image-classification", dataset="digits")


def test_a_built_in_dataset_of_the_other_modality(text_parent, tmp_path):
    refuse(ValueError, "--dataset digits holds image data but --task is text-classification", tmp_path / "run",
           text_parent, task="text-classification", dataset="digits")


def test_a_missing_parent(tmp_path):
    refuse(FileNotFoundError, "does not exist", tmp_path / "run", str(tmp_path / "nope"),
           task="text-classification", dataset="stdlib-docstrings")


def test_an_existing_output_needs_overwrite(text_parent, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="--overwrite") as refused:
        finetune(text_parent, task="text-classification", output=out, dataset="stdlib-docstrings")
    assert "--resume" not in str(refused.value)  # hfssl finetune has no --resume to suggest
    assert (out / "keep.txt").read_text() == "precious"


def test_unknown_training_argument(text_parent, tmp_path):
    refuse(ValueError, "Bad training argument.*learning_rat", tmp_path / "run", text_parent,
           task="text-classification", dataset="stdlib-docstrings", max_train_examples=20,
           training_args={"learning_rat": 0.1})


def test_command_line_key_value_options_must_have_an_equals_sign(text_parent, tmp_path):
    with pytest.raises(ValueError, match="--peft-option takes KEY=VALUE, got 'use_rslora'"):
        main([str(text_parent), "--task", "text-classification", "--dataset", "stdlib-docstrings",
              "--output", str(tmp_path / "run"), "--peft-option", "use_rslora"])


@pytest.mark.parametrize("flags,message", [
    (["--peft", "none", "--merge"], "--merge does not apply to --peft none"),
    (["--peft", "ia3", "--lora-r", "8"], "--lora-r does not apply to --peft ia3"),  # 8 is the default rank: still set
    (["--peft", "prompt_tuning", "--lora-alpha", "16"], "--lora-alpha does not apply to --peft prompt_tuning"),
    (["--peft", "prompt_tuning", "--merge"], "--merge does not apply to --peft prompt_tuning"),
    (["--peft", "none", "--target-modules", "attn.qkv"], "--target-modules does not apply to --peft none"),
])
def test_the_command_refuses_flags_the_method_would_ignore(flags, message, text_parent, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["finetune", str(text_parent), "--task", "text-classification", "--dataset", "stdlib-docstrings",
                     "--output", str(out), *flags])
    assert code == 2 and not out.exists()
    assert message in capsys.readouterr().err


def test_data_flags_the_source_would_ignore(text_parent, tmp_path):
    refuse(ValueError, "--test-files goes with --train-files, not with --dataset", tmp_path / "run", text_parent,
           task="text-classification", dataset="stdlib-docstrings", test_files=["test.csv"])
    refuse(ValueError, "--data-dir goes with --dataset and would be ignored with --train-files", tmp_path / "run",
           text_parent, task="text-classification", train_files=["train.csv"], data_dir=str(tmp_path))


def test_the_parent_run_cannot_be_the_output(text_parent):
    with pytest.raises(ValueError, match="holds the parent's model .* Choose another --output"):
        finetune(text_parent, task="text-classification", output=text_parent, dataset="stdlib-docstrings",
                 overwrite=True)
    assert (text_parent / "model" / "config.json").is_file()


def test_prompt_learning_is_refused_for_images(image_parent, tmp_path):
    refuse(ValueError, "--peft prompt_tuning prepends virtual tokens to a text input", tmp_path / "run", image_parent,
           task="image-classification", dataset="digits", peft="prompt_tuning")


@pytest.mark.parametrize("bad,match", [
    ({"epochs": 0}, r"--epochs must be positive, got 0"),  # it used to train 0 steps and save the untrained model
    ({"batch_size": 0}, r"--batch-size must be positive, got 0"),  # a ZeroDivisionError
    ({"learning_rate": -1.0}, r"--learning-rate must be positive, got -1.0"),  # torch's error, once the data was read
    ({"max_length": 0}, r"--max-length must be positive \(at least 2 tokens\), got 0"),
    ({"training_args": {"max_steps": "abc"}}, r"--training-arg max_steps=abc is not a valid value: .* takes int"),
    ({"peft": "adalora", "peft_options": {"init_r": 4}}, r"init_r must be >= target_r; got init_r=4, target_r=8"),
])
def test_training_settings_that_cannot_train_are_refused(bad, match, text_parent, tmp_path):
    refuse(ValueError, match, tmp_path / "run", text_parent, task="text-classification", dataset="stdlib-docstrings",
           **bad)


def test_epochs_may_be_zero_when_max_steps_sets_the_length():
    from hfssl.finetune.api import TrainSettings

    assert TrainSettings(epochs=0, overrides={"max_steps": 3}).epochs == 0


def test_a_semicolon_separated_csv_is_named_as_the_cause(text_parent, tmp_path):
    data = tmp_path / "labelled.csv"
    data.write_text("text;label\n" + "".join(f"review number {i};{i % 2}\n" for i in range(20)), encoding="utf-8")
    refuse(ValueError, "columns are \\['text;label'\\] \\(one column whose name holds ';': the file separates its "
           "fields with semicolons", tmp_path / "run", text_parent, task="text-classification",
           train_files=[str(data)])
