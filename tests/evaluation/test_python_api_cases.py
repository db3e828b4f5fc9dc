"""hfssl.evaluation used from Python with one's own encoders and data: stock transformers models, tokenizers that
pad on the left or have no pad token, ClassLabels that disagree between splits, and probe inputs of unusual types."""

from __future__ import annotations

import copy
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfssl.evaluation import (
    DataOptions,
    evaluate_run,
    extract_features,
    input_encoder,
    knn_predict,
    knn_probe,
    learning_curve,
    linear_probe,
    load_labeled_data,
    plot_accuracies,
    plot_label_efficiency,
    train_supervised,
)

from .conftest import sentiment_texts, separable_blobs


def _bert(vocab_size: int):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def gpt2_style():
    """A tiny GPT-2 and a byte-level BPE tokenizer that, like GPT-2's, has no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(sentiment_texts(200)[0], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", model_max_length=64)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64, bos_token_id=0,
                        eos_token_id=0)
    return GPT2Model(config).eval(), tokenizer


# ---------------------------------------------------------------------------------------------- features


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_left_padding_tokenizer_gives_each_text_the_features_it_has_alone(tiny_tokenizer, pooling):
    """Left padding shifted BERT's positions and made "cls" read a pad token: features depended on the batch."""
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.padding_side = "left"
    model = _bert(len(tokenizer))
    texts = ["good", "the movie was a plot and story with an actor very quite dull"] + sentiment_texts(4)[0]
    to_inputs = input_encoder(model, tokenizer)
    batched = extract_features(model, texts, to_inputs, pooling=pooling, batch_size=len(texts), progress=False)
    alone = extract_features(model, texts, to_inputs, pooling=pooling, batch_size=1, progress=False)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_a_tokenizer_without_pad_token_is_padded_and_the_padding_is_left_out(gpt2_style):
    model, tokenizer = gpt2_style
    assert tokenizer.pad_token is None
    texts = ["good", "the movie was a plot and story with an actor"] + sentiment_texts(3)[0]
    to_inputs = input_encoder(model, tokenizer)
    batched = extract_features(model, texts, to_inputs, pooling="mean", batch_size=len(texts), progress=False)
    alone = extract_features(model, texts, to_inputs, pooling="mean", batch_size=1, progress=False)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    assert tokenizer.pad_token is None  # the caller's tokenizer is left as it was


def test_the_supervised_baseline_trains_a_gpt2_without_pad_token(gpt2_style):
    model, tokenizer = gpt2_style
    texts, names = sentiment_texts(24)
    labels = np.array([["neg", "pos"].index(n) for n in names])
    result = train_supervised(model.config, texts, labels, texts[:8], labels[:8], input_encoder(model, tokenizer),
                              modality="text", num_labels=2, epochs=1, min_steps=2, batch_size=8)
    assert 0 <= result["accuracy"] <= 1 and model.config.pad_token_id is None


# ---------------------------------------------------------------------------------------------- labels


def _splits(train_labels, test_labels, train_feature=None, test_feature=None) -> datasets.DatasetDict:
    texts = sentiment_texts(len(train_labels) + len(test_labels))[0]

    def split(labels, feature, offset):
        features = datasets.Features({"text": datasets.Value("string"), "label": feature}) if feature else None
        rows = {"text": texts[offset:offset + len(labels)], "label": labels}
        return datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(train=split(train_labels, train_feature, 0),
                                test=split(test_labels, test_feature, len(train_labels)))


NEG_POS = datasets.ClassLabel(names=["neg", "pos"])
POS_NEG = datasets.ClassLabel(names=["pos", "neg"])
TRAIN_NAMES = ["neg", "pos"] * 6
TEST_NAMES = ["pos", "pos", "neg", "pos", "neg", "neg"]


@pytest.mark.parametrize("train, test, expected_rows_label", [
    # the test ClassLabel lists the names in another order: its id 0 is "pos"
    ((NEG_POS.str2int(TRAIN_NAMES), NEG_POS), (POS_NEG.str2int(TEST_NAMES), POS_NEG), NEG_POS.str2int(TEST_NAMES)),
    ((NEG_POS.str2int(TRAIN_NAMES), NEG_POS), (TEST_NAMES, None), NEG_POS.str2int(TEST_NAMES)),  # names beside ids
    ((TRAIN_NAMES, None), (NEG_POS.str2int(TEST_NAMES), NEG_POS), TEST_NAMES),  # ids beside names
])
def test_a_class_has_one_id_whatever_each_split_stores(train, test, expected_rows_label):
    data = load_labeled_data(DataOptions(dataset=_splits(train[0], test[0], train[1], test[1])), "text")
    assert data.class_names == ["neg", "pos"]
    assert [data.class_names[i] for i in data.test.labels] == TEST_NAMES
    assert [data.class_names[i] for i in data.train.labels] == TRAIN_NAMES
    assert data.rows["test"]["label"] == expected_rows_label  # what the finetune protocol reads


def test_test_labels_that_are_not_names_or_ids_of_the_training_classlabel_are_named():
    with pytest.raises(ValueError, match=r"'maybe'\) are neither names nor ids.*cast_column"):
        load_labeled_data(DataOptions(dataset=_splits(NEG_POS.str2int(TRAIN_NAMES), ["neg", "maybe"], NEG_POS)), "text")


# ---------------------------------------------------------------------------------------------- probes


def test_bfloat16_tensors_and_whole_number_or_bool_labels_are_probed():
    x, y = separable_blobs(30, classes=2, dim=8)
    features = torch.from_numpy(x).to(torch.bfloat16)
    assert linear_probe(features, y.astype(float), features, y.astype(float))["accuracy"] > 0.95
    assert knn_probe(features, y.astype(bool), features, y.astype(bool), ks=[5])["accuracy"] > 0.95
    with pytest.raises(ValueError, match="not whole numbers"):
        linear_probe(x, y + 0.5, x, y)


def test_knn_probe_takes_any_integer_class_ids():
    x, y = separable_blobs(30, classes=3, dim=8)
    ids = np.array([-1, 3, 7])[y]
    by_ids = knn_probe(x, ids, x, ids, ks=[5])
    assert by_ids["by_k"] == knn_probe(x, y, x, y, ks=[5])["by_k"] and by_ids["accuracy"] > 0.95


def test_knn_predict_takes_arrays_and_refuses_nan_and_bad_shapes_with_the_fix():
    x, y = separable_blobs(20, classes=2, dim=8)
    predicted = knn_predict(x, y, x, k=3)  # numpy arrays, not only tensors
    assert (predicted.numpy() == y).all()
    assert knn_predict(x, y, x[:0], k=3).shape == (0,)
    broken = x.copy()
    broken[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(torch.from_numpy(broken), torch.from_numpy(y), torch.from_numpy(x), k=3)
    with pytest.raises(ValueError, match="same encoder"):
        knn_predict(x, y, x[:, :4], k=3)
    with pytest.raises(ValueError, match=r"class ids in \[0, 1\), got -1..0"):
        knn_predict(x, y - 1, x, k=3)
    with pytest.raises(ValueError, match="same encoder"):
        linear_probe(x, y, x[:, :4], y)


# ---------------------------------------------------------------------------------------------- curves


def test_learning_curve_merges_duplicate_fractions_and_takes_numpy_fractions():
    x, y = separable_blobs(20, classes=2, dim=8)

    def score(subset, seed):
        return linear_probe(x[subset], y[subset], x, y, seed=seed)["accuracy"]
    points = learning_curve(y, np.array([0.5, 0.25, 0.5]), [0, 1], score, progress=False)
    assert [p["fraction"] for p in points] == [0.25, 0.5]
    assert points == learning_curve(y, [0.25, 0.5], [0, 1], score, progress=False)  # same seeds, same numbers
    with pytest.raises(ValueError, match="No seeds"):
        learning_curve(y, [0.5], [], score, progress=False)


# ---------------------------------------------------------------------------------------------- plots


def test_plots_show_missing_values_and_keep_long_names_readable(tmp_path: Path):
    long = "an arm with a very long descriptive name " * 8
    bars = plot_accuracies({"finetune": None, "nan": float("nan"), long: 0.5, long + "!": 0.6}, tmp_path / "a.png")
    curve = plot_label_efficiency({long: [{"examples": 10, "mean": float("nan"), "std": float("nan")},
                                          {"examples": 100, "mean": 0.7, "std": 0.0}], "empty": []}, tmp_path / "c.png")
    for path in (bars, curve):
        width, height = Image.open(path).size
        assert width < 1200 and height < 800


# ---------------------------------------------------------------------------------------------- evaluate_run


def test_a_bare_save_pretrained_folder_gets_the_way_to_evaluate_it(tmp_path, tiny_tokenizer):
    model = _bert(len(tiny_tokenizer))
    model.save_pretrained(tmp_path / "bert")
    with pytest.raises(FileNotFoundError, match=r"holds a model itself.*ln -s"):
        evaluate_run(tmp_path / "bert", "knn", dataset="digits", progress=False)


def test_a_stock_encoder_records_the_pooling_it_was_probed_with(tmp_path, tiny_tokenizer):
    model = _bert(len(tiny_tokenizer))
    model.save_pretrained(tmp_path / "run" / "model")
    tiny_tokenizer.save_pretrained(tmp_path / "run" / "model")
    texts, labels = sentiment_texts(60)
    data = datasets.Dataset.from_dict({"text": texts, "label": labels})
    result = evaluate_run(tmp_path / "run", "knn", dataset=data, k=[5], progress=False, print_table=False)
    assert result["model"]["features"].startswith("pooling=mean")


def test_a_supervised_baseline_without_a_head_is_refused_before_any_work(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=64)
    CLIPVisionModel(config).save_pretrained(tmp_path / "clip" / "model")
    with pytest.raises(ValueError, match=r"needs an AutoModelForImageClassification for CLIPVisionConfig"):
        evaluate_run(tmp_path / "clip", "knn", dataset="no-such-dataset", baselines=["supervised"], progress=False)


def test_cls_pooling_of_a_causal_model_is_warned_about(caplog):
    """The first token of a left-to-right model has seen only itself: its features describe no text."""
    from transformers import GPT2Config, GPT2Model

    from hfssl.evaluation.features import extract_features, is_causal_model

    gpt2 = GPT2Model(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=16))
    assert is_causal_model(gpt2) and not is_causal_model(torch.nn.Linear(2, 2))
    inputs = lambda rows: {"input_ids": torch.ones(len(rows), 4, dtype=torch.long),  # noqa: E731
                           "attention_mask": torch.ones(len(rows), 4, dtype=torch.long)}
    extract_features(gpt2, ["a", "b"], inputs, pooling="cls", progress=False)
    assert "pooling='cls' reads the first token, which a causal" in caplog.text
    caplog.clear()
    extract_features(gpt2, ["a", "b"], inputs, pooling="mean", progress=False)
    assert "causal" not in caplog.text
