"""Text demos: fill-mask for masked LMs and streamed generation for next-token LMs.

The pure functions (`predict_masked`, `stream_generation`) take a model and a tokenizer and are what the tests
and other code call; the `...Tab` classes add the Gradio components and the event handlers around them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TextIteratorStreamer

from .inputs import (
    DemoInputError,
    Limits,
    check_number,
    check_text,
    reports_input_errors,
    runnable_examples,
)
from .loading import LoadedModel

MASK_ALIASES = ("[MASK]", "<mask>")  # in any letter case
_MASK_SPELLINGS = re.compile("|".join(re.escape(alias) for alias in MASK_ALIASES), re.IGNORECASE)
MAX_MASKS = 5
MAX_TOP_K = 20
MAX_SEED = 2**32 - 1
MAX_TEMPERATURE = 2.0
FILL_MASK_COLUMNS = ["mask", "rank", "token", "probability", "text"]
GENERATION_TIMEOUT_S = 120.0
FILL_MASK_TEMPLATES = (
    "Return the {mask} of the list.",
    "Open the {mask} and return a file object.",
    "Raise an {mask} if the value is not valid.",
)
GENERATION_PROMPTS = ("Return the", "This module provides", "Raise a ValueError if")


@dataclass(frozen=True)
class MaskPrediction:
    """One candidate for one mask: `mask` is its 1-based index among the masks, `text` the filled-in input."""

    mask: int
    rank: int
    token: str
    probability: float
    text: str


def with_mask_token(text: str, mask_token: str) -> str:
    """Write the common mask spellings ([MASK], <mask>, [mask], <MASK>, ...) as the tokenizer's own mask token."""
    return _MASK_SPELLINGS.sub(lambda _: mask_token, text)


def _check_length(num_tokens: int, model: PreTrainedModel, extra: int = 0) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and num_tokens + extra > limit:
        raise DemoInputError(
            f"The input is {num_tokens} tokens" + (f" plus {extra} new ones" if extra else "")
            + f", more than the model's {limit} positions. Shorten it."
        )


@torch.no_grad()
def predict_masked(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, top_k: int = 5
) -> list[list[MaskPrediction]]:
    """Top-k candidates for every mask token in `text`: one list per mask, best first.

    Special tokens are never proposed. In `MaskPrediction.text` the other masks hold their best candidate.
    """
    mask = tokenizer.mask_token
    text = with_mask_token(text, mask)
    encoded = tokenizer(text, return_tensors="pt", return_offsets_mapping=tokenizer.is_fast)
    ids = encoded["input_ids"]  # (1, t)
    _check_length(ids.shape[1], model)
    positions = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()  # (m,)
    if len(positions) == 0:
        example = FILL_MASK_TEMPLATES[0].format(mask=mask)
        raise DemoInputError(f"Write {mask} where a word is missing, for example: {example}")
    if len(positions) > MAX_MASKS:
        raise DemoInputError(f"The text has {len(positions)} {mask} tokens; use at most {MAX_MASKS}.")
    logits = model(input_ids=ids, attention_mask=encoded.get("attention_mask")).logits[0, positions]  # (m, vocab)
    logits[:, tokenizer.all_special_ids] = float("-inf")
    probs, candidates = logits.float().softmax(dim=-1).topk(min(top_k, logits.shape[-1]), dim=-1)  # (m, k) each
    spans = encoded["offset_mapping"][0, positions].tolist() if "offset_mapping" in encoded else None  # (m, 2)
    best = candidates[:, 0].tolist()
    results = []
    for m, position in enumerate(positions.tolist()):
        row = []
        for rank, (p, token_id) in enumerate(zip(probs[m].tolist(), candidates[m].tolist()), start=1):
            fills = best[:m] + [token_id] + best[m + 1:]
            if spans is None:  # a slow tokenizer has no offsets: decode (characters it does not know are lost)
                filled = ids.clone()
                filled[0, positions] = torch.tensor(fills)
                shown = tokenizer.decode(filled[0], skip_special_tokens=True)
            else:
                shown = _fill_text(tokenizer, text, spans, fills)
            row.append(MaskPrediction(m + 1, rank, tokenizer.convert_ids_to_tokens(token_id), p, shown))
        results.append(row)
    return results


def _fill_text(tokenizer: PreTrainedTokenizerBase, text: str, spans: list[list[int]], token_ids: list[int]) -> str:
    """`text` with the mask at each character span replaced by its token, everything else as the user typed it.

    Decoding the filled ids instead would drop every character the vocabulary lacks (emoji, CJK in an English
    vocabulary: [UNK], a special token), so "这是一个[MASK]测试" would come back as the candidate alone.
    A WordPiece continuation ("##ing") joins the word before it; other tokens keep the spacing around the mask.
    """
    pieces, end = [], 0
    for (start, stop), token_id in zip(spans, token_ids):
        token = tokenizer.convert_ids_to_tokens(token_id)
        before, original = text[end:start], text[start:stop]
        if token.startswith("##"):
            pieces += [before.rstrip(), token[2:]]
        else:
            lead = original[:len(original) - len(original.lstrip())]
            pieces += [before, lead + tokenizer.convert_tokens_to_string([token]).strip()]
        end = stop
    return "".join(pieces) + text[end:]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> dict[str, torch.Tensor]:
    """`prompt` as a next-token model continues it: with the tokens the tokenizer puts before a text (a bos) but
    none after it. Tokenizers made for encoders (RoBERTa's, BART's) end every text with eos, and after eos a
    model trained on documents that each end with one starts a new document instead of continuing the prompt."""
    ids = tokenizer(prompt)["input_ids"]
    text = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    starts = [i for i in range(len(ids) - len(text) + 1) if ids[i:i + len(text)] == text] if text else []
    if starts:
        ids = ids[:starts[0] + len(text)]
    input_ids = torch.tensor([ids])
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def stream_generation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 48,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> Iterator[str]:
    """Yield the continuation of `prompt` as it grows (text after the prompt only).

    temperature 0 decodes greedily; otherwise sampling with nucleus `top_p`, reproducible for a given `seed`.
    `generate` runs in a thread that feeds a `TextIteratorStreamer`; its errors are raised here.
    """
    inputs = encode_prompt(tokenizer, prompt)
    _check_length(inputs["input_ids"].shape[1], model, extra=max_new_tokens)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                     timeout=GENERATION_TIMEOUT_S)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {
        "do_sample": False}
    kwargs = {
        "input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask"),
        "max_new_tokens": max_new_tokens, "streamer": streamer, "pad_token_id": tokenizer.pad_token_id, **sampling,
    }
    errors: list[BaseException] = []
    thread = threading.Thread(target=_generate, args=(model, seed, kwargs, streamer, errors), daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text
    thread.join()
    if errors:
        raise ValueError(f"Generation failed: {errors[0]}") from errors[0]


def _generate(model: PreTrainedModel, seed: int, kwargs: dict, streamer: TextIteratorStreamer,
              errors: list[BaseException]) -> None:
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            model.generate(**kwargs)
    except Exception as error:  # reported by the consuming thread; end the stream so it does not wait
        errors.append(error)
        streamer.end()


class FillMaskTab:
    """Fill-mask: a text box with the mask token, top-k candidates and their probabilities."""

    def __init__(self, loaded: LoadedModel, limits: Limits):
        self.model, self.tokenizer, self.limits = loaded.model, loaded.tokenizer, limits
        self.mask = self.tokenizer.mask_token

    def examples(self) -> list[str]:
        return [template.format(mask=self.mask) for template in FILL_MASK_TEMPLATES]

    @reports_input_errors(lambda: (None, []))
    def predict(self, text: str, top_k: float) -> tuple[dict[str, float], list[list], str]:
        """Event handler: (first mask's {token: probability}, table rows FILL_MASK_COLUMNS, status)."""
        text = check_text(text, self.limits)
        top_k = int(check_number(top_k, "number of candidates (top-k)", 1, MAX_TOP_K, whole=True))
        start = time.perf_counter()
        results = predict_masked(self.model, self.tokenizer, text, top_k)
        rows = [[p.mask, p.rank, p.token, round(p.probability, 4), p.text] for row in results for p in row]
        first = {p.token: p.probability for p in results[0]}
        took = (time.perf_counter() - start) * 1000
        return first, rows, f"Top {top_k} for {len(results)} mask(s) in {took:.0f} ms."

    def render(self) -> None:
        import gradio as gr

        gr.Markdown(f"Type text with **{self.mask}** where a word is missing (up to {MAX_MASKS} masks); "
                    "the model ranks the candidates for each.")
        text = gr.Textbox(value=self.examples()[0], label=f"Text with {self.mask}", lines=2, elem_id="fill-mask-text",
                          info=f"Up to {self.limits.max_text_chars:,} characters. <mask> also works.")
        top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Top-k candidates", elem_id="fill-mask-top-k")
        button = gr.Button("Predict", variant="primary", elem_id="fill-mask-button")
        message = gr.Markdown(elem_id="fill-mask-message")
        with gr.Row():
            label = gr.Label(label="First mask", num_top_classes=MAX_TOP_K, elem_id="fill-mask-label")
            table = gr.Dataframe(headers=FILL_MASK_COLUMNS, label="All candidates", elem_id="fill-mask-table",
                                 interactive=False, wrap=True, column_widths=["10%", "10%", "18%", "17%", "45%"])
        outputs = [label, table, message]
        runnable_examples([[e, 5] for e in self.examples()], [text, top_k], outputs, self.predict, "fill_mask_example")
        button.click(self.predict, [text, top_k], outputs, api_name="fill_mask")
        text.submit(self.predict, [text, top_k], outputs, api_name="fill_mask_submit")


class GenerationTab:
    """Next-token generation with max new tokens, temperature, top-p and seed; the output streams in."""

    def __init__(self, loaded: LoadedModel, limits: Limits):
        self.model, self.tokenizer, self.limits = loaded.model, loaded.tokenizer, limits

    @reports_input_errors(lambda: ("",))
    def generate(self, prompt: str, max_new_tokens: float, temperature: float, top_p: float,
                 seed: float) -> Iterator[tuple[str, str]]:
        """Event handler (a generator): yields (prompt + continuation so far, status)."""
        prompt = check_text(prompt, self.limits, what="prompt")
        max_new_tokens = int(check_number(max_new_tokens, "number of new tokens", 1, self.limits.max_new_tokens,
                                          whole=True))
        temperature = check_number(temperature, "temperature (0 = greedy)", 0, MAX_TEMPERATURE)
        top_p = check_number(top_p, "top-p", 0, 1)
        if top_p == 0:
            raise DemoInputError("The top-p must be above 0 (1 keeps every token); got 0.")
        seed = int(check_number(seed, "seed", 0, MAX_SEED, whole=True))
        start, text = time.perf_counter(), ""
        yield prompt, "Generating…"
        for text in stream_generation(self.model, self.tokenizer, prompt, max_new_tokens, temperature, top_p, seed):
            yield prompt + text, "Generating…"
        yield prompt + text, f"Done in {time.perf_counter() - start:.1f} s (seed {seed})."

    def render(self) -> None:
        import gradio as gr

        gr.Markdown("Type the start of a text; the model continues it token by token.")
        prompt = gr.Textbox(value=GENERATION_PROMPTS[0], label="Prompt", lines=2, elem_id="generation-prompt",
                            info=f"Up to {self.limits.max_text_chars:,} characters.")
        with gr.Row():
            new_tokens = gr.Slider(1, self.limits.max_new_tokens, value=min(48, self.limits.max_new_tokens),
                                   step=1, label="Max new tokens")
            temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=0.8, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.05, label="Top-p")
            seed = gr.Number(value=0, precision=0, label="Seed")
        button = gr.Button("Generate", variant="primary", elem_id="generation-button")
        output = gr.Textbox(label="Text", lines=6, elem_id="generation-output", interactive=False)
        message = gr.Markdown(elem_id="generation-message")
        inputs, outputs = [prompt, new_tokens, temperature, top_p, seed], [output, message]
        # One generation at a time: each seeds torch's process-wide generator before sampling.
        one_at_a_time = {"concurrency_id": "generate", "concurrency_limit": 1}
        runnable_examples([[p, new_tokens.value, 0.8, 0.95, 0] for p in GENERATION_PROMPTS], inputs, outputs,
                          self.generate, "generation_example", **one_at_a_time)
        button.click(self.generate, inputs, outputs, api_name="generate", **one_at_a_time)
        prompt.submit(self.generate, inputs, outputs, api_name="generate_submit", **one_at_a_time)
