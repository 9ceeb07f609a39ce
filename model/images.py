"""Open an image from a path, bytes or a PIL image, and fail early with one clear sentence.

Decoding is forced here (``Image.load``) because PIL opens files lazily: without it a truncated
PNG would only fail later, deep inside preprocessing, with a message nobody understands.  The
image keeps its mode; turning any mode into an ink map is the job of ``model.preprocess``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import ImageError

# A formula snip is at most a few megapixels; 64 Mpx is already a full 8K screen.  Larger
# claims in a header are treated as a decompression bomb and refused before decoding.
MAX_PIXELS = 64_000_000
# Reading a file bigger than this into memory is refused before reading it.
MAX_FILE_BYTES = 512 * 1024 * 1024

ImageSource = Union[str, Path, bytes, bytearray, memoryview, Image.Image]


def load_image(source: ImageSource) -> Image.Image:
    """Return the decoded image of ``source`` (path, encoded bytes, or PIL image).

    Raises ImageError for a missing, empty, truncated, corrupt, unsupported or absurdly large
    image.  The EXIF orientation of photos is applied so that the formula stands upright.
    """
    if isinstance(source, Image.Image):
        return _check_loaded(source, "the image")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "the image data"
        if not data:
            raise ImageError("Cannot read the image data: it is empty.")
        return _open(io.BytesIO(data), name)
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = f"'{path}'"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageError(f"Cannot read {name}: the file does not exist.") from None
        except OSError as error:
            raise ImageError(f"Cannot read {name}: {error.strerror or error}.") from None
        if path.is_dir():
            raise ImageError(f"Cannot read {name}: it is a folder, not an image file.")
        if size == 0:
            raise ImageError(f"Cannot read {name}: the file is empty.")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"Cannot read {name}: the file is too large ({size / 2**20:.0f} MiB) to be a snip.")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageError(f"Cannot read {name}: {error.strerror or error}.") from None
        return _open(io.BytesIO(data), name)
    raise ImageError(f"Cannot read an image from a {type(source).__name__}; give a path, bytes or a PIL image.")


def _open(stream: io.BytesIO, name: str) -> Image.Image:
    """Decode ``stream`` fully, turning every PIL failure into one ImageError sentence.

    PIL's own warnings about odd-but-readable files ("Corrupt EXIF data", "Tag data larger than
    file", ...) are silenced: the picture is what matters, and a file it cannot read still ends
    in an ImageError.  The one warning kept is the decompression bomb, which becomes an error.
    """
    with _quiet_pil():
        try:
            image = Image.open(stream)
            _check_size(image, name)  # header only: refuse a bomb before decoding it
            image.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"Cannot read {name}: it is not an image in a format we can read (PNG, JPEG, BMP, GIF, TIFF, WebP...).") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"Cannot read {name}: it claims to be larger than {MAX_PIXELS // 1_000_000} megapixels (a decompression bomb?).") from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as error:
            # OSError: truncated or broken data; ValueError: e.g. an oversized PNG text chunk;
            # SyntaxError/EOFError/IndexError/TypeError: what some plugins raise on garbage.
            detail = str(error).strip().rstrip(".") or type(error).__name__
            if "ghostscript" in detail.lower():
                raise ImageError(f"Cannot read {name}: PostScript images need Ghostscript, which is not installed.") from None
            raise ImageError(f"Cannot read {name}: the file is truncated or corrupt ({detail}).") from None
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # a broken EXIF block must not cost the picture itself
            pass
    return _check_loaded(image, name)


@contextlib.contextmanager
def _quiet_pil():
    """PIL's warnings ignored, except the decompression bomb one, raised as an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        # PIL only warns between its own limits; a warning here means a bomb, so make it an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _check_size(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"Cannot read {name}: it has no pixels ({width}x{height}).")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"Cannot read {name}: at {width}x{height} pixels it is larger than "
            f"{MAX_PIXELS // 1_000_000} megapixels (a decompression bomb?)."
        )


def _check_loaded(image: Image.Image, name: str) -> Image.Image:
    _check_size(image, name)
    try:
        with _quiet_pil():
            image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        detail = str(error).strip().rstrip(".") or type(error).__name__
        raise ImageError(f"Cannot read {name}: the image data is truncated or corrupt ({detail}).") from None
    return image
