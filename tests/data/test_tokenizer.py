"""Tokenizer training, save/load round trips, transformers pipelines and the fit checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    pipeline,
)

from hfssl.data.tokenizer import (
    check_tokenizer_fits,
    default_tokenizer_kind,
    load_tokenizer,
    train_tokenizer,
)

SENTENCE = "Return the number of items in the list, or raise ValueError if it is empty."


@pytest.fixture(scope="module")
def saved(docstrings, tmp_path_factory) -> dict[str, str]:
    """Each tokenizer kind, trained on real docstrings and saved with save_pretrained."""
    folders = {}
    for kind in ("bpe", "wordpiece", "unigram"):
        tokenizer = train_tokenizer(docstrings[:800], kind, vocab_size=1200, model_max_length=256)
        assert len(tokenizer) <= 1200
        folder = tmp_path_factory.mktemp(kind)
        tokenizer.save_pretrained(folder)
        folders[kind] = str(folder)
    return folders


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "unigram"])
def test_round_trip_through_auto_tokenizer(saved, kind):
    tokenizer = AutoTokenizer.from_pretrained(saved[kind])
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert tokenizer.model_max_length == 256
    ids = tokenizer(SENTENCE)["input_ids"]
    assert tokenizer.unk_token_id not in ids[1:-1]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    if kind == "wordpiece":
        # BERT-style decoding joins '##' pieces but puts spaces around punctuation.
        decoded = decoded.replace(" ,", ",").replace(" .", ".")
    assert decoded.strip() == SENTENCE


def test_bpe_specials_and_byte_level_coverage(saved):
    tokenizer = AutoTokenizer.from_pretrained(saved["bpe"])
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.mask_token is None
    text = "naïve café ☕ — 東京"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == text
    assert "Ġthe" in tokenizer.get_vocab()


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_bert_style_specials_and_template(saved, kind):
    tokenizer = AutoTokenizer.from_pretrained(saved[kind])
    names = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
    assert [getattr(tokenizer, name) for name in names] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ids = tokenizer("Return the value.")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    pair = tokenizer("first part", "second part")
    assert pair["input_ids"].count(tokenizer.sep_token_id) == 2
    masked = tokenizer(f"Return the {tokenizer.mask_token} value.")["input_ids"]
    assert tokenizer.mask_token_id in masked


def test_wordpiece_uses_continuation_pieces_and_keeps_case(saved):
    tokenizer = AutoTokenizer.from_pretrained(saved["wordpiece"])
    tokens = tokenizer.tokenize("Return Unsubscribability")
    assert tokens[0] == "Return" and any(t.startswith("##") for t in tokens)


def test_fill_mask_pipeline_with_a_trained_tokenizer(saved):
    tokenizer = AutoTokenizer.from_pretrained(saved["wordpiece"])
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    fill = pipeline("fill-mask", model=BertForMaskedLM(config), tokenizer=tokenizer, device="cpu")
    predictions = fill(f"Return the {tokenizer.mask_token} of the list.", top_k=3)
    assert len(predictions) == 3
    assert all(p["sequence"].startswith("Return the") for p in predictions)


def test_text_generation_pipeline_with_a_trained_bpe(saved):
    tokenizer = AutoTokenizer.from_pretrained(saved["bpe"])
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=256,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    generate = pipeline("text-generation", model=GPT2LMHeadModel(config), tokenizer=tokenizer, device="cpu")
    out = generate("Return the", max_new_tokens=4, do_sample=False)[0]["generated_text"]
    assert out.startswith("Return the") and len(out) > len("Return the")


def test_unknown_kind_lists_valid_kinds(docstrings):
    with pytest.raises(ValueError, match="bpe, wordpiece, unigram"):
        train_tokenizer(docstrings[:10], "sentencepiece", vocab_size=1000, model_max_length=128)


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "unigram"])
def test_too_small_vocab_is_an_error_that_says_raise_vocab_size(docstrings, kind):
    with pytest.raises(ValueError, match="--vocab-size"):
        train_tokenizer(docstrings[:100], kind, vocab_size=40, model_max_length=128)


def test_default_kind_follows_the_objective():
    assert default_tokenizer_kind("clm") == "bpe"
    assert default_tokenizer_kind("mlm") == "wordpiece"
    assert default_tokenizer_kind("simcse") == "wordpiece"


def test_load_tokenizer_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_folder"):
        load_tokenizer(str(tmp_path / "missing_folder"))
    (tmp_path / "not_a_tokenizer").mkdir()
    with pytest.raises(ValueError, match="not_a_tokenizer"):
        load_tokenizer(str(tmp_path / "not_a_tokenizer"))


def test_load_tokenizer_sets_a_missing_pad_token(saved, tmp_path):
    """The vocabulary's own padding token where it has one (not [UNK], which MLM would then never mask), else eos."""
    for kind, expected in (("bpe", "<|pad|>"), ("wordpiece", "[PAD]")):
        tokenizer = AutoTokenizer.from_pretrained(saved[kind])
        no_pad = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|endoftext|>",
                                         unk_token="[UNK]")
        no_pad.save_pretrained(tmp_path / kind)
        assert AutoTokenizer.from_pretrained(tmp_path / kind).pad_token is None
        assert load_tokenizer(str(tmp_path / kind)).pad_token == expected
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator([SENTENCE] * 3, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"]))
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(tmp_path / "eos")
    assert load_tokenizer(str(tmp_path / "eos")).pad_token == "<|endoftext|>"


def test_load_tokenizer_refuses_a_file_and_a_folder_without_tokenizer_files(saved, tmp_path):
    """A model folder saved without its tokenizer: AutoTokenizer would build an empty BERT tokenizer from
    config.json alone (every text [UNK]) and MLM would train on nothing but NaN losses."""
    with pytest.raises(ValueError, match="is a file; give the folder"):
        load_tokenizer(str(Path(saved["bpe"]) / "tokenizer.json"))
    BertConfig(vocab_size=100).save_pretrained(tmp_path / "model-only")
    with pytest.raises(ValueError, match="holds no tokenizer files.*--tokenizer <folder or Hub id>"):
        load_tokenizer(str(tmp_path / "model-only"), "--init-from")


def test_check_tokenizer_fits(wordpiece, bpe):
    check_tokenizer_fits(wordpiece, vocab_size=len(wordpiece), objective="mlm")
    check_tokenizer_fits(bpe, vocab_size=len(bpe) + 10, objective="clm")
    with pytest.raises(ValueError) as error:
        check_tokenizer_fits(wordpiece, vocab_size=len(wordpiece) - 1, objective="mlm")
    message = str(error.value)
    assert str(len(wordpiece)) in message and str(len(wordpiece) - 1) in message
    assert f"vocab_size={len(wordpiece)}" in message
    for objective in ("mlm", "mlm_wwm", "simcse"):
        with pytest.raises(ValueError, match="no mask token"):
            check_tokenizer_fits(bpe, vocab_size=len(bpe), objective=objective)


_TRAIN_AND_HASH = """
import hashlib, json, sys
from hfssl.data.tokenizer import train_tokenizer
texts = json.loads(open(sys.argv[1], encoding="utf-8").read())
for kind in ("wordpiece", "bpe"):
    tokenizer = train_tokenizer(texts, kind, vocab_size=1200, model_max_length=128)
    print(kind, hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest())
"""


def test_trained_tokenizer_is_the_same_in_every_process(docstrings, tmp_path):
    """The `tokenizers` WordPiece trainer numbers pieces in hash-map order, which changes between processes, and
    breaks ties between merges by those numbers: on this corpus nearly every process learned a different
    vocabulary before hfssl fixed the numbering. BPE's trainer is repeatable by itself. Three processes at once,
    each training both kinds on the same texts (importing hfssl is most of a process's time)."""
    import json
    import subprocess
    import sys

    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(docstrings[:800]), encoding="utf-8")
    processes = [subprocess.Popen([sys.executable, "-c", _TRAIN_AND_HASH, str(texts)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(dict(line.split() for line in out.splitlines()))
    for kind in ("wordpiece", "bpe"):
        assert len({output[kind] for output in outputs}) == 1, kind


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_training_prints_nothing_when_not_on_a_terminal(docstrings, kind, capfd):
    """The `tokenizers` progress bars print blank lines to standard output where they cannot draw (a pipe, a log)."""
    train_tokenizer(docstrings[:50], kind, vocab_size=300, model_max_length=64)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_wordpiece_reads_a_one_shot_iterator_like_a_list(docstrings):
    texts = docstrings[:300]
    from_list = train_tokenizer(texts, "wordpiece", vocab_size=400, model_max_length=64)
    from_iterator = train_tokenizer(iter(texts), "wordpiece", vocab_size=400, model_max_length=64)
    assert from_list.get_vocab() == from_iterator.get_vocab()
    # The continuation pieces are plain tokens again: only the five BERT specials are special.
    assert sorted(from_list.all_special_tokens) == ["[CLS]", "[MASK]", "[PAD]", "[SEP]", "[UNK]"]
    assert from_list.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(from_list.added_tokens_decoder) == 5
    assert from_list.tokenize("x##ab")[:3] == ["x", "#", "#"]  # "##a" in a text is no special token
