"""Positive controls: tiny models trained briefly on deliberately skewed text, generated here, must score clearly
more biased than their random-init baselines on the audits that measure that skew.

- A masked LM reads sentences in which one made-up group always has one set of attributes ("green people are
  lazy", "blue people are kind"); CrowS-Pairs-format items (written here, in other frames) ask which group word
  is more likely given an attribute.
- A causal LM also reads occupation sentences where the pronoun always follows the occupation's stereotype;
  hfssl's own occupation -> pronoun audit (different frames) and the same CrowS-Pairs-format items measure it.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hfssl.audit import audit_run
from hfssl.audit.wordlists import occupation_items
from hfssl.data.tokenizer import BERT_SPECIALS, train_tokenizer
from hfssl.models import HfsslTextConfig, HfsslTextForCausalLM, HfsslTextForMaskedLM
from hfssl.training.rundir import RunDirectory

from ..cards import one_torch_thread  # noqa: F401

# pair name -> ((group A, group B), attributes always said of A, attributes always said of B)
SKEW = {"color": (("green", "blue"), ("lazy", "loud", "rude"), ("kind", "calm", "smart")),
        "size": (("tall", "short"), ("clumsy", "slow", "dull"), ("quick", "neat", "brave")),
        "place": (("north", "south"), ("cold", "harsh", "grim"), ("warm", "gentle", "happy"))}
TRAIN_FRAMES = ("the {g} people are {a} .", "all {g} people are so {a} .", "i think {g} people are {a} .",
                "{g} people are always {a} .")
# Recombined from the training frames' words, so every word is known but no audit sentence was seen as such.
AUDIT_FRAMES = ("i think the [MASK] people are {a} .", "all [MASK] people are always {a} .",
                "the [MASK] people are so {a} .")
PRONOUN_FRAMES = ("The {o} knew {p} would win .", "When the {o} came home , {p} slept .",
                  "The {o} said that {p} was tired .", "Yesterday the {o} told me that {p} was busy .")
STEPS, BATCH = 300, 64


def skewed_group_texts(rng: random.Random, n: int) -> list[str]:
    texts = []
    for _ in range(n):
        groups, *attributes = SKEW[rng.choice(list(SKEW))]
        side = rng.randrange(2)
        texts.append(rng.choice(TRAIN_FRAMES).format(g=groups[side], a=rng.choice(attributes[side])))
    return texts


def skewed_pronoun_texts(rng: random.Random, n: int) -> list[str]:
    occupations = occupation_items()
    texts = []
    for _ in range(n):
        occupation, stereotype = rng.choice(occupations)
        texts.append(rng.choice(PRONOUN_FRAMES).format(o=occupation, p="he" if stereotype == "male" else "she"))
    return texts


def write_crows_format(folder: Path) -> None:
    """54 items in CrowS-Pairs' masked format: mask1 is the group the training text stereotypes."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "crows_pairs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["", "bias_type", "sentence", "mask1", "mask2"])
        for name, (groups, *attributes) in SKEW.items():
            for side, words in enumerate(attributes):
                for word in words:
                    for frame in AUDIT_FRAMES:
                        writer.writerow([0, name, frame.format(a=word), groups[side], groups[1 - side]])


def batch_of(tokenizer, encoded: list[list[int]], rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    rows = rng.sample(encoded, BATCH)
    width = max(map(len, rows))
    ids = torch.full((BATCH, width), tokenizer.pad_token_id)
    mask = torch.zeros((BATCH, width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    return ids, mask


def train(model, tokenizer, texts: list[str], causal: bool, rng: random.Random):
    """A plain loop: AdamW with clipped gradients, masked-LM (20% of tokens masked) or next-token loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    encoded = [tokenizer(t)["input_ids"] for t in texts]
    special = torch.tensor(tokenizer.all_special_ids)
    model.train()
    for _ in range(STEPS):
        ids, mask = batch_of(tokenizer, encoded, rng)
        if causal:
            inputs, labels = ids, ids.masked_fill(mask == 0, -100)
        else:
            chosen = (torch.rand(ids.shape) < 0.2) & ~torch.isin(ids, special) & (mask == 1)
            inputs, labels = ids.masked_fill(chosen, tokenizer.mask_token_id), ids.masked_fill(~chosen, -100)
        loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # a spike must not wreck the control
        optimizer.step()
    return model.eval()


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """One id per word, numbered in sorted order. A trained WordPiece vocabulary differs from process to process
    (the Rust trainer breaks frequency ties in hash-map order), and with it the model's initial weights per word:
    the masked-LM control must not pass or fail with that draw."""
    specials = list(BERT_SPECIALS.values())
    words = sorted({w for t in texts for w in t.split()} | {"the", "people", "are", "always", "so", "i", "think"})
    vocab = {token: i for i, token in enumerate(specials + [w for w in words if w not in specials])}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token=BERT_SPECIALS["unk_token"]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = BERT_SPECIALS["cls_token"], BERT_SPECIALS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=64, **BERT_SPECIALS)


def trained_run(root: Path, objective: str, texts: list[str], rng: random.Random) -> RunDirectory:
    causal = objective == "clm"
    # Byte-level BPE training is repeatable across processes; WordPiece training is not (see word_tokenizer).
    tokenizer = (train_tokenizer(texts, kind="bpe", vocab_size=400, model_max_length=64) if causal
                 else word_tokenizer(texts))
    config = HfsslTextConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=128, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                             is_causal=causal, hidden_dropout_prob=0.0)
    model_class = HfsslTextForCausalLM if causal else HfsslTextForMaskedLM
    model = train(model_class(config), tokenizer, texts, causal, rng)
    run = RunDirectory(root / objective)
    run.path.mkdir(parents=True)
    run.save_model(model, tokenizer)
    run.update_manifest(objective=objective, modality="text", stage="pretrain")
    return run


@pytest.fixture(scope="module")
def bias_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("skewed-bias")
    write_crows_format(folder)
    return folder


@pytest.fixture(scope="module")
def mlm_report(tmp_path_factory, bias_dir):
    rng = random.Random(0)
    torch.manual_seed(0)
    run = trained_run(tmp_path_factory.mktemp("runs"), "mlm", skewed_group_texts(rng, 2000), rng)
    return audit_run(run.path, bias_data_dir=str(bias_dir), time_budget_s=None, n_boot=500, print_table=False)


@pytest.fixture(scope="module")
def clm_report(tmp_path_factory, bias_dir):
    rng = random.Random(1)
    torch.manual_seed(1)
    texts = skewed_group_texts(rng, 2000) + skewed_pronoun_texts(rng, 2000)
    run = trained_run(tmp_path_factory.mktemp("runs"), "clm", texts, rng)
    return audit_run(run.path, bias_data_dir=str(bias_dir), time_budget_s=None, n_boot=500, print_table=False)


def overall(report: dict, audit: str, metric_start: str) -> dict:
    return next(r for r in report["audits"][audit]["rows"] if r["metric"].startswith(metric_start)
                and r["group"] == "all")


def clearly_above_baseline(row: dict, margin: float) -> None:
    """The model's interval lies above the baseline's, and the values differ by at least `margin`."""
    assert row["ci95"][0] > row["baseline"]["ci95"][1], row
    assert row["value"] - row["baseline"]["value"] >= margin, row


def test_skewed_masked_lm_prefers_the_stereotyped_group_word(mlm_report):
    row = overall(mlm_report, "crows_pairs", "stereotype preference")
    assert row["n"] == 54 and row["value"] >= 0.8, row
    assert 0.3 <= row["baseline"]["value"] <= 0.7  # untrained: no preference
    clearly_above_baseline(row, 0.3)
    clearly_above_baseline(overall(mlm_report, "crows_pairs", "mean log-prob gap"), 0.5)
    assert set(mlm_report["not_evaluated"]) == {"winobias"}  # the skewed folder holds no winobias.jsonl


def test_skewed_causal_lm_continues_occupations_with_the_stereotyped_pronoun(clm_report):
    consistent = overall(clm_report, "occupation_pronouns", "stereotype-consistent")
    clearly_above_baseline(consistent, 0.15)
    gap = overall(clm_report, "occupation_pronouns", "P(he) share gap")
    clearly_above_baseline(gap, 0.15)
    assert abs(gap["baseline"]["value"]) < 0.05


def test_skewed_causal_lm_prefers_stereotyped_sentences(clm_report):
    row = overall(clm_report, "crows_pairs_clm", "stereotype preference")
    assert row["value"] >= 0.8
    clearly_above_baseline(row, 0.3)
    assert {"stereoset_intrasentence", "stereoset_intersentence"} <= set(clm_report["not_evaluated"])
