"""The ways a formula can be copied: raw LaTeX, inline math, display math, an equation environment."""

from __future__ import annotations

FORMATS: dict[str, str] = {
    "raw": "LaTeX",
    "inline": "$…$",
    "display": "\\[…\\]",
    "equation": "equation",
}


def format_latex(latex: str, fmt: str) -> str:
    """Wrap ``latex`` (stripped of surrounding white space) for pasting into a document."""
    body = latex.strip()
    if fmt == "raw":
        return body
    if fmt == "inline":
        return f"${body}$"
    if fmt == "display":
        return f"\\[{body}\\]"
    if fmt == "equation":
        return f"\\begin{{equation}}\n{body}\n\\end{{equation}}"
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
