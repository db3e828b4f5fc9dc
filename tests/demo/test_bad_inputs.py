"""Bad and unusual input to the Gradio demo: files that are not images, images of every mode, odd text and odd
galleries, through the handlers the app wires up and through a launched app on 127.0.0.1 (gradio_client)."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image, ImageOps

from hfssl.demo import Limits, load_demo_model
from hfssl.demo.classify import ClassificationTab
from hfssl.demo.gallery import GalleryTab, embed, nearest
from hfssl.demo.inputs import UnreadableImage, check_image, open_uploaded_image
from hfssl.demo.text import FillMaskTab, GenerationTab, with_mask_token
from hfssl.demo.vision import ReconstructionTab, preprocess_images
from hfssl.models import (
    HfsslTextForCausalLM,
    HfsslTextForMaskedLM,
    HfsslVisionForMaskedImageModeling,
)
from tests.cards import make_finetune_run
from tests.demo.conftest import (  # also sets Gradio's environment: no analytics, ...
    _launch,
    _text_run,
    _vision_run,
)

RNG_PIXELS = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height grayscale pixels and holds one byte of them."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _call_over_http(url: str, api_name: str, data: list) -> list:
    """The outputs of `api_name` called with plain HTTP (Gradio's /call API), with ASCII-escaped JSON."""
    import json
    import urllib.request

    endpoint = f"{url.rstrip('/')}/gradio_api/call/{api_name}"
    request = urllib.request.Request(endpoint, data=json.dumps({"data": data}).encode("ascii"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{endpoint}/{event_id}", timeout=60) as response:
        lines = response.read().decode("utf-8").splitlines()
    events = [(kind.removeprefix("event: "), json.loads(body.removeprefix("data: ")))
              for kind, body in itertools.pairwise(lines) if kind.startswith("event: ")]
    assert events[-1][0] == "complete", events
    return events[-1][1]


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Uploads users bring: files that are not (whole) images, and valid images of unusual kinds."""
    folder = tmp_path_factory.mktemp("uploads")
    rgb = Image.fromarray(RNG_PIXELS)
    jpeg = _encoded(rgb, "JPEG")
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise to view
    frames = [Image.new("P", (20, 20), 40 * i) for i in range(3)]
    contents = {
        "not-an-image.png": b"this is a text file with an image name\n",
        "empty.jpg": b"",
        "truncated.png": _encoded(rgb, "PNG")[:300],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect width="9" height="9"/></svg>',
        "bomb.png": _png_header(20_000, 20_000),  # Pillow refuses to open it (decompression bomb)
        "huge.jpg": _encoded(Image.new("L", (8000, 8000), 90), "JPEG", quality=20),
        "sixteen-bit.png": _encoded(Image.fromarray(RNG_PIXELS[..., 0].astype(np.uint16) * 257), "PNG"),
        "cmyk.jpg": _encoded(rgb.convert("CMYK"), "JPEG"),
        "rotated.jpg": _encoded(rgb, "JPEG", exif=exif),
        "animated.gif": _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
        "palette.png": _encoded(rgb.convert("P"), "PNG"),
        "gray-alpha.png": _encoded(rgb.convert("LA"), "PNG"),
        "large.jpg": _encoded(Image.new("RGB", (3000, 2000), (20, 160, 90)), "JPEG"),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad-input-runs")
    return {"mae": load_demo_model(_vision_run(root / "mae", "mae", HfsslVisionForMaskedImageModeling)),
            "mlm": load_demo_model(_text_run(root / "mlm", "mlm", "wordpiece", HfsslTextForMaskedLM)),
            "image-classifier": load_demo_model(make_finetune_run(root, "finetune-image", "alice/tiny").path)}


@pytest.fixture(scope="module")
def clients(models, tmp_path_factory):
    """gradio_client Clients of the MAE, image-classifier and MLM apps, launched on 127.0.0.1; closed afterwards."""
    downloads = tmp_path_factory.mktemp("downloads")
    demos, connected = [], {}
    try:
        for name in ("mae", "image-classifier", "mlm"):
            demo, url = _launch(models[name], Limits(max_text_chars=500))
            demos.append(demo)
            connected[name] = Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads))
        yield connected
    finally:
        for demo in demos:
            demo.close()


@pytest.fixture(scope="module")
def digits(models):
    """The built-in digits gallery as the MAE app embeds it."""
    return GalleryTab(models["mae"], Limits()).gallery("digits", None)


# ---------------------------------------------------------------- images that do not open


@pytest.mark.parametrize(("name", "message"), [
    ("not-an-image.png", "The image not-an-image.png is not an image format this demo can read. Upload a PNG, JPEG"),
    ("empty.jpg", "The image empty.jpg is an empty file (0 bytes). Upload it again, or another image"),
    ("truncated.png", "The image cannot be decoded (image file is truncated); it is damaged or truncated."),
    ("drawing.svg", "SVG is a vector format: export it as PNG first."),
    ("bomb.png", "The image bomb.png has too many pixels to open"),
    ("huge.jpg", "The image is 8000x8000 = 64,000,000 pixels; this demo accepts at most 16,777,216. Downscale it"),
], ids=["not-an-image", "empty", "truncated", "svg", "decompression-bomb", "huge"])
def test_an_upload_that_is_not_a_usable_image_is_a_message_in_every_image_tab(clients, files, name, message):
    # Gradio's preprocessing opened the upload before the handler ran: "Could not preprocess input component at
    # index 0 (a `image` component)", an error that names neither the file nor what to upload instead.
    upload = handle_file(str(files[name]))
    *images, status = clients["mae"].predict(upload, 0.5, 0, api_name="/reconstruct")
    assert images == [None, None, None] and status.startswith("⚠️ ") and message in status
    neighbours, _, plot, status = clients["mae"].predict(upload, "digits", [], 3, api_name="/search_gallery")
    assert neighbours == [] and plot is None and message.replace("The image", "The query image") in status
    label, status = clients["image-classifier"].predict(upload, api_name="/classify")
    assert message in status and not (label or {}).get("confidences")


def test_unreadable_image_reaches_the_handlers_called_directly(models, files):
    tab = ReconstructionTab(models["mae"], Limits())
    *images, status = tab.run(UnreadableImage("notes.png", OSError("x"), 12), 0.5, 0)
    assert images == [None, None, None] and "notes.png cannot be opened (OSError: x)" in status
    label, status = ClassificationTab(models["image-classifier"], Limits()).predict(
        UnreadableImage("empty.png", OSError("x"), 0))
    assert label is None and "empty.png is an empty file" in status


def test_open_uploaded_image_reads_files_and_data_urls_without_decoding(files):
    import base64

    from gradio.data_classes import ImageData

    png = _png_header(5000, 5000)  # declares 25 M pixels, holds one byte: decoding it would fail
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    opened = open_uploaded_image(ImageData(url=url, orig_name="pasted.png"))
    assert opened.size == (5000, 5000)
    with pytest.raises(ValueError, match="5000x5000 = 25,000,000 pixels; this demo accepts at most 16,777,216"):
        check_image(opened, Limits())
    unreadable = open_uploaded_image(ImageData(path=str(files["not-an-image.png"]), orig_name="photo.png"))
    assert isinstance(unreadable, UnreadableImage) and unreadable.name == "photo.png"
    assert open_uploaded_image(None) is None


# ---------------------------------------------------------------- unusual images that must work


@pytest.mark.parametrize("name", ["sixteen-bit.png", "cmyk.jpg", "rotated.jpg", "animated.gif", "palette.png",
                                  "gray-alpha.png", "large.jpg"])
def test_unusual_valid_images_search_like_a_direct_call(clients, models, digits, files, name):
    indices, scores = nearest(digits.features, embed(models["mae"], [Image.open(files[name])])[0], 3)
    neighbours, _, plot, status = clients["mae"].predict(handle_file(str(files[name])), "digits", [], 3,
                                                         api_name="/search_gallery")
    assert plot is not None and "1,700 items" in status
    assert [n["caption"] for n in neighbours] == [f"{s:.3f} · {digits.labels[i]}" for i, s in zip(indices, scores)]


def test_exif_rotation_and_16_bit_pixels_are_applied(models, files):
    mae = models["mae"]
    rotated = Image.open(files["rotated.jpg"])
    upright = ImageOps.exif_transpose(Image.open(files["rotated.jpg"]))
    assert rotated.size == (30, 40) and upright.size == (40, 30)
    assert torch.equal(preprocess_images(mae, [rotated]), preprocess_images(mae, [upright]))
    eight_bit = Image.fromarray(RNG_PIXELS[..., 0])
    assert torch.equal(preprocess_images(mae, [Image.open(files["sixteen-bit.png"])]),
                       preprocess_images(mae, [eight_bit]))


def test_stock_processor_that_resizes_itself_scales_16_bit_and_composites_transparency(tmp_path):
    # With a shortest_edge processor (ConvNext, CLIP, ResNet) images were only `convert("RGB")`ed: a 16-bit
    # image clipped to white and transparent pixels showed the colour stored under them.
    from transformers import ConvNextConfig, ConvNextImageProcessor, ConvNextModel

    torch.manual_seed(0)
    ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=32)).save_pretrained(
        tmp_path)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(tmp_path)
    loaded = load_demo_model(tmp_path)
    eight_bit = RNG_PIXELS[..., 0]
    sixteen, gray = preprocess_images(loaded, [Image.fromarray(eight_bit.astype(np.uint16) * 257),
                                               Image.fromarray(eight_bit)])
    assert torch.allclose(sixteen, gray)
    hidden_red = np.zeros((20, 30, 4), np.uint8)
    hidden_red[..., 0] = 255
    transparent, white = preprocess_images(loaded, [Image.fromarray(hidden_red, "RGBA"),
                                                    Image.new("RGB", (30, 20), "white")])
    assert torch.allclose(transparent, white)


# ---------------------------------------------------------------- text


def test_text_with_unpaired_surrogates_is_read_not_an_error(clients, models):
    # "\ud800" (half an emoji, or an escape in an API call's JSON) made the tokenizer raise TypeError
    # ("TextEncodeInput must be Union[...]"): an error page instead of a result.
    mlm = models["mlm"]
    _, rows, status = FillMaskTab(mlm, Limits()).predict("broken \ud83c [MASK] paste", 2)
    assert status.startswith("Top 2") and rows[0][4].startswith("broken \ufffd ")
    # gradio_client cannot send it (httpx encodes UTF-8); a browser's JSON.stringify writes it as "\\ud83c".
    _, table, status = _call_over_http(clients["mlm"].src, "fill_mask", ["broken \ud83c [MASK] paste", 2])
    assert status.startswith("Top 2") and table["data"][0][4].startswith("broken \ufffd ")
    rows, _, _, status = GalleryTab(mlm, Limits()).search("a query \udfff", "pasted", "one \ud800\ntwo", 2)
    assert "2 items" in status and {row[3] for row in rows} == {"one \ufffd", "two"}
    assert with_mask_token("\ud83c\udf55 [MASK]", "[MASK]") == "\ud83c\udf55 [MASK]"


def test_generation_and_classification_read_unpaired_surrogates(models, tmp_path):
    clm = load_demo_model(_text_run(tmp_path / "clm", "clm", "bpe", HfsslTextForCausalLM))
    *_, (text, status) = GenerationTab(clm, Limits()).generate("half \ud83c", 4, 0.0, 1.0, 0)
    assert text.startswith("half \ufffd") and status.startswith("Done in")
    classifier = load_demo_model(make_finetune_run(tmp_path, "finetune-text", "alice/tiny").path)
    scores, status = ClassificationTab(classifier, Limits()).predict("\udfff a fine film")
    assert set(scores) == {"negative", "positive"} and status.startswith("Top class")


@pytest.mark.parametrize("text", ["Return the [Mask] of the list.", "Return the <MASK> of the list.",
                                  "Return the [mask] of the list.", "Return the <mask> of the list."])
def test_mask_token_in_any_letter_case(models, text):
    *_, status = FillMaskTab(models["mlm"], Limits()).predict(text, 3)
    assert status.startswith("Top 3 for 1 mask(s)")


@pytest.mark.parametrize(("text", "message"), [
    ("", "The text is empty; type something"),
    (" \n\t ", "The text is empty; type something"),
    ("No mask in this one.", "Write [MASK] where a word is missing"),
    ("\x00\x01\x02", "Write [MASK] where a word is missing"),
    (" ".join(["[MASK]"] * 6), "The text has 6 [MASK] tokens; use at most 5."),
    ("a " * 200 + "[MASK]", "The input is 203 tokens, more than the model's 128 positions. Shorten it."),
    ("x" * 501 + " [MASK]", "this demo accepts at most 500. Shorten it."),
], ids=["empty", "whitespace", "no-mask", "control-only", "six-masks", "too-many-tokens", "too-many-characters"])
def test_fill_mask_input_problems_are_messages(models, text, message):
    label, rows, status = FillMaskTab(models["mlm"], Limits(max_text_chars=500)).predict(text, 3)
    assert (label, rows) == (None, []) and status.startswith("⚠️ ") and message in status


@pytest.mark.parametrize("text", ["Return\x00 the\x1b [MASK]\x07 of\u200b the\ufeff list.", "a" * 400 + " [MASK]",
                                  "هذا [MASK] جميل", "यह एक [MASK] है", "Z̴̡a̵l̷g̶o [MASK]", "[MASK][MASK]",
                                  "line one\n[MASK]\nline three", "[CLS] [SEP] [MASK] [UNK]"],
                         ids=["control", "long-word", "arabic", "hindi", "combining", "adjacent", "lines", "specials"])
def test_fill_mask_keeps_unusual_text_around_the_mask(models, text):
    _, rows, status = FillMaskTab(models["mlm"], Limits()).predict(text, 2)
    assert status.startswith("Top 2")
    masks = text.count("[MASK]")
    assert len(rows) == 2 * masks
    before, after = text.strip().split("[MASK]")[0], text.strip().split("[MASK]")[-1]
    assert all(row[4].startswith(before.rstrip()) and row[4].endswith(after) for row in rows)


# ---------------------------------------------------------------- galleries


def test_gallery_of_one_image_and_unreadable_files_mixed_in(clients, files, tmp_path):
    one = tmp_path / "only.png"
    Image.fromarray(RNG_PIXELS).save(one)
    query = handle_file(str(files["palette.png"]))
    neighbours, votes, plot, status = clients["mae"].predict(query, "upload", [handle_file(str(one))], 8,
                                                             api_name="/search_gallery")
    assert len(neighbours) == 1 and not votes and plot is not None and "1 item, no labels" in status
    mixed = [one, files["not-an-image.png"], files["empty.jpg"], files["truncated.jpg"], files["cmyk.jpg"],
             files["bomb.png"]]
    neighbours, _, plot, status = clients["mae"].predict(query, "upload", [handle_file(str(p)) for p in mixed], 8,
                                                         api_name="/search_gallery")
    assert len(neighbours) == 2 and plot is not None and "2 items" in status
    assert "Skipped 4 unreadable files: not-an-image.png (not an image format" in status
    assert "empty.jpg (an empty file (0 bytes))" in status and "truncated.jpg (damaged or unreadable" in status
    neighbours, _, plot, status = clients["mae"].predict(
        query, "upload", [handle_file(str(files["empty.jpg"])), handle_file(str(files["not-an-image.png"]))], 8,
        api_name="/search_gallery")
    assert neighbours == [] and plot is None and status.startswith("⚠️ No readable image in empty.jpg")


def test_text_gallery_of_one_line(models):
    rows, votes, plot, status = GalleryTab(models["mlm"], Limits()).search("A film.", "pasted", "pos | A film.", 8)
    assert [row[2:] for row in rows] == [["pos", "A film."]] and votes == {"pos": 1.0} and plot is not None
    assert "1 item, 1 label" in status
