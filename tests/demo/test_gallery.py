"""Gallery search, kNN voting, PCA map and gallery sources, called directly (no server)."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfssl.demo.gallery import GalleryTab, knn_vote, load_text_items, nearest, pca_map
from hfssl.demo.inputs import DemoInputError, Limits
from hfssl.demo.loading import load_demo_model


def _png(seed: int, size: int = 12) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


@pytest.fixture(scope="module")
def encoder(encoder_run):
    return load_demo_model(encoder_run)


def test_nearest_ranks_by_cosine_similarity():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]])
    indices, scores = nearest(features, np.array([1.0, 0.0]), k=2)
    assert indices.tolist() == [0, 2] and scores == pytest.approx([1.0, math.sqrt(0.5)])


def test_knn_vote_weights_neighbours_by_exp_similarity():
    votes = knn_vote(["a", "b", "a"], np.array([0, 1, 2]), np.array([0.9, 0.8, 0.1]), temperature=0.1)
    a, b = math.exp(0) + math.exp(-8), math.exp(-1)
    assert list(votes) == ["a", "b"]
    assert votes["a"] == pytest.approx(a / (a + b)) and votes["b"] == pytest.approx(b / (a + b))


def test_pca_map_is_an_image_with_and_without_labels():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 5))
    for labels in (None, ["x", "y", "z"] * 10):
        image = pca_map(features, labels, features[0], np.array([1, 2]))
        assert image.mode == "RGB" and image.size == (550, 450)
    assert pca_map(features[:1, :1], None, features[0, :1], np.array([0])).size == (550, 450)  # degenerate


def test_zip_gallery_finds_the_query_itself_and_votes_its_folder(encoder, tmp_path):
    archive = _zip(tmp_path / "gallery.zip", {f"{'cats' if i % 2 else 'dogs'}/{i}.png": _png(i) for i in range(6)}
                   | {"readme.txt": b"not an image"})
    tab = GalleryTab(encoder, Limits())
    neighbours, votes, plot, status = tab.search(Image.open(io.BytesIO(_png(3))), "upload", [archive], 3)
    assert len(neighbours) == 3 and neighbours[0][1].startswith("1.000 · cats")
    assert set(votes) <= {"cats", "dogs"} and sum(votes.values()) == pytest.approx(1.0)
    assert isinstance(plot, Image.Image) and "6 items, 2 labels" in status
    assert tab.gallery("upload", [archive]) is tab.gallery("upload", [archive])  # embedded once, then cached


def test_loose_image_files_make_an_unlabelled_gallery(encoder, tmp_path):
    files = []
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(_png(i))
        files.append(str(tmp_path / f"{i}.png"))
    neighbours, votes, _, status = GalleryTab(encoder, Limits()).search(Image.open(files[1]), "upload", files, 5)
    assert len(neighbours) == 3 and neighbours[0][1] == "1.000" and votes is None and "no labels" in status


def test_upload_limits_and_bad_files_are_messages(encoder, tmp_path):
    tab = GalleryTab(encoder, Limits(max_gallery_items=3, max_image_pixels=20 * 20))
    query = Image.open(io.BytesIO(_png(0)))
    many = _zip(tmp_path / "many.zip", {f"{i}.png": _png(i) for i in range(4)})
    big = _zip(tmp_path / "big.zip", {"big.png": _png(0, size=21)})
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    no_images = _zip(tmp_path / "notes.zip", {"notes.txt": b"hello", "__MACOSX/._0.png": b"metadata"})
    cases = {
        "more than 3": [many], "No readable image in big.zip: big.png (21x21 = 441 pixels, over this demo's limit "
                                "of 400": [big],
        "not a valid zip": [str(tmp_path / "broken.zip")],
        "No readable image in broken.png: broken.png (not an image format that can be read)":
            [str(tmp_path / "broken.png")],
        "No image files in notes.zip": [no_images], "Upload images": [],
    }
    for expected, files in cases.items():
        result = tab.search(query, "upload", files, 3)
        assert result[:3] == ([], None, None) and expected in result[3], expected
    assert "query image is 30x30" in tab.search(Image.new("L", (30, 30)), "digits", None, 3)[3]
    assert "Unknown image gallery" in tab.search(query, "imagenet", None, 3)[3]
    assert "number of neighbours (k) must be a whole number from 1 to 50" in tab.search(query, "digits", None, 0)[3]


def test_unreadable_images_are_skipped_with_a_warning_naming_them(encoder, tmp_path, caplog):
    """One corrupt, truncated or damaged member does not sink the whole zip: the rest make the gallery and the
    status (shown on every search) names what was left out."""
    truncated = _png(7, size=40)[:-30]  # a valid header, its pixel data cut short
    archive = _zip(tmp_path / "gallery.zip", {f"cats/{i}.png": _png(i) for i in range(4)}
                   | {"cats/corrupt.png": b"not an image", "cats/truncated.png": truncated,
                      "__MACOSX/cats/._0.png": b"metadata", "cats/._1.png": b"metadata"})
    loose = tmp_path / "broken.jpg"
    loose.write_bytes(b"\xff\xd8 not really a jpeg")
    tab = GalleryTab(encoder, Limits())
    with pytest.warns(UserWarning, match="Skipped 3 unreadable files"):  # gr.Warning outside an event
        neighbours, votes, _, status = tab.search(Image.open(io.BytesIO(_png(2))), "upload", [archive, str(loose)], 3)
    assert neighbours[0][1].startswith("1.000 · cats") and votes == {"cats": pytest.approx(1.0)}
    assert "4 items, 1 label;" in status
    assert "⚠️ Skipped 3 unreadable files: cats/corrupt.png (not an image format that can be read); " \
           "cats/truncated.png (damaged or unreadable image: " in status and "broken.jpg (not an image" in status
    assert "._" not in status  # macOS metadata is not an image, so it is not reported either
    assert "skipped 3 unreadable file(s)" in caplog.text


def test_uploaded_images_are_kept_small(encoder, tmp_path):
    """The gallery holds every upload in memory: large ones are kept as thumbnails (aspect ratio kept)."""
    Image.new("RGB", (1200, 600), (200, 30, 30)).save(tmp_path / "wide.png")
    gallery = GalleryTab(encoder, Limits()).gallery("upload", [str(tmp_path / "wide.png")])
    assert gallery.items[0].size == (512, 256) and gallery.features.shape[0] == 1


def test_digits_gallery_is_labelled_and_cut_to_the_limit(encoder):
    tab = GalleryTab(encoder, Limits(max_gallery_items=300))
    neighbours, votes, _, status = tab.search(Image.open(tab.queries[0]), "digits", None, 5)
    assert len(neighbours) == 5 and "300 items, 10 labels" in status
    assert set(votes) <= {str(d) for d in range(10)}
    assert all(caption.split(" · ")[1] in "0123456789" for _, caption in neighbours)


def test_text_gallery_from_pasted_lines_and_docstrings(loaded_mlm):
    tab = GalleryTab(loaded_mlm, Limits(max_gallery_items=100))
    pasted = "pos | A delightful, funny film.\nneg | A tedious mess.\npos | Warm and moving."
    rows, votes, _, status = tab.search("A funny film.", "pasted", pasted, 2)
    assert [row[0] for row in rows] == [1, 2] and rows[0][1] >= rows[1][1]
    assert {row[2] for row in rows} <= {"pos", "neg"} and set(votes) <= {"pos", "neg"}
    rows, votes, _, status = tab.search("Return the number of items.", "docstrings", None, 4)
    assert len(rows) == 4 and votes is None and "100 items, no labels" in status
    assert "Give a query" in tab.search("   ", "docstrings", None, 4)[3]


def test_pasted_lines_labels_only_when_every_line_has_one():
    texts, labels = load_text_items("pasted", "a | one\n\nb | two | three\n", Limits())
    assert texts == ["one", "two | three"] and labels == ["a", "b"]
    assert load_text_items("pasted", "a | one\nplain", Limits()) == (["one", "plain"], None)
    with pytest.raises(DemoInputError, match="at most 5"):
        load_text_items("pasted", "123456", Limits(max_text_chars=5))


def test_shared_evaluation_sets_become_galleries(data_dir, encoder, loaded_mlm, monkeypatch):
    """Fashion-MNIST and Rotten Tomatoes from HFSSL_DATA_DIR (skipped where the shared data is absent)."""
    monkeypatch.setenv("HFSSL_DATA_DIR", str(data_dir))
    images = GalleryTab(encoder, Limits(max_gallery_items=40))
    assert "fashion-mnist" in images.sources
    neighbours, votes, _, status = images.search(Image.new("L", (28, 28), 90), "fashion-mnist", None, 4)
    assert "40 items, " in status and set(votes) <= {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                      "Shirt", "Sneaker", "Bag", "Ankle boot"}
    texts = GalleryTab(loaded_mlm, Limits(max_gallery_items=40))
    rows, votes, _, status = texts.search("A warm and funny film.", "rotten-tomatoes", None, 5)
    assert len(rows) == 5 and set(votes) <= {"fresh", "rotten"} and "40 items, 2 labels" in status
