"""Vision demo for masked autoencoders: original | masked | reconstruction, with a mask-ratio slider.

Also the image preprocessing every image demo shares (`preprocess_images`, `to_display`) and the example
images (scikit-learn digits, plus Fashion-MNIST when `HFSSL_DATA_DIR` holds it).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.images import convert_image, convert_mode
from .inputs import (
    DemoInputError,
    Limits,
    check_image,
    check_number,
    image_input,
    reports_input_errors,
    runnable_examples,
)
from .loading import LoadedModel

DISPLAY_SIZE = 192
MASKED_GRAY = 0.5  # hidden patches are shown in mid gray
MAX_SEED = 2**32 - 1
FASHION_MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def fashion_mnist_dir() -> Path | None:
    """`$HFSSL_DATA_DIR/fashion_mnist` when it holds the Fashion-MNIST test files, else None."""
    root = os.environ.get("HFSSL_DATA_DIR")
    folder = Path(root) / "fashion_mnist" if root else None
    if folder is None or not all((folder / name).is_file() for name in FASHION_MNIST_FILES):
        return None
    return folder


def _square_size(loaded: LoadedModel) -> int | None:
    """The square input side the model expects, or None when its processor decides (stock processors)."""
    size = getattr(loaded.image_processor, "size", None) or {}
    if size.get("height") and size.get("height") == size.get("width"):
        return int(size["height"])
    return getattr(loaded.model.config, "image_size", None) if not size else None


def preprocess_images(loaded: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images of any mode and size -> pixel_values (b, c, h, w) as the model's image processor makes them.

    Images are first converted like the training data (`hfssl.data.images.convert_image`: EXIF rotation,
    transparency on white, grayscale or RGB by `config.num_channels`, bicubic resize).
    """
    channels = getattr(loaded.model.config, "num_channels", 3)
    size = _square_size(loaded)
    prepared = []
    for image in images:
        if size is None:  # the processor resizes and crops (shortest_edge): convert at the image's own size
            prepared.append(convert_mode(image, channels))
            continue
        array = convert_image(image, size, channels)  # (c, size, size) uint8
        prepared.append(Image.fromarray(array[0] if channels == 1 else array.transpose(1, 2, 0)))
    return loaded.image_processor(images=prepared, return_tensors="pt")["pixel_values"]


def to_display(loaded: LoadedModel, pixel_values: torch.Tensor, size: int = DISPLAY_SIZE) -> list[Image.Image]:
    """pixel_values (b, c, h, w) in the processor's normalized space -> PIL images upscaled (nearest) to `size`."""
    processor = loaded.image_processor
    pixels = pixel_values.float()
    if getattr(processor, "do_normalize", False):
        mean = torch.tensor(processor.image_mean, dtype=pixels.dtype).view(1, -1, 1, 1)
        std = torch.tensor(processor.image_std, dtype=pixels.dtype).view(1, -1, 1, 1)
        pixels = pixels * std + mean  # back to [0, 1]
    arrays = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (b, h, w, c)
    shown = []
    for array in arrays:
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        scale = max(1, size // max(image.size))
        shown.append(image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST))
    return shown


@dataclass
class Reconstruction:
    """Three display images and the reconstruction error on the hidden patches (normalized pixel space)."""

    original: Image.Image
    masked: Image.Image
    reconstruction: Image.Image
    masked_mse: float
    hidden_patches: int
    total_patches: int


@torch.no_grad()
def reconstruct(loaded: LoadedModel, image: Image.Image, mask_ratio: float, seed: int = 0) -> Reconstruction:
    """Hide a random `mask_ratio` of the patches (fixed by `seed`), let the MAE predict them, and return
    original | masked | reconstruction. The reconstruction keeps the visible patches of the input."""
    model = loaded.model
    pixels = preprocess_images(loaded, [image])  # (1, c, h, w)
    p = model.config.patch_size
    num_patches = (pixels.shape[-2] // p) * (pixels.shape[-1] // p)
    if not 0 < mask_ratio < 1 or int(num_patches * (1 - mask_ratio)) < 1:
        raise DemoInputError(f"The mask ratio must keep at least one of the {num_patches} patches and hide some; "
                             f"got {mask_ratio}. Use a value in (0, 1).")
    noise = torch.rand(1, num_patches, generator=torch.Generator().manual_seed(seed))  # (1, L)
    encoded = model.base_model(pixels, noise=noise, mask_ratio=mask_ratio)
    logits = model.forward_decoder(encoded.last_hidden_state, encoded.ids_restore, pixels.shape[-2:])  # (1, L, p*p*c)
    rebuilt = model.reconstruction(pixels, logits, encoded.mask)  # (1, c, h, w)
    hidden = encoded.mask  # (1, L), 1 = hidden
    error = (model.patchify(rebuilt) - model.patchify(pixels)).pow(2).mean(dim=-1)  # (1, L)
    mse = float((error * hidden).sum() / hidden.sum().clamp(min=1))
    original, reconstruction = to_display(loaded, torch.cat([pixels, rebuilt]))
    masked = _gray_out(loaded, pixels, hidden)
    return Reconstruction(original, masked, reconstruction, mse, int(hidden.sum()), num_patches)


def _gray_out(loaded: LoadedModel, pixels: torch.Tensor, hidden: torch.Tensor) -> Image.Image:
    """The input with hidden patches painted gray, for display."""
    model = loaded.model
    p, c = model.config.patch_size, pixels.shape[1]
    patch_mask = model.unpatchify(hidden[..., None].expand(-1, -1, p * p * c), pixels.shape[-2:])  # (1, c, h, w)
    shown = np.asarray(to_display(loaded, pixels, size=pixels.shape[-1])[0].convert("RGB"), dtype=np.float32)
    gray = patch_mask[0, 0].numpy().astype(bool)  # (h, w)
    shown[gray] = MASKED_GRAY * 255
    image = Image.fromarray(shown.astype(np.uint8))
    scale = max(1, DISPLAY_SIZE // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def example_images(folder: str | os.PathLike | None = None, count: int = 4, offset: int = 0) -> list[str]:
    """Write `count` example PNGs (Fashion-MNIST test images when available, then digits), from index `offset`
    of each set, and return their paths."""
    from sklearn.datasets import load_digits

    folder = Path(folder or tempfile.mkdtemp(prefix="hfssl-demo-examples-"))
    folder.mkdir(parents=True, exist_ok=True)
    arrays: list[np.ndarray] = []
    fashion = fashion_mnist_dir()
    if fashion is not None:
        from ..data.images import fashion_mnist_dataset

        wanted = range(offset, offset + count // 2)
        rows = fashion_mnist_dataset(fashion, "test", limit=wanted.stop).select(wanted)
        arrays += [np.asarray(image) for image in rows["image"]]
    digits = load_digits().images  # (1797, 8, 8) in 0..16
    arrays += [np.round(digits[offset + i] * 255 / 16).astype(np.uint8) for i in range(count - len(arrays))]
    paths = []
    for i, array in enumerate(arrays):
        path = folder / f"example-{i}.png"
        Image.fromarray(array).resize((64, 64), Image.Resampling.NEAREST).save(path)
        paths.append(str(path))
    return paths


class ReconstructionTab:
    """MAE: upload or pick an image, choose the mask ratio, see original | masked | reconstruction."""

    def __init__(self, loaded: LoadedModel, limits: Limits):
        self.loaded, self.limits = loaded, limits
        self.examples = example_images()

    @reports_input_errors(lambda: (None, None, None))
    def run(self, image: Image.Image | None, mask_ratio: float, seed: float):
        """Event handler: (original, masked, reconstruction, status)."""
        if image is None:
            raise DemoInputError("Upload an image or click one of the examples first.")
        image = check_image(image, self.limits)
        mask_ratio = check_number(mask_ratio, "mask ratio", 0, 1)
        seed = int(check_number(seed, "seed", 0, MAX_SEED, whole=True))
        start = time.perf_counter()
        result = reconstruct(self.loaded, image, mask_ratio, seed)
        status = (f"Hid {result.hidden_patches} of {result.total_patches} patches; MSE on the hidden patches "
                  f"{result.masked_mse:.4f} (normalized pixels); {(time.perf_counter() - start) * 1000:.0f} ms.")
        return result.original, result.masked, result.reconstruction, status

    def render(self) -> None:
        import gradio as gr

        gr.Markdown("Upload an image or pick an example. The masked autoencoder sees only the visible patches and "
                    f"predicts the hidden ones. Images up to {self.limits.max_image_pixels:,} pixels.")
        ratio_default = float(getattr(self.loaded.model.config, "mask_ratio", 0.75))
        with gr.Row():
            image = image_input(value=self.examples[0], label="Image", sources=["upload", "clipboard"],
                                elem_id="mae-input")
            with gr.Column():
                ratio = gr.Slider(0.05, 0.95, value=ratio_default, step=0.05, label="Mask ratio", elem_id="mae-ratio")
                seed = gr.Number(value=0, precision=0, label="Seed (which patches are hidden)")
                button = gr.Button("Reconstruct", variant="primary", elem_id="mae-button")
        message = gr.Markdown(elem_id="mae-message")
        with gr.Row():
            outputs = [gr.Image(label=name, format="png", interactive=False, elem_id=f"mae-{name.lower()}")
                       for name in ("Original", "Masked", "Reconstruction")]
        outputs.append(message)
        runnable_examples([[path, ratio_default, 0] for path in self.examples], [image, ratio, seed], outputs,
                          self.run, "mae_example")
        button.click(self.run, [image, ratio, seed], outputs, api_name="reconstruct")
        ratio.release(self.run, [image, ratio, seed], outputs, api_name="reconstruct_on_release")
