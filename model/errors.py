"""Errors a user can see.  Each message is one sentence a person understands."""


class Im2LatexError(Exception):
    """Base class: ``str(error)`` is shown to the user as is."""


class ImageError(Im2LatexError):
    """The image cannot be read: not an image, truncated, corrupt, or absurdly large."""


class BlankImageError(Im2LatexError):
    """The image holds no formula: blank, uniform, or too small to read."""


class ModelNotFoundError(Im2LatexError):
    """No model file where we looked."""


class CheckpointError(Im2LatexError):
    """A model file exists but is corrupt, hostile, or does not match this program."""


class TexNotFoundError(Im2LatexError):
    """pdflatex (or another TeX tool) is not installed."""
