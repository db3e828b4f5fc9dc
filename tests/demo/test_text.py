"""Fill-mask and streamed generation, called directly (no server)."""

from __future__ import annotations

import pytest
import torch

from hfssl.demo.inputs import DemoInputError, Limits
from hfssl.demo.text import FillMaskTab, GenerationTab, predict_masked, stream_generation, with_mask_token


def test_predict_masked_matches_the_model_softmax(loaded_mlm):
    model, tokenizer = loaded_mlm.model, loaded_mlm.tokenizer
    text = "Return the [MASK] of the list."
    [row] = predict_masked(model, tokenizer, text, top_k=4)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    position = int((ids[0] == tokenizer.mask_token_id).nonzero())
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, position]
    logits[tokenizer.all_special_ids] = float("-inf")
    probs, best = logits.softmax(-1).topk(4)
    assert [p.token for p in row] == tokenizer.convert_ids_to_tokens(best.tolist())
    assert [p.probability for p in row] == pytest.approx(probs.tolist(), rel=1e-5)
    assert [p.rank for p in row] == [1, 2, 3, 4] and all(p.mask == 1 for p in row)
    assert all(p.token not in tokenizer.all_special_tokens for p in row)
    assert "[MASK]" not in row[0].text and row[0].text.startswith("Return the")


def test_several_masks_and_mask_aliases(loaded_mlm):
    model, tokenizer = loaded_mlm.model, loaded_mlm.tokenizer
    assert with_mask_token("a <mask> b [mask]", "[MASK]") == "a [MASK] b [MASK]"
    rows = predict_masked(model, tokenizer, "Open the <mask> and [MASK] it.", top_k=2)
    assert [len(r) for r in rows] == [2, 2] and [r[0].mask for r in rows] == [1, 2]
    # In each filled-in text, the other mask holds its best candidate.
    ids = tokenizer("Open the [MASK] and [MASK] it.", return_tensors="pt")["input_ids"][0]
    first, second = (ids == tokenizer.mask_token_id).nonzero().flatten().tolist()
    ids[first] = tokenizer.convert_tokens_to_ids(rows[0][1].token)
    ids[second] = tokenizer.convert_tokens_to_ids(rows[1][0].token)
    assert rows[0][1].text == tokenizer.decode(ids, skip_special_tokens=True)
    with pytest.raises(DemoInputError, match="at most 5"):
        predict_masked(model, tokenizer, " ".join(["[MASK]"] * 6), top_k=2)
    with pytest.raises(DemoInputError, match="Write \\[MASK\\]"):
        predict_masked(model, tokenizer, "no mask here", top_k=2)


def test_fill_mask_handler_outputs_and_limit_messages(loaded_mlm):
    tab = FillMaskTab(loaded_mlm, Limits(max_text_chars=60))
    assert all("[MASK]" in example for example in tab.examples())
    label, rows, message = tab.predict(tab.examples()[0], 3)
    assert len(label) == 3 and len(rows) == 3 and message.startswith("Top 3 for 1 mask(s)")
    assert max(label.values()) == pytest.approx(rows[0][3], abs=1e-4) and rows[0][2] in label
    label, rows, message = tab.predict("x" * 61 + " [MASK]", 3)
    assert (label, rows) == (None, []) and "at most 60" in message
    assert "empty" in tab.predict("", 3)[-1]
    too_long = " ".join(["word"] * 200) + " [MASK]"
    assert "more than the model's 128 positions" in FillMaskTab(loaded_mlm, Limits()).predict(too_long, 3)[-1]


def test_generation_streams_and_is_reproducible(loaded_clm):
    model, tokenizer = loaded_clm.model, loaded_clm.tokenizer
    steps = list(stream_generation(model, tokenizer, "Return the", max_new_tokens=12, temperature=1.0, top_p=0.9,
                                   seed=3))
    assert len(steps) >= 2 and all(b.startswith(a) for a, b in zip(steps, steps[1:]))
    again = list(stream_generation(model, tokenizer, "Return the", 12, 1.0, 0.9, seed=3))
    assert again[-1] == steps[-1]


def test_greedy_generation_equals_generate(loaded_clm):
    model, tokenizer = loaded_clm.model, loaded_clm.tokenizer
    text = list(stream_generation(model, tokenizer, "Open the", max_new_tokens=8, temperature=0.0))[-1]
    ids = tokenizer("Open the", return_tensors="pt")["input_ids"]
    expected = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert text == tokenizer.decode(expected[0, ids.shape[1]:], skip_special_tokens=True)


def test_generation_handler_reports_bad_inputs(loaded_clm):
    tab = GenerationTab(loaded_clm, Limits(max_text_chars=50, max_new_tokens=16))
    outputs = list(tab.generate("Return the", 4, 0.0, 1.0, 0))
    assert outputs[0] == ("Return the", "Generating…") and outputs[-1][1].startswith("Done in")
    assert outputs[-1][0].startswith("Return the")
    assert list(tab.generate("Return the", 17, 0.5, 1.0, 0)) == [
        ("", "⚠️ The number of new tokens must be a whole number from 1 to 16; got 17.")]
    assert "at most 50" in list(tab.generate("y" * 51, 4, 0.5, 1.0, 0))[-1][1]
    assert "top-p" in list(tab.generate("Return", 4, 0.5, 0.0, 0))[-1][1]
    long_prompt = GenerationTab(loaded_clm, Limits(max_text_chars=5000)).generate(" the" * 120, 16, 0.5, 1.0, 0)
    assert "more than the model's 128 positions" in list(long_prompt)[-1][1]


@pytest.mark.parametrize(("args", "expected"), [
    ((4, 0.5, 1.0, None), "seed must be a whole number"),  # a cleared number box sends None
    ((None, 0.5, 1.0, 0), "number of new tokens"),
    ((4, None, 1.0, 0), "temperature"),
    ((4, 0.5, float("nan"), 0), "top-p must be a number"),
    ((4, 0.5, 1.0, 2**70), "seed must be a whole number from 0 to 4,294,967,295"),
])
def test_generation_handler_refuses_missing_or_out_of_range_numbers(loaded_clm, args, expected):
    outputs = list(GenerationTab(loaded_clm, Limits()).generate("Return the", *args))
    assert outputs[-1][0] == "" and expected in outputs[-1][1]


@pytest.mark.parametrize("top_k", [0, None, 21, 2.5])
def test_fill_mask_handler_refuses_a_top_k_outside_the_slider(loaded_mlm, top_k):
    label, rows, status = FillMaskTab(loaded_mlm, Limits()).predict("Return the [MASK] of the list.", top_k)
    assert label is None and rows == [] and "top-k) must be a whole number from 1 to 20" in status


def _byte_bpe(post_processor: str | None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["Return the value.", "Open the file and return it."] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if post_processor:
        backend.post_processor = processors.TemplateProcessing(
            single=post_processor, special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", pad_token="<pad>", eos_token="</s>")


@pytest.mark.parametrize("template, kept", [("<s> $A </s>", "<s>"), ("<s> $A", "<s>"), ("$A </s>", ""), (None, "")])
def test_a_prompt_is_encoded_without_the_eos_an_encoders_tokenizer_appends(template, kept):
    """After eos a next-token model starts a new document: RoBERTa's tokenizer (<s> text </s>) would make the
    demo ignore the prompt. What the tokenizer puts before a text stays."""
    from hfssl.demo.text import encode_prompt

    tokenizer = _byte_bpe(template)
    ids = encode_prompt(tokenizer, "Return the")["input_ids"]
    assert tokenizer.decode(ids[0]) == kept + "Return the"
    assert ids.shape == encode_prompt(tokenizer, "Return the")["attention_mask"].shape

