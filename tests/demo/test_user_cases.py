"""Inputs users bring that the other demo tests do not: text the vocabulary lacks, folders with stray files, odd
image modes, damaged uploads, adapter folders and unfinished runs, stock MAE encoders."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from hfssl.demo import Limits, load_demo_model
from hfssl.demo.gallery import embed, load_image_items, nearest
from hfssl.demo.text import predict_masked


@pytest.fixture(scope="module")
def loaded_encoder(encoder_run):
    return load_demo_model(encoder_run)


@pytest.fixture(scope="module")
def encoder_url(launch, loaded_encoder):
    return launch(loaded_encoder, Limits(max_gallery_items=50))


def test_fill_mask_text_keeps_characters_the_vocabulary_lacks(loaded_mlm):
    # Decoding the filled ids dropped every [UNK]: "这是一个[MASK]测试" came back as the candidate alone.
    model, tokenizer = loaded_mlm.model, loaded_mlm.tokenizer
    for prediction in predict_masked(model, tokenizer, "这是一个[MASK]测试", top_k=3)[0]:
        assert prediction.text.startswith("这是一个") and prediction.text.endswith("测试")
        assert prediction.token.removeprefix("##") in prediction.text
    first, second = predict_masked(model, tokenizer, "I love 🍕 and [MASK] or <mask>!", top_k=2)
    assert all(p.text.startswith("I love 🍕 and") and p.text.endswith("!") for p in first + second)
    # The other mask holds its best candidate; a WordPiece continuation joins the word before it.
    best_second = second[0].token
    assert first[0].text.endswith(best_second.removeprefix("##") + "!")
    text = predict_masked(model, tokenizer, "Return the [MASK] of the list.", top_k=1)[0][0]
    word = text.token.removeprefix("##")
    assert text.text == ("Return the" + ("" if text.token.startswith("##") else " ") + word + " of the list.")


def test_gallery_upload_skips_a_stray_file_instead_of_refusing_all(client_for, encoder_url, tmp_path):
    # Gradio's file_types check refused the whole request ("Invalid file type") for one README among the images.
    for i in range(3):
        Image.new("L", (10, 10), 60 * i).save(tmp_path / f"{i}.png")
    (tmp_path / "README.txt").write_text("not an image")
    files = [handle_file(str(tmp_path / name)) for name in ("0.png", "1.png", "2.png", "README.txt")]
    neighbours, _, plot, message = client_for(encoder_url).predict(
        handle_file(str(tmp_path / "0.png")), "upload", files, 2, api_name="/search_gallery")
    assert len(neighbours) == 2 and plot is not None
    assert "3 items" in message and "Skipped 1 unreadable file: README.txt (not an image format" in message


def test_gallery_query_is_converted_like_a_direct_call(client_for, encoder_url, loaded_encoder, tmp_path):
    # The query went through Gradio's convert("RGB"), which exposes the colour stored under transparent pixels;
    # the model's own conversion (and the gallery's) composites on white, so the app disagreed with a direct call.
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[..., 0] = 255  # red, but invisible
    pixels[4:12, 4:12, 3] = 255  # a visible black square
    query = tmp_path / "transparent.png"
    Image.fromarray(pixels, "RGBA").save(query)
    items, labels, _ = load_image_items("digits", None, Limits(max_gallery_items=50))  # as encoder_url
    indices, scores = nearest(embed(loaded_encoder, items), embed(loaded_encoder, [Image.open(query)])[0], 3)
    neighbours, *_ = client_for(encoder_url).predict(handle_file(str(query)), "digits", [], 3,
                                                     api_name="/search_gallery")
    assert [item["caption"] for item in neighbours] == [f"{s:.3f} · {labels[i]}" for i, s in zip(indices, scores)]


def test_truncated_image_is_a_message_not_an_error(launch, loaded_mae, client_for, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    client = client_for(launch(loaded_mae, Limits()))
    *images, message = client.predict(handle_file(str(truncated)), 0.5, 0, api_name="/reconstruct")
    assert images == [None, None, None] and "cannot be decoded" in message and "truncated" in message
    neighbours, _, _, message = client.predict(handle_file(str(truncated)), "digits", [], 3,
                                               api_name="/search_gallery")
    assert neighbours == [] and message.startswith("⚠️ The query image cannot be decoded")


def test_adapter_folder_and_run_without_model_name_what_to_pass(mlm_run, tmp_path):
    run = tmp_path / "ft"
    shutil.copytree(mlm_run / "model", run / "model")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(FileNotFoundError, match=r"is a peft adapter folder, not a model: pass the run directory"):
        load_demo_model(run / "adapter")
    stopped = tmp_path / "stopped"
    for step in (2, 10):
        shutil.copytree(mlm_run / "model", stopped / "checkpoints" / f"checkpoint-{step}")
    (stopped / "run.json").write_text(json.dumps({"objective": "mlm"}))
    with pytest.raises(FileNotFoundError, match=r"No model in run directory .*checkpoint-10$"):
        load_demo_model(stopped)
    assert load_demo_model(stopped / "checkpoints" / "checkpoint-10").kind == "fill-mask"


def test_stock_mae_encoder_gallery_features_see_every_patch(tmp_path):
    # ViTMAEModel hides a random 75% of the patches in every forward: gallery features changed from call to call.
    from transformers import ViTImageProcessor, ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    config = ViTMAEConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                          decoder_num_attention_heads=2, decoder_intermediate_size=64)
    ViTMAEForPreTraining(config).save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path)
    loaded = load_demo_model(tmp_path)
    assert loaded.kind == "gallery"
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    np.testing.assert_allclose(embed(loaded, [image]), embed(loaded, [image]), atol=1e-6)
    hidden = loaded.model(pixel_values=torch.zeros(1, 3, 16, 16)).last_hidden_state
    assert hidden.shape[1] == 1 + 16  # cls + every patch


@pytest.mark.parametrize(("host", "message"), [("999.1.1.1", "is not a known address"),
                                               ("10.254.254.1", "is not an address of this machine")])
def test_bad_host_is_named_before_the_model_loads(mlm_run, host, message):
    # Gradio said "Cannot find empty port in range", so the CLI told users to pass another --port.
    from hfssl.demo.command import cmd_demo

    with pytest.raises(ValueError, match=rf"--host {host} {message} .*pass 127.0.0.1"):
        cmd_demo([str(mlm_run / "not-there"), "--host", host])  # checked before the (missing) model is looked up
