"""Loading an image from a path, bytes or a PIL image: decoded at once, mode kept, and every
kind of bad file refused with one sentence that names it."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from model.errors import Im2LatexError, ImageError
from model.images import MAX_PIXELS, load_image


def _png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def _sample(mode: str = "L") -> Image.Image:
    array = np.full((40, 120), 255, np.uint8)
    array[10:30, 20:24] = 0
    array[18:21, 40:100] = 0
    return Image.fromarray(array).convert(mode)


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 1-bit pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _assert_one_sentence(error: Im2LatexError, name: str | None = None) -> None:
    message = str(error)
    assert message.endswith(".") and "\n" not in message and message[0].isupper()
    assert "Traceback" not in message
    if name is not None:
        assert name in message


# ------------------------------------------------------------------ good images


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "1"])
def test_path_and_bytes_load_in_their_own_mode(tmp_path: Path, mode: str):
    image = _sample(mode)
    path = tmp_path / f"snip-{mode}.png"
    image.save(path)
    for source in (path, str(path), path.read_bytes()):
        loaded = load_image(source)
        assert loaded.mode == mode and loaded.size == image.size
        assert np.array_equal(np.asarray(loaded.convert("L")), np.asarray(image.convert("L")))


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path: Path):
    array = (np.linspace(0, 65535, 40 * 60).reshape(40, 60)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    loaded = load_image(path)
    assert loaded.mode.startswith("I")
    assert int(np.asarray(loaded).max()) > 255


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_other_formats_load(fmt: str):
    buffer = io.BytesIO()
    _sample("RGB").save(buffer, fmt)
    assert load_image(buffer.getvalue()).size == (120, 40)


def test_pil_image_is_returned_decoded():
    image = _sample("RGB")
    assert load_image(image) is image
    lazy = Image.open(io.BytesIO(_png_bytes(_sample())))  # not decoded yet
    loaded = load_image(lazy)
    assert loaded.size == (120, 40) and loaded.getpixel((21, 15)) == 0


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    assert load_image(buffer.getvalue()).size == (20, 60)


def _tiff_block(*entries: tuple[int, int, int, int], count: int | None = None) -> bytes:
    """A little-endian TIFF header and IFD0 holding ``entries`` (tag, type, count, value)."""
    ifd = struct.pack("<H", len(entries) if count is None else count)
    ifd += b"".join(struct.pack("<HHII", *entry) for entry in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


# A description tag whose 500 bytes lie past the block's end; an IFD that claims 50 entries and has none.
CORRUPT_EXIF = {
    "tag past the end": _tiff_block((0x010E, 2, 500, 100), (0x0112, 3, 1, 1)),
    "short IFD": _tiff_block(count=50),
}


def _with_exif(fmt: str, block: bytes) -> bytes:
    buffer = io.BytesIO()
    _sample("RGB").save(buffer, fmt)
    data = buffer.getvalue()
    if fmt == "PNG":
        return _png_bytes(_sample("RGB"), exif=block)
    segment = b"Exif\x00\x00" + block     # a JPEG APP1 segment right after the SOI marker
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("kind", sorted(CORRUPT_EXIF))
def test_corrupt_exif_loads_without_a_word(tmp_path: Path, capfd, fmt: str, kind: str):
    data = _with_exif(fmt, CORRUPT_EXIF[kind])
    with warnings.catch_warnings(record=True) as plain:   # the block is bad: PIL on its own complains
        warnings.simplefilter("always")
        ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert any("EXIF" in str(w.message) or "Tag data" in str(w.message) for w in plain)

    path = tmp_path / f"odd.{fmt.lower()}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = Image.open(io.BytesIO(data))   # a JPEG's EXIF is read here, by the caller, not by load_image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = [load_image(path), load_image(data), load_image(lazy)]
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr().err == ""
    for image in loaded:
        assert image.size == (120, 40) and image.convert("L").getpixel((21, 15)) < 60


def test_corrupt_exif_on_a_truncated_file_is_still_refused(tmp_path: Path):
    data = _with_exif("PNG", CORRUPT_EXIF["short IFD"])
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) - 40])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ImageError, match="truncated or corrupt") as info:
        warnings.simplefilter("always")
        load_image(path)
    _assert_one_sentence(info.value, "cut.png")
    assert caught == []


def test_image_is_fully_read_and_file_closed(tmp_path: Path):
    path = tmp_path / "snip.png"
    _sample().save(path)
    loaded = load_image(path)
    path.unlink()  # the file is no longer needed (and on Windows could not be deleted if open)
    assert loaded.getpixel((21, 15)) == 0


# ------------------------------------------------------------------ bad files


def test_text_file_named_png(tmp_path: Path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_sentence(info.value, "notes.png")
    assert "not an image" in str(info.value)


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as info:
        load_image(path)
    _assert_one_sentence(info.value, "empty.png")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path: Path, fmt: str):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(buffer, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(path)
    _assert_one_sentence(info.value, path.name)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(path.read_bytes())


def test_truncated_lazy_pil_image():
    data = _png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (100, 100), dtype=np.uint8)))
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(lazy)


@pytest.mark.parametrize("size", [(9000, 9000), (30000, 30000), (100000, 700)])
def test_decompression_bomb(tmp_path: Path, size: tuple[int, int]):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb_png(*size))
    assert path.stat().st_size < 1000
    with pytest.raises(ImageError, match="megapixels") as info:
        load_image(path)
    _assert_one_sentence(info.value, "bomb.png")
    assert size[0] * size[1] > MAX_PIXELS


def test_pil_image_over_the_pixel_cap():
    with pytest.raises(ImageError, match="megapixels"):
        load_image(Image.new("1", (10000, 6500)))


@pytest.mark.parametrize("data, what", [
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "pdf"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "svg"),
    (bytes(range(256)) * 4, "garbage"),
])
def test_unsupported_formats(tmp_path: Path, data: bytes, what: str):
    path = tmp_path / f"formula.{what}"
    path.write_bytes(data)
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_sentence(info.value, path.name)


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(ImageError, match="does not exist") as info:
        load_image(tmp_path / "nowhere.png")
    _assert_one_sentence(info.value, "nowhere.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_wrong_source_type():
    with pytest.raises(ImageError, match="path, bytes or a PIL image"):
        load_image(12345)  # type: ignore[arg-type]


def test_errors_are_user_errors():
    assert issubclass(ImageError, Im2LatexError)
