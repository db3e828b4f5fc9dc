"""What every demo tab shares about its inputs: the size limits, the checks that turn bad input into a message
for the user (`DemoInputError`), the image upload that reaches the handler even when it is not an image, and the
decorator that shows those messages in the page instead of an error."""

from __future__ import annotations

import base64
import functools
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError


@dataclass(frozen=True)
class Limits:
    """Input sizes the demo accepts; larger inputs get a message in the UI instead of a slow or failed call."""

    max_text_chars: int = 2_000  # fill-mask text, prompts and each gallery line
    max_new_tokens: int = 256  # generation length
    max_image_pixels: int = 4096 * 4096  # width * height of one uploaded image
    max_gallery_items: int = 2_000  # images or texts in one gallery
    max_upload_mb: int = 50  # one uploaded file, enforced by the Gradio server


class DemoInputError(ValueError):
    """Input the demo refuses (too large, empty, wrong kind); its message is shown to the user as is."""


def reports_input_errors(blank: Callable[[], tuple]) -> Callable:
    """Decorate an event handler whose last output is a status message.

    A `DemoInputError` (or any ValueError from the model code) becomes `blank()` outputs plus the message, and
    a `gr.Warning` toast, instead of an error page. Works for plain functions and for generators (streaming).
    """

    def decorate(handler: Callable) -> Callable:
        def failure(error: ValueError) -> tuple:
            import gradio as gr

            message = f"⚠️ {error}"
            gr.Warning(str(error))
            return (*blank(), message)

        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def stream(*args, **kwargs):
                try:
                    yield from handler(*args, **kwargs)
                except ValueError as error:
                    yield failure(error)

            return stream

        @functools.wraps(handler)
        def call(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except ValueError as error:
                return failure(error)

        return call

    return decorate


def runnable_examples(rows: list[list], inputs: list, outputs: list, fn: Callable, api_name: str,
                      **event_options: Any) -> None:
    """Examples (only the first column shown) that fill the inputs and run `fn` on one click.

    Gradio's own `run_on_click` names its run event after `fn`, which would take the tab's public api_name;
    here both events get explicit names: `api_name` (load the example) and `api_name + "_run"`.
    `event_options` (e.g. concurrency_id) go to the run event.
    """
    import gradio as gr

    examples = gr.Examples(rows, inputs=inputs, cache_examples=False, visible_columns=[0], api_name=api_name)
    examples.load_input_event.then(fn, inputs, outputs, api_name=f"{api_name}_run", api_visibility="undocumented",
                                   **event_options)


def check_text(text: str | None, limits: Limits, what: str = "text") -> str:
    """The stripped text; DemoInputError when it is empty or longer than the limit.

    UTF-16 surrogates (half an emoji from a broken paste, or "\\ud800" in an API call's JSON) are joined into their
    character where they pair up and become U+FFFD where they do not: tokenizers refuse strings that hold them.
    """
    text = str(text or "").encode("utf-16", "surrogatepass").decode("utf-16", "replace").strip()
    if not text:
        raise DemoInputError(f"The {what} is empty; type something (or click an example).")
    if len(text) > limits.max_text_chars:
        raise DemoInputError(
            f"The {what} has {len(text):,} characters; this demo accepts at most {limits.max_text_chars:,}. "
            "Shorten it."
        )
    return text


def check_number(value: Any, what: str, low: float, high: float, *, whole: bool = False) -> float:
    """`value` as a float in [low, high] (a whole number with `whole`); DemoInputError naming `what` otherwise.

    The API and a cleared number box send None, and the API any value, so the sliders' own bounds are not enough.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise DemoInputError(f"The {what} must be {kind} from {_plain(low)} to {_plain(high)}; got {value!r}.")
    return number


def _plain(number: float) -> str:
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:g}"


IMAGE_FORMATS = "PNG, JPEG, GIF, BMP, TIFF or WebP"


@dataclass(frozen=True)
class UnreadableImage:
    """An upload that does not open as an image: what `image_input` hands the event handler instead of failing
    in Gradio's preprocessing with a generic error; `check_image` turns it into a message naming the file."""

    name: str
    error: BaseException
    size: int | None = None  # bytes, when the file was read


def image_input(**kwargs: Any):
    """A `gr.Image` upload (type "pil") whose handler gets the image as uploaded, or an `UnreadableImage`.

    Gradio's own preprocessing fails before the handler runs for a file that is not an image (an error page
    that names no fix), and decodes every pixel of a large PNG or EXIF-rotated photo before `check_image` can
    refuse it by size. Here the image is only opened (its header read); mode conversion and EXIF rotation are
    left to `preprocess_images`, which converts it like the training data.
    """
    import gradio as gr

    component = gr.Image(type="pil", image_mode=None, **kwargs)
    # Set on the instance, not by a subclass: Gradio writes a .pyi stub beside the module of every Component subclass.
    component.preprocess = open_uploaded_image
    return component


def open_uploaded_image(payload: Any) -> Image.Image | UnreadableImage | None:
    """The image of a Gradio `ImageData` payload (a file path, or a data: URL), opened but not decoded."""
    if payload is None:
        return None
    name = payload.orig_name or (Path(payload.path).name if payload.path else "the upload")
    data = None
    try:
        if (payload.url or "").startswith("data:"):
            data = base64.b64decode(payload.url.partition(",")[2])
        elif payload.path is None:
            raise FileNotFoundError("no file was received")
        else:
            data = Path(payload.path).read_bytes()
        return Image.open(io.BytesIO(data))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        # Image.open turns a plugin's parse errors into UnidentifiedImageError (an OSError); a bad data: URL is
        # a ValueError. Each becomes a message that names the file, not an error page.
        return UnreadableImage(name, error, None if data is None else len(data))


def unreadable_message(upload: UnreadableImage, limits: Limits, what: str = "image") -> str:
    """What is wrong with an upload that does not open as an image, and what to upload instead."""
    error, subject = upload.error, f"The {what} {upload.name}"
    if upload.size == 0:
        return f"{subject} is an empty file (0 bytes). Upload it again, or another image ({IMAGE_FORMATS})."
    if isinstance(error, Image.DecompressionBombError):
        return (f"{subject} has too many pixels to open (Pillow refuses it as a possible decompression bomb); this "
                f"demo accepts at most {limits.max_image_pixels:,}. Downscale it first.")
    if isinstance(error, UnidentifiedImageError):
        vector = " SVG is a vector format: export it as PNG first." if upload.name.lower().endswith(".svg") else ""
        return f"{subject} is not an image format this demo can read.{vector} Upload a {IMAGE_FORMATS} file."
    return (f"{subject} cannot be opened ({type(error).__name__}: {error}); it is damaged or not an image. Upload an "
            f"image that opens in an image viewer ({IMAGE_FORMATS}).")


def check_image(image, limits: Limits, what: str = "image"):
    """The uploaded PIL image, decoded; DemoInputError when it did not open (an `UnreadableImage`), is over the
    pixel limit (checked on the header, before decoding) or is damaged (a truncated download fails only when
    its pixels are read)."""
    if isinstance(image, UnreadableImage):
        raise DemoInputError(unreadable_message(image, limits, what))
    check_pixels(image.width, image.height, limits, what)
    try:
        image.load()
    except Exception as error:  # image plugins raise OSError, SyntaxError, struct.error, ... on damaged data
        raise DemoInputError(f"The {what} cannot be decoded ({error}); it is damaged or truncated. Upload an image "
                             f"that opens in an image viewer ({IMAGE_FORMATS}).") from error
    return image


def check_pixels(width: int, height: int, limits: Limits, what: str = "image") -> None:
    """DemoInputError when width * height exceeds the limit."""
    if width * height > limits.max_image_pixels:
        raise DemoInputError(
            f"The {what} is {width}x{height} = {width * height:,} pixels; this demo accepts at most "
            f"{limits.max_image_pixels:,}. Downscale it first."
        )
