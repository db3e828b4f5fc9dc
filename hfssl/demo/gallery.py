"""Gallery demo for any encoder: nearest neighbours with similarity scores, kNN zero-label classification when
the gallery has labels, and a 2-D PCA map of the gallery embeddings.

Works with every model that has `get_features` (hfssl encoders, MAE and contrastive models alike) and with
stock transformers encoders through a pooling rule (`loading.encode`). Images and texts both work; the
gallery is a built-in evaluation set, uploaded images or a .zip (folder names become labels), or pasted lines.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .inputs import (
    DemoInputError,
    Limits,
    check_image,
    check_number,
    check_text,
    image_input,
    reports_input_errors,
    runnable_examples,
)
from .loading import LoadedModel, encode
from .vision import example_images, fashion_mnist_dir, preprocess_images

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
KNN_TEMPERATURE = 0.07  # weights exp(similarity / T), as in the kNN protocol of InstDisc and DINO
DIGITS_GALLERY_SIZE = 1_700  # the remaining 97 digits serve as unseen queries
FASHION_GALLERY_SIZE = 1_000
TEXT_GALLERY_SIZE = 1_000
MAX_TEXT_TOKENS = 256
CACHED_GALLERIES = 4
BATCH_SIZE = 64
LABEL_SEPARATOR = " | "
MAX_K = 50
# Uploaded gallery images are kept at most this large: 2,000 full-size photos would not fit in a Space's memory,
# and models and the 96-pixel thumbnails shown need far fewer pixels.
MAX_UPLOAD_SIDE = 512
MAX_SKIPPED_SHOWN = 5
TEXT_QUERIES = ("Return the number of items in the list.", "A warm, funny and moving film.")


@dataclass
class Gallery:
    """Items (PIL images or strings), optional labels, L2-normalized features (n, hidden), a description and the
    uploaded files left out as unreadable ("name (why)")."""

    items: list
    labels: list[str] | None
    features: np.ndarray
    description: str
    skipped: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- sources


def image_sources() -> dict[str, str]:
    """Image gallery sources available here: key -> description."""
    sources = {"digits": "scikit-learn digits (8x8, labelled)"}
    if fashion_mnist_dir() is not None:
        sources["fashion-mnist"] = "Fashion-MNIST test images (labelled)"
    sources["upload"] = "my images or a .zip (its folder names become labels)"
    return sources


def text_sources() -> dict[str, str]:
    """Text gallery sources available here: key -> description."""
    sources = {"docstrings": "first lines of Python standard-library docstrings"}
    if _rotten_tomatoes_file() is not None:
        sources["rotten-tomatoes"] = "Rotten Tomatoes test snippets (labelled fresh/rotten)"
    sources["pasted"] = f"my lines, one item per line; an optional label before '{LABEL_SEPARATOR.strip()}'"
    return sources


def _rotten_tomatoes_file() -> Path | None:
    root = os.environ.get("HFSSL_DATA_DIR")
    path = Path(root) / "rotten_tomatoes" / "test.csv" if root else None
    return path if path is not None and path.is_file() else None


def load_image_items(source: str, files: Sequence[str] | None,
                     limits: Limits) -> tuple[list, list[str] | None, list[str]]:
    """(PIL images, labels or None, skipped uploads) of an image gallery source; `files` are image or .zip paths
    for "upload". Uploaded files that cannot be read are left out and listed as "name (why)"; DemoInputError when
    none is left. Built-in sets are cut to `limits.max_gallery_items`."""
    if source == "digits":
        from ..data.images import digits_dataset

        rows = digits_dataset().select(range(min(DIGITS_GALLERY_SIZE, limits.max_gallery_items)))
        return list(rows["image"]), [str(label) for label in rows["label"]], []
    if source == "fashion-mnist" and fashion_mnist_dir() is not None:
        from ..data.images import fashion_mnist_dataset

        size = min(FASHION_GALLERY_SIZE, limits.max_gallery_items)
        rows = fashion_mnist_dataset(fashion_mnist_dir(), "test", limit=size)
        names = rows.features["label"].names
        return list(rows["image"]), [names[label] for label in rows["label"]], []
    if source == "upload":
        return _uploaded_images(files or [], limits)
    raise DemoInputError(f"Unknown image gallery {source!r}; choose one of: {', '.join(image_sources())}.")


def _uploaded_images(files: Sequence[str], limits: Limits) -> tuple[list, list[str] | None, list[str]]:
    """(images, labels or None, "name (why)" of each file left out): unreadable images are skipped, not fatal."""
    if not files:
        raise DemoInputError("Upload images or a .zip of images first (or choose a built-in gallery).")
    entries: list[tuple[Image.Image, str | None]] = []
    skipped: list[str] = []
    for path in files:
        if str(path).lower().endswith(".zip"):
            members = _zip_members(path, limits)
        else:
            members = [(Path(path).name, Path(path).read_bytes(), None)]
        for name, data, label in members:
            try:
                entries.append((_open_image(data, name, limits), label))
            except DemoInputError as error:
                skipped.append(f"{name} ({error})")
        _check_gallery_size(len(entries), limits)
    names = ", ".join(Path(path).name for path in files)
    if not entries and not skipped:
        raise DemoInputError(f"No image files in {names}: upload {', '.join(IMAGE_SUFFIXES)} files or a .zip "
                             "holding them.")
    if not entries:
        raise DemoInputError(f"No readable image in {names}: {skipped_list(skipped)}. Upload images that open in "
                             "an image viewer (PNG, JPEG, ...) or a .zip of them.")
    if skipped:
        logger.warning("Gallery upload: skipped %d unreadable file(s): %s", len(skipped), "; ".join(skipped))
    labels = [label for _, label in entries]
    return [image for image, _ in entries], labels if all(labels) else None, skipped


def _zip_members(path: str, limits: Limits) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, bytes or None when the member cannot be unpacked, label) of each image file in a zip, one at a time;
    an image in `class/` gets the label "class". macOS metadata (__MACOSX/, ._name) is not an image and is ignored."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise DemoInputError(f"{Path(path).name} is not a valid zip file: {error}.") from error
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(IMAGE_SUFFIXES)
                 and not i.filename.startswith("__MACOSX") and not PurePosixPath(i.filename).name.startswith("._")]
        _check_gallery_size(len(infos), limits)
        unpacked = sum(i.file_size for i in infos)
        if unpacked > 4 * limits.max_upload_mb * 2**20:
            raise DemoInputError(f"{Path(path).name} unpacks to {unpacked / 2**20:.0f} MB; the limit is "
                                 f"{4 * limits.max_upload_mb} MB. Upload fewer or smaller images.")
        for info in infos:
            yield info.filename, _unpack(archive, info), PurePosixPath(info.filename).parent.name or None


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, OSError):
        return None  # damaged, encrypted or unsupported compression: reported as unreadable


def _open_image(data: bytes | None, name: str, limits: Limits) -> Image.Image:
    """The decoded image; DemoInputError saying why it cannot be used (unreadable, or over the pixel limit)."""
    if data is None:
        raise DemoInputError("cannot be unpacked from the zip")
    if not data:
        raise DemoInputError("an empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > limits.max_image_pixels:
            raise DemoInputError(f"{image.width}x{image.height} = {image.width * image.height:,} pixels, over this "
                                 f"demo's limit of {limits.max_image_pixels:,}; downscale it")
        image.load()
        image.thumbnail((MAX_UPLOAD_SIDE, MAX_UPLOAD_SIDE))  # the gallery keeps every image in memory
    except DemoInputError:
        raise
    except UnidentifiedImageError:
        raise DemoInputError("not an image format that can be read") from None
    except Exception as error:  # image plugins raise OSError, SyntaxError, struct.error, ... on damaged data
        raise DemoInputError(f"damaged or unreadable image: {error}") from error
    return image


def skipped_list(skipped: Sequence[str], shown: int = MAX_SKIPPED_SHOWN) -> str:
    """The first `shown` "name (why)" entries, then how many more."""
    more = len(skipped) - shown
    return "; ".join(skipped[:shown]) + (f"; and {more} more" if more > 0 else "")


def _check_gallery_size(count: int, limits: Limits) -> None:
    if count > limits.max_gallery_items:
        raise DemoInputError(f"The gallery has more than {limits.max_gallery_items:,} items ({count:,} so far); "
                             "upload fewer.")


def load_text_items(source: str, pasted: str | None, limits: Limits) -> tuple[list[str], list[str] | None]:
    """(texts, labels or None) of a text gallery source; `pasted` holds one item per line for "pasted".

    Built-in sets are cut to `limits.max_gallery_items`."""
    size = min(TEXT_GALLERY_SIZE, limits.max_gallery_items)
    if source == "docstrings":
        from ..data.corpora import stdlib_docstrings

        first_lines = dict.fromkeys(doc.strip().splitlines()[0] for doc in stdlib_docstrings())  # unique, in order
        return list(first_lines)[:size], None
    if source == "rotten-tomatoes" and _rotten_tomatoes_file() is not None:
        with _rotten_tomatoes_file().open(encoding="utf-8", newline="") as file:
            rows = [row for _, row in zip(range(size), csv.DictReader(file))]
        return [row["text"].strip() for row in rows], ["fresh" if row["label"] == "1" else "rotten" for row in rows]
    if source == "pasted":
        return _pasted_lines(pasted, limits)
    raise DemoInputError(f"Unknown text gallery {source!r}; choose one of: {', '.join(text_sources())}.")


def _pasted_lines(pasted: str | None, limits: Limits) -> tuple[list[str], list[str] | None]:
    lines = [line.strip() for line in (pasted or "").splitlines() if line.strip()]
    if not lines:
        raise DemoInputError("Paste the gallery texts first, one per line (or choose a built-in gallery).")
    _check_gallery_size(len(lines), limits)
    lines = [check_text(line, limits, what="gallery line") for line in lines]
    split = [line.split(LABEL_SEPARATOR, 1) if LABEL_SEPARATOR in line else [None, line] for line in lines]
    labels = [label.strip() for label, _ in split] if all(label for label, _ in split) else None
    return [text.strip() for _, text in split], labels


# ---------------------------------------------------------------- embedding, search, kNN, PCA


def embed(loaded: LoadedModel, items: Sequence) -> np.ndarray:
    """L2-normalized features (n, hidden) of PIL images or strings, by batches."""
    chunks = []
    for start in range(0, len(items), BATCH_SIZE):
        batch = list(items[start:start + BATCH_SIZE])
        chunks.append(encode(loaded, _model_inputs(loaded, batch)).float())  # (b, hidden)
    features = torch.cat(chunks) if chunks else torch.zeros(0, 1)
    return torch.nn.functional.normalize(features, dim=-1).numpy()


def _model_inputs(loaded: LoadedModel, batch: list) -> dict[str, torch.Tensor]:
    if loaded.modality == "image":
        return {"pixel_values": preprocess_images(loaded, batch)}
    limit = min(MAX_TEXT_TOKENS, getattr(loaded.model.config, "max_position_embeddings", MAX_TEXT_TOKENS))
    encoded = loaded.tokenizer(batch, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def nearest(features: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k gallery rows closest to `query` (hidden,), best first."""
    scores = features @ query  # (n,)
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]


def knn_vote(labels: Sequence[str], indices: np.ndarray, scores: np.ndarray,
             temperature: float = KNN_TEMPERATURE) -> dict[str, float]:
    """Class probabilities from the neighbours' labels, weighted by exp(similarity / temperature)."""
    weights = np.exp((scores - scores.max()) / temperature)
    votes: dict[str, float] = {}
    for index, weight in zip(indices, weights):
        votes[labels[index]] = votes.get(labels[index], 0.0) + float(weight)
    total = sum(votes.values())
    return {label: weight / total for label, weight in sorted(votes.items(), key=lambda kv: -kv[1])}


def pca_map(features: np.ndarray, labels: Sequence[str] | None, query: np.ndarray,
            neighbours: np.ndarray) -> Image.Image:
    """A scatter plot of the gallery on its first two principal components, coloured by label, with the
    query (star) and its neighbours (circled)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    center = features.mean(axis=0)
    _, singular, vt = np.linalg.svd(features - center, full_matrices=False)
    axes = np.zeros((2, features.shape[1]), dtype=features.dtype)
    axes[: min(2, len(vt))] = vt[:2]
    points, spot = (features - center) @ axes.T, (query - center) @ axes.T  # (n, 2), (2,)
    explained = (singular[:2] ** 2 / max(float((singular ** 2).sum()), 1e-12)).tolist() + [0.0, 0.0]
    figure = Figure(figsize=(5.5, 4.5), dpi=100)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if labels:
        for name in sorted(set(labels)):
            rows = [i for i, label in enumerate(labels) if label == name]
            ax.scatter(points[rows, 0], points[rows, 1], s=8, alpha=0.6, label=name)
    else:
        ax.scatter(points[:, 0], points[:, 1], s=8, alpha=0.5, color="tab:gray", label="gallery")
    ax.scatter(points[neighbours, 0], points[neighbours, 1], s=70, facecolors="none", edgecolors="black",
               label="neighbours")
    ax.scatter([spot[0]], [spot[1]], marker="*", s=260, color="red", edgecolors="black", label="query")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.legend(fontsize=7, loc="best", ncol=2 if labels and len(set(labels)) > 6 else 1)
    figure.tight_layout()
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


# ---------------------------------------------------------------- the tab


class GalleryTab:
    """Nearest-neighbour search over a gallery, kNN labels and a PCA map; galleries are embedded once and cached."""

    def __init__(self, loaded: LoadedModel, limits: Limits):
        self.loaded, self.limits = loaded, limits
        self.image = loaded.modality == "image"
        self.sources = image_sources() if self.image else text_sources()
        self.queries = example_images(count=4, offset=DIGITS_GALLERY_SIZE) if self.image else list(TEXT_QUERIES)
        self._cache: OrderedDict[tuple, Gallery] = OrderedDict()
        self._lock = threading.Lock()

    def gallery(self, source: str, uploads: Sequence[str] | str | None) -> Gallery:
        """The embedded gallery for a source (uploads: file paths for images, pasted text for texts), cached."""
        key = (source, _fingerprint(uploads) if source in ("upload", "pasted") else None)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        start = time.perf_counter()
        if self.image:
            items, labels, skipped = load_image_items(source, uploads, self.limits)
        else:
            (items, labels), skipped = load_text_items(source, uploads, self.limits), []
        features = embed(self.loaded, items)
        took = time.perf_counter() - start
        description = (f"{self.sources.get(source, source)}: {_count(len(items), 'item')}"
                       + (f", {_count(len(set(labels)), 'label')}" if labels else ", no labels")
                       + f"; embedded in {took:.1f} s")
        gallery = Gallery(items, labels, features, description, skipped)
        with self._lock:
            self._cache[key] = gallery
            while len(self._cache) > CACHED_GALLERIES:
                self._cache.popitem(last=False)
        return gallery

    @reports_input_errors(lambda: ([], None, None))
    def search(self, query, source: str, uploads, k: float):
        """Event handler: (neighbours, kNN class probabilities or None, PCA map, status).

        Neighbours are (image, caption) pairs for images and rows [rank, similarity, label, text] for texts.
        """
        if query is None or (isinstance(query, str) and not query.strip()):
            raise DemoInputError("Give a query: " + ("upload an image or click an example." if self.image
                                                     else "type a text or click an example."))
        if self.image:
            query = check_image(query, self.limits, what="query image")
        else:
            query = check_text(query, self.limits, what="query")
        k = int(check_number(k, "number of neighbours (k)", 1, MAX_K, whole=True))
        gallery = self.gallery(source, uploads)
        query_features = embed(self.loaded, [query])[0]  # (hidden,)
        indices, scores = nearest(gallery.features, query_features, min(k, len(gallery.items)))
        votes = knn_vote(gallery.labels, indices, scores) if gallery.labels else None
        plot = pca_map(gallery.features, gallery.labels, query_features, indices)
        status = f"Gallery: {gallery.description}." + (" Labels vote for the query (kNN)." if votes else "")
        if gallery.skipped:
            warning = (f"Skipped {_count(len(gallery.skipped), 'unreadable file')}: {skipped_list(gallery.skipped)}. "
                       "The gallery holds the other images.")
            _warn(warning)
            status += f"\n\n⚠️ {warning}"
        return self._neighbours(gallery, indices, scores), votes, plot, status

    def _neighbours(self, gallery: Gallery, indices: np.ndarray, scores: np.ndarray) -> list:
        labels = gallery.labels or [""] * len(gallery.items)
        if not self.image:
            return [[rank, round(float(s), 4), labels[i], gallery.items[i]]
                    for rank, (i, s) in enumerate(zip(indices, scores), start=1)]
        shown = []
        for i, score in zip(indices, scores):
            image = gallery.items[i].convert("RGB")
            scale = max(1, 96 // max(image.size))
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
            shown.append((image, f"{score:.3f}" + (f" · {labels[i]}" if labels[i] else "")))
        return shown

    def render(self) -> None:
        import gradio as gr

        what = "image" if self.image else "text"
        gr.Markdown(f"Find the gallery {what}s closest to a query in the model's feature space (cosine similarity). "
                    f"With labels, the neighbours vote for the query's class (kNN). Galleries hold at most "
                    f"{self.limits.max_gallery_items:,} items.")
        with gr.Row():
            with gr.Column():
                if self.image:
                    # The query reaches `preprocess_images` as uploaded, so it is converted like the gallery and
                    # the training data (transparency on white, 16-bit scaled), not by Gradio.
                    query = image_input(value=self.queries[0], label="Query image", elem_id="gallery-query")
                else:
                    query = gr.Textbox(value=self.queries[0], label="Query text", lines=2, elem_id="gallery-query")
                k = gr.Slider(1, MAX_K, value=8, step=1, label="Neighbours (k)")
            with gr.Column():
                source = gr.Radio([(d, key) for key, d in self.sources.items()], value=next(iter(self.sources)),
                                  label="Gallery", elem_id="gallery-source")
                if self.image:
                    # No file_types: Gradio would refuse the whole upload for one stray file (a README, a
                    # .DS_Store in a dropped folder); `_uploaded_images` skips such files and says which.
                    uploads = gr.File(file_count="multiple", label="Gallery images or a .zip (for 'my images')")
                else:
                    uploads = gr.Textbox(label="Gallery lines (for 'my lines')", lines=4,
                                         placeholder=f"positive{LABEL_SEPARATOR}A delightful film.\n"
                                                     f"negative{LABEL_SEPARATOR}A tedious mess.")
        button = gr.Button("Search", variant="primary", elem_id="gallery-button")
        message = gr.Markdown(elem_id="gallery-message")
        with gr.Row():
            if self.image:
                neighbours = gr.Gallery(label="Nearest neighbours (similarity · label)", columns=4, format="png",
                                        elem_id="gallery-neighbours")
            else:
                neighbours = gr.Dataframe(headers=["rank", "similarity", "label", "text"], interactive=False,
                                          wrap=True, label="Nearest neighbours", elem_id="gallery-neighbours",
                                          column_widths=["9%", "14%", "14%", "63%"])
            with gr.Column():
                votes = gr.Label(label="kNN class (needs a labelled gallery)", num_top_classes=5,
                                 elem_id="gallery-knn")
                plot = gr.Image(label="PCA map of the gallery", format="png", interactive=False, elem_id="gallery-pca")
        inputs, outputs = [query, source, uploads, k], [neighbours, votes, plot, message]
        runnable_examples([[q, next(iter(self.sources)), None, 8] for q in self.queries], inputs, outputs, self.search,
                          "gallery_example")
        button.click(self.search, inputs, outputs, api_name="search_gallery")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _warn(message: str) -> None:
    """A warning toast in the page (outside a Gradio event, a Python warning)."""
    import gradio as gr

    gr.Warning(message)


def _fingerprint(uploads: Sequence[str] | str | None) -> str:
    """A key for uploaded files (paths, sizes, modification times) or pasted text."""
    digest = hashlib.sha256()
    if isinstance(uploads, str):
        digest.update(uploads.encode("utf-8", "surrogatepass"))  # pasted text may hold unpaired surrogates
        return digest.hexdigest()
    for path in uploads or ():
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()
