"""`--init-from` with the checkpoints an engineer already has: stock transformers models saved locally (BERT, RoBERTa,
GPT-2, ViT-MAE, bare encoders), hfssl runs under another objective, paths that hold no model, and `--resume` of a
run that started from one. Each either trains or is refused with exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForMaskedLM,
    ViTConfig,
    ViTMAEConfig,
    ViTMAEForPreTraining,
    ViTModel,
    pipeline,
)

import hfssl  # noqa: F401
from hfssl.cli import main
from hfssl.models import HfsslTextConfig, HfsslTextForCausalLM, HfsslTextForMaskedLM
from hfssl.training.init_from import attends_ahead
from hfssl.training.objectives import get_objective
from hfssl.training.setup import load_init_model

RUN = ["--model-size", "tiny", "--report-to", "none", "--disable-tqdm", "true", "--eval-steps", "1000",
       "--logging-steps", "1", "--per-device-train-batch-size", "8", "--learning-rate", "3e-3"]
TEXT = ["--dataset", "stdlib-docstrings", "--max-train-examples", "300", "--block-size", "32"]
IMAGES = ["--dataset", "digits", "--image-size", "16", "--max-train-examples", "120"]
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def pretrain(*args) -> int:
    return main(["pretrain", *RUN, *map(str, args)])


def refused(capsys, out: Path, *args, message: str) -> None:
    code = pretrain(*args, "--output", out, "--max-steps", "2")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert not out.exists()


def _texts() -> list[str]:
    from hfssl.data.corpora import stdlib_docstrings

    return stdlib_docstrings()[:600]


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """BERT's kind: [PAD] [UNK] [CLS] [SEP] [MASK], no eos."""
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend.train_from_iterator(_texts(), trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, backend.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)


def byte_bpe_tokenizer(roberta: bool) -> PreTrainedTokenizerFast:
    """GPT-2's kind (one <|endoftext|>, no pad, no mask) or RoBERTa's (<s> <pad> </s> <unk> <mask>)."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if roberta else ["<|endoftext|>"]
    backend.train_from_iterator(_texts(), trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if roberta:
        return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                       pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


@pytest.fixture(scope="module")
def stock(tmp_path_factory) -> dict[str, Path]:
    """Tiny stock checkpoints saved as `save_pretrained` writes them, each with its tokenizer or image processor."""
    from transformers import ViTImageProcessor

    root = tmp_path_factory.mktemp("stock")
    wordpiece, gpt2_bpe, roberta_bpe = wordpiece_tokenizer(), byte_bpe_tokenizer(False), byte_bpe_tokenizer(True)
    images = ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    vit = {"image_size": 16, "patch_size": 4, "num_channels": 3, **SMALL}
    made = {
        "bert": (BertForMaskedLM(BertConfig(vocab_size=len(wordpiece), max_position_embeddings=48, **SMALL)),
                 wordpiece),
        "roberta": (RobertaForMaskedLM(RobertaConfig(vocab_size=len(roberta_bpe), max_position_embeddings=66,
                                                     pad_token_id=1, bos_token_id=0, eos_token_id=2, **SMALL)),
                    roberta_bpe),
        "gpt2": (GPT2LMHeadModel(GPT2Config(vocab_size=len(gpt2_bpe), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                            bos_token_id=0, eos_token_id=0)), gpt2_bpe),
        "vitmae": (ViTMAEForPreTraining(ViTMAEConfig(decoder_hidden_size=32, decoder_num_hidden_layers=1,
                                                     decoder_num_attention_heads=2, decoder_intermediate_size=64,
                                                     **vit)), images),
        "vit": (ViTModel(ViTConfig(**vit)), images),
    }
    for name, (model, processor) in made.items():
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    shutil.copytree(root / "bert", root / "bert-no-tokenizer", ignore=shutil.ignore_patterns("tokenizer*"))
    return {name: root / name for name in [*made, "bert-no-tokenizer"]}


def hfssl_checkpoint(folder: Path, causal: bool) -> Path:
    config = HfsslTextConfig.from_size("tiny", vocab_size=100, is_causal=causal, **SMALL)
    (HfsslTextForCausalLM if causal else HfsslTextForMaskedLM)(config).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------- attention follows the objective


@pytest.mark.parametrize("trained, objective", [("mlm", "clm"), ("clm", "mlm")])
def test_an_hfssl_checkpoint_continued_under_the_other_lm_objective_takes_its_attention(tmp_path, trained, objective):
    """A masked LM continued as clm kept its bidirectional attention and so read the tokens it predicted."""
    source = hfssl_checkpoint(tmp_path / trained, causal=trained == "clm")
    model = load_init_model(get_objective(objective), str(source))
    assert model.config.is_causal == (objective == "clm")
    assert model.config.pooling == ("last" if objective == "clm" else "mean")
    assert attends_ahead(model, 8, str(source)) == (objective == "mlm")


def test_a_simcse_continuation_keeps_the_checkpoints_attention(tmp_path):
    source = hfssl_checkpoint(tmp_path / "clm", causal=True)
    model = load_init_model(get_objective("simcse"), str(source), get_objective("simcse").config_extra({}))
    assert model.config.is_causal and model.config.pooling == "last"


def test_a_stock_encoder_is_loaded_as_a_decoder_for_next_token_training(stock):
    """RobertaForCausalLM without is_decoder attends both ways: next-token training on it would read ahead."""
    model = load_init_model(get_objective("clm"), str(stock["roberta"]), block_size=16)
    assert type(model).__name__ == "RobertaForCausalLM" and model.config.is_decoder
    assert not attends_ahead(model, 16, "roberta")


# ---------------------------------------------------------------- stock checkpoints that train


@pytest.mark.parametrize("name, objective, auto, task", [
    ("bert", "mlm", AutoModelForMaskedLM, "fill-mask"),
    ("gpt2", "clm", AutoModelForCausalLM, "text-generation"),
])
def test_a_stock_checkpoint_trains_under_its_objective_and_loads_anywhere(stock, tmp_path, name, objective, auto,
                                                                         task):
    out = tmp_path / name
    assert pretrain("--objective", objective, "--init-from", stock[name], *TEXT, "--output", out,
                    "--max-steps", "6", "--save-steps", "1000") == 0
    manifest = json.loads((out / "run.json").read_text())
    stats = manifest["pretrain"]
    assert stats["eval_loss"] < stats["eval_loss_before"], stats
    assert manifest["model"]["init_from"] == str(stock[name]) and manifest["objective"] == objective
    model = auto.from_pretrained(out / "model")
    assert type(model).__name__ == manifest["model"]["class"]
    tokenizer = pipeline(task, model=str(out / "model")).tokenizer
    assert tokenizer.get_vocab() == PreTrainedTokenizerFast.from_pretrained(stock[name]).get_vocab()
    if task == "fill-mask":
        assert pipeline(task, model=str(out / "model"))(f"Return the {tokenizer.mask_token}.")
    else:
        assert pipeline(task, model=str(out / "model"))("Return the", max_new_tokens=3, do_sample=False)


def test_a_stock_mae_checkpoint_trains_as_mae_at_its_own_image_size(stock, tmp_path, caplog):
    from transformers import AutoImageProcessor, AutoModelForPreTraining

    out = tmp_path / "mae"
    with caplog.at_level("WARNING"):
        assert pretrain("--objective", "mae", "--init-from", stock["vitmae"], *IMAGES, "--image-size", "8",
                        "--output", out, "--max-steps", "2", "--save-steps", "1000") == 0
    assert "--image-size 8 is not used: images are converted to 16" in caplog.text
    assert type(AutoModelForPreTraining.from_pretrained(out / "model")).__name__ == "ViTMAEForPreTraining"
    assert AutoImageProcessor.from_pretrained(out / "model").size["height"] == 16


# ---------------------------------------------------------------- refused before anything is written


@pytest.mark.parametrize("source, objective, data, message", [
    ("gpt2", "mlm", TEXT, "cannot train it: continue it with --objective clm"),
    ("bert", "simcse", TEXT, "joint-embedding wrapper, which continues only hfssl checkpoints"),
    ("vitmae", "dino", IMAGES, "continue it with --objective mae and start dino from that run"),
    ("vit", "mae", IMAGES, "no AutoModelForPreTraining class, so objective 'mae' cannot train it"),
    ("bert", "mae", IMAGES, "is a text model ('bert'); objective 'mae' trains image models"),
    ("vitmae", "mlm", TEXT, "is an image model ('vit_mae'); objective 'mlm' trains text models"),
    ("bert", "clm", TEXT, "needs an eos token (to end each document), which the tokenizer of --init-from"),
    ("bert-no-tokenizer", "mlm", TEXT, "holds no tokenizer files"),
])
def test_a_stock_checkpoint_the_objective_cannot_train_is_refused(stock, tmp_path, capsys, source, objective, data,
                                                                  message):
    refused(capsys, tmp_path / "run", "--objective", objective, "--init-from", stock[source], *data, message=message)


def test_a_tokenizer_larger_than_an_init_from_models_vocabulary_is_refused(stock, tmp_path, capsys):
    """--config-overrides vocab_size, the fix for a new model, does not apply to a checkpoint."""
    larger = PreTrainedTokenizerFast.from_pretrained(stock["bert"])
    larger.add_tokens([f"extra{i}" for i in range(5)])
    larger.save_pretrained(tmp_path / "larger")
    refused(capsys, tmp_path / "run", "--objective", "mlm", "--init-from", stock["bert-no-tokenizer"], "--tokenizer",
            tmp_path / "larger", *TEXT, message=f"Pass the tokenizer --init-from {stock['bert-no-tokenizer']}'s model")


def test_a_block_longer_than_a_stock_models_positions_is_refused(stock, tmp_path, capsys):
    refused(capsys, tmp_path / "run", "--objective", "mlm", "--init-from", stock["bert"], *TEXT, "--block-size", "64",
            message="--block-size 64: a block of that many tokens failed in --init-from")


@pytest.mark.parametrize("flags, message", [
    (["--config-overrides", "hidden_size=64"], "hidden_size: 32 in the checkpoint, 64 given"),
    (["--tokenizer-type", "wordpiece"], "--tokenizer-type wordpiece chooses a tokenizer to train"),
])
def test_model_flags_that_would_not_apply_to_the_checkpoint_are_refused(stock, tmp_path, capsys, flags, message):
    refused(capsys, tmp_path / "run", "--objective", "mlm", "--init-from", stock["bert"], *TEXT, *flags,
            message=message)


def test_init_from_paths_that_hold_no_model_say_what_to_give(stock, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    run = tmp_path / "stopped"
    (run / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-4" / "config.json").write_text("{}")
    cases = [
        (stock["bert"] / "config.json", "is a file; give the folder that holds the model's config.json"),
        (tmp_path / "missing", "no such folder"),
        (run / "checkpoints", f"Its newest checkpoint is {run / 'checkpoints' / 'checkpoint-4'}"),
        (run, f"pass --init-from {run / 'checkpoints' / 'checkpoint-4'}"),
        ("someone/some-model", "Offline (no network, or HF_HUB_OFFLINE=1) a Hub model loads only from the local cache"),
    ]
    for init_from, message in cases:
        refused(capsys, tmp_path / "run", "--objective", "mlm", "--init-from", init_from, *TEXT, message=message)


# ---------------------------------------------------------------- --resume of a run that started from --init-from


def test_resume_of_a_run_from_a_stock_checkpoint_keeps_its_init_from(stock, tmp_path, capsys):
    """The run resumes from its own checkpoint (the stock folder is not read again); another --init-from, or one
    given to a run that started fresh, is refused."""
    run = tmp_path / "run"
    common = ["--objective", "mlm", *TEXT, "--output", run, "--save-steps", "2"]
    assert pretrain(*common, "--init-from", stock["bert"], "--max-steps", "2") == 0
    moved = tmp_path / "moved-bert"
    shutil.copytree(stock["bert"], moved)
    assert pretrain(*common, "--resume", "--max-steps", "3") == 0
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["pretrain"]["steps"] == 3 and manifest["model"]["init_from"] == str(stock["bert"])
    assert manifest["model"]["class"] == "BertForMaskedLM"

    code = pretrain(*common, "--resume", "--init-from", moved, "--max-steps", "4")
    assert code == 2 and f"started from --init-from {stock['bert']}, not from --init-from {moved}" in (
        capsys.readouterr().err)
    fresh = tmp_path / "fresh"
    assert pretrain("--objective", "mlm", *TEXT, "--output", fresh, "--save-steps", "1", "--max-steps", "1",
                    "--vocab-size", "300") == 0
    code = pretrain("--objective", "mlm", *TEXT, "--output", fresh, "--resume", "--init-from", stock["bert"],
                    "--max-steps", "2")
    assert code == 2 and "started from a fresh model (no --init-from)" in capsys.readouterr().err


# ---------------------------------------------------------------- --tokenizer


def test_vocab_size_beside_a_given_tokenizer_is_reported_as_unused(stock, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert pretrain("--objective", "mlm", "--tokenizer", stock["bert"], "--vocab-size", "100", *TEXT,
                        "--config-overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64",
                        "--output", out, "--max-steps", "1") == 0
    assert "--vocab-size 100 is not used" in caplog.text
    assert json.loads((out / "model" / "config.json").read_text())["vocab_size"] == len(
        PreTrainedTokenizerFast.from_pretrained(stock["bert"]))


def test_a_masked_lm_continued_as_clm_does_not_see_ahead_after_training(tmp_path):
    """End to end: an hfssl MLM run (RoBERTa-style tokenizer: mask and eos) continued as clm saves a causal model
    that loads without hfssl."""
    from tests.models.model_tester import run_without_hfssl

    tokenizer_dir = tmp_path / "tokenizer"
    byte_bpe_tokenizer(True).save_pretrained(tokenizer_dir)
    tiny = ["--config-overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64", *TEXT,
            "--max-steps", "1"]
    assert pretrain("--objective", "mlm", "--tokenizer", tokenizer_dir, *tiny, "--output", tmp_path / "mlm") == 0
    out = tmp_path / "clm"
    assert pretrain("--objective", "clm", "--init-from", tmp_path / "mlm", *tiny, "--output", out) == 0
    assert json.loads((out / "model" / "config.json").read_text())["is_causal"] is True
    result = run_without_hfssl(f"""
        import torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(out / "model")!r}, trust_remote_code=True).eval()
        ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 9]])
        logits = model(ids).logits
        assert torch.allclose(logits[0, :3], logits[1, :3], atol=1e-5), "sees the next token"
        print("causal", type(model).__name__)
    """, tmp_path)
    assert result.returncode == 0 and "causal HfsslTextForCausalLM" in result.stdout, result.stderr
