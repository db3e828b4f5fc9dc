"""Every objective's app launched on 127.0.0.1 and called through gradio_client by its api_name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from hfssl.demo import Limits, build_demo, load_demo_model


def _endpoints(client) -> set[str]:
    return set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def _gallery_zip(path: Path, count: int = 6) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(buffer, format="PNG")
            archive.writestr(f"{'odd' if i % 2 else 'even'}/{i}.png", buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def mae_url(launch, loaded_mae):
    return launch(loaded_mae, Limits(max_image_pixels=64 * 64, max_gallery_items=50))


@pytest.fixture(scope="module")
def clm_url(launch, loaded_clm):
    return launch(loaded_clm, Limits(max_new_tokens=32))


def test_mlm_app_fills_the_mask_and_reports_limits(client_for, mlm_url):
    client = client_for(mlm_url)
    assert {"/fill_mask", "/fill_mask_submit", "/search_gallery"} <= _endpoints(client)
    label, table, message = client.predict("Return the [MASK] of the list.", 4, api_name="/fill_mask")
    assert len(label["confidences"]) == 4 and label["label"] == table["data"][0][2]
    assert table["headers"] == ["mask", "rank", "token", "probability", "text"] and len(table["data"]) == 4
    assert message.startswith("Top 4 for 1 mask(s)")
    _, table, message = client.predict("x" * 201 + " [MASK]", 4, api_name="/fill_mask")
    assert table["data"] == [] and "accepts at most 200" in message


def test_mlm_app_searches_a_pasted_text_gallery(client_for, mlm_url):
    client = client_for(mlm_url)
    rows, votes, plot, message = client.predict(
        "A funny film.", "pasted", "pos | A delightful film.\nneg | A tedious mess.", 2, api_name="/search_gallery")
    assert [row[2] for row in rows["data"]] in (["pos", "neg"], ["neg", "pos"])
    assert {c["label"] for c in votes["confidences"]} == {"pos", "neg"}
    assert Image.open(plot).size == (550, 450) and "2 items, 2 labels" in message


def test_clm_app_streams_generation(client_for, clm_url):
    client = client_for(clm_url)
    assert {"/generate", "/search_gallery"} <= _endpoints(client) and "/fill_mask" not in _endpoints(client)
    job = client.submit("Return the", 16, 0.9, 0.95, 7, api_name="/generate")
    final_text, final_message = job.result(timeout=120)
    texts = [output[0] for output in job.outputs()]
    assert len(texts) >= 3 and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert final_text.startswith("Return the") and final_message.startswith("Done in")
    again, _ = client.predict("Return the", 16, 0.9, 0.95, 7, api_name="/generate")
    assert again == final_text
    assert "empty" in client.predict("  ", 16, 0.9, 0.95, 7, api_name="/generate")[1]
    with pytest.raises(AppError, match="greater than maximum value 32"):  # the slider's own bound check
        client.predict("Return the", 33, 0.9, 0.95, 7, api_name="/generate")


def test_mae_app_reconstructs_and_searches_an_uploaded_gallery(client_for, mae_url, tmp_path):
    from hfssl.demo.vision import example_images

    client = client_for(mae_url)
    assert {"/reconstruct", "/search_gallery"} <= _endpoints(client)
    example = example_images(tmp_path / "examples", count=1)[0]
    *images, message = client.predict(handle_file(example), 0.5, 0, api_name="/reconstruct")
    assert [Image.open(path).size for path in images] == [(192, 192)] * 3 and message.startswith("Hid 8 of 16")
    big = tmp_path / "big.png"
    Image.new("RGB", (65, 64)).save(big)
    *images, message = client.predict(handle_file(str(big)), 0.5, 0, api_name="/reconstruct")
    assert images == [None, None, None] and "at most 4,096" in message
    archive = _gallery_zip(tmp_path / "gallery.zip")
    neighbours, votes, plot, message = client.predict(
        handle_file(example), "upload", [handle_file(str(archive))], 3, api_name="/search_gallery")
    assert len(neighbours) == 3 and all(" · " in item["caption"] for item in neighbours)
    assert {c["label"] for c in votes["confidences"]} <= {"odd", "even"} and "6 items, 2 labels" in message


def test_encoder_app_is_a_gallery_only(launch, client_for, encoder_run, tmp_path):
    client = client_for(launch(load_demo_model(encoder_run), Limits(max_gallery_items=5)))
    endpoints = _endpoints(client)
    assert "/search_gallery" in endpoints and not endpoints & {"/fill_mask", "/generate", "/reconstruct"}
    image = tmp_path / "query.png"
    Image.new("L", (10, 10), 200).save(image)
    archive = _gallery_zip(tmp_path / "gallery.zip", count=6)
    neighbours, votes, plot, message = client.predict(
        handle_file(str(image)), "upload", [handle_file(str(archive))], 3, api_name="/search_gallery")
    assert neighbours == [] and not votes and plot is None and "more than 5" in message
    neighbours, votes, plot, message = client.predict(
        handle_file(str(image)), "digits", [], 3, api_name="/search_gallery")
    assert len(neighbours) == 3 and "5 items, 5 labels" in message


def test_build_demo_accepts_a_path(mae_run):
    demo = build_demo(mae_run, Limits())
    names = [dependency.get("api_name") for dependency in demo.config["dependencies"]]
    # Every event has the explicit name it was given: no None, no auto-numbered `_1` duplicates.
    assert sorted(names) == sorted(["reconstruct", "reconstruct_on_release", "mae_example", "mae_example_run",
                                    "search_gallery", "gallery_example", "gallery_example_run"])
