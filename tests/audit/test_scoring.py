"""The likelihood scores behind the text audits, checked against direct computations with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfssl.audit import continuation_logprobs, masked_option_logprobs
from hfssl.models import HfsslTextForCausalLM, HfsslTextForMaskedLM

from ..cards import one_torch_thread, text_config, tiny_tokenizer  # noqa: F401


@pytest.fixture(scope="module")
def mlm():
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer("wordpiece")
    return HfsslTextForMaskedLM(text_config(tokenizer)).eval(), tokenizer


@pytest.fixture(scope="module")
def clm():
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer("bpe")
    return HfsslTextForCausalLM(text_config(tokenizer, is_causal=True)).eval(), tokenizer


def test_masked_option_is_the_mean_pseudo_log_likelihood_of_its_pieces(mlm):
    model, tokenizer = mlm
    pieces_of = lambda word: tokenizer(word, add_special_tokens=False)["input_ids"]  # noqa: E731
    # A word the 160-token vocabulary splits (which one varies: tokenizer training is not bit-reproducible).
    option = next(w for w in ("dictionary", "occurrence", "ascending", "containing", "iterable")
                  if len(pieces_of(w)) > 1 and tokenizer.unk_token_id not in pieces_of(w))
    sentence = "Return the [MASK] of the list."
    ids = tokenizer(sentence.replace("[MASK]", option))["input_ids"]
    pieces = pieces_of(option)
    start = ids.index(pieces[0], 2)  # after [CLS] and "Return"
    assert ids[start:start + len(pieces)] == pieces
    expected = []
    for p in range(start, start + len(pieces)):
        masked = torch.tensor([ids])
        masked[0, p] = tokenizer.mask_token_id
        with torch.no_grad():
            expected.append(model(input_ids=masked).logits[0, p].log_softmax(-1)[ids[p]].item())
    got = masked_option_logprobs(model, tokenizer, [(sentence, option), (sentence, "the")])
    assert got[0] == pytest.approx(np.mean(expected), abs=1e-4)
    ids = tokenizer(sentence.replace("[MASK]", "the"))["input_ids"]
    masked = torch.tensor([ids])
    masked[0, 2] = tokenizer.mask_token_id  # [CLS] Return [the] ...: a single token, one masked prediction
    with torch.no_grad():
        single = model(input_ids=masked).logits[0, 2].log_softmax(-1)[ids[2]].item()
    assert len(pieces_of("the")) == 1 and got[1] == pytest.approx(single, abs=1e-4)


def test_continuation_log_prob_is_the_mean_next_token_log_prob(clm):
    model, tokenizer = clm
    context, continuation = "Return the", " value of the key"
    context_ids = [tokenizer.bos_token_id] + tokenizer(context)["input_ids"]
    full = [tokenizer.bos_token_id] + tokenizer(context + continuation)["input_ids"]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([full])).logits[0].log_softmax(-1)
    expected = np.mean([logp[i - 1, full[i]].item() for i in range(len(context_ids), len(full))])
    got = continuation_logprobs(model, tokenizer, [(context, continuation), ("", "Return the value.")])
    assert got[0] == pytest.approx(expected, abs=1e-4)
    sentence = [tokenizer.bos_token_id] + tokenizer("Return the value.")["input_ids"]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([sentence])).logits[0].log_softmax(-1)
    assert got[1] == pytest.approx(np.mean([logp[i - 1, sentence[i]].item() for i in range(1, len(sentence))]),
                                   abs=1e-4)


def test_batching_and_padding_do_not_change_scores(clm, mlm):
    model, tokenizer = clm
    items = [("", "Return."), ("Split the string", " at the first occurrence of sep, and return a tuple.")]
    together = continuation_logprobs(model, tokenizer, items)
    alone = [continuation_logprobs(model, tokenizer, [item])[0] for item in items]
    assert together == pytest.approx(alone, abs=1e-4)
    model, tokenizer = mlm
    items = [("[MASK].", "Return"), ("Open file and [MASK] a stream upon failure of the call.", "return")]
    assert masked_option_logprobs(model, tokenizer, items) == pytest.approx(
        [masked_option_logprobs(model, tokenizer, [item])[0] for item in items], abs=1e-4)


def test_masked_audits_need_a_mask_token(clm):
    model, tokenizer = clm
    with pytest.raises(ValueError, match="no mask token"):
        masked_option_logprobs(model, tokenizer, [("a [MASK] b", "c")])


def test_a_sentence_longer_than_the_model_is_not_scored_but_a_long_continuation_is_in_part(clm):
    """Options that differ inside a sentence would tie if the sentence were cut before the difference, so a whole
    sentence over the model's 64 positions is nan (counted as unscored); a continuation after a context differs from
    its first token, so the part of it that fits is scored."""
    model, tokenizer = clm
    filler = " and the list" * 40  # well over 64 tokens
    got = continuation_logprobs(model, tokenizer, [("", "Return the key" + filler), ("", "Return the value" + filler),
                                                   ("Return the", " value" + filler), ("Return the" + filler, " key")])
    assert np.isnan(got[0]) and np.isnan(got[1])  # before: both scored on the same cut prefix, an exact tie
    assert np.isfinite(got[2]) and np.isnan(got[3])
