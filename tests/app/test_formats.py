"""The copy formats give exactly these strings, from the function and from the buttons."""

from __future__ import annotations

import pytest

from im2latex_desktop.formats import FORMATS, format_latex

LATEX = r"\frac{a}{b}"
EXPECTED = {
    "raw": "\\frac{a}{b}",
    "inline": "$\\frac{a}{b}$",
    "display": "\\[\\frac{a}{b}\\]",
    "equation": "\\begin{equation}\n\\frac{a}{b}\n\\end{equation}",
}


@pytest.mark.parametrize("fmt", list(EXPECTED))
def test_format_strings_are_exact(fmt):
    assert format_latex(LATEX, fmt) == EXPECTED[fmt]
    assert format_latex(f"  {LATEX}\n", fmt) == EXPECTED[fmt]


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format"):
        format_latex("x", "markdown")
    assert set(FORMATS) == set(EXPECTED)


def test_copy_buttons_emit_the_exact_strings(qtbot):
    from im2latex_desktop.gui.result_view import ResultView

    view = ResultView()
    qtbot.addWidget(view)
    assert not view.copy_buttons["raw"].isEnabled()
    view.show_result(None, LATEX, 0.9, [])
    got = []
    view.copy_requested.connect(lambda fmt, text: got.append((fmt, text)))
    for fmt, button in view.copy_buttons.items():
        button.click()
    assert got == list(EXPECTED.items())
