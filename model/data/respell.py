"""Old and wrapper spellings in source lists, rewritten before normalization.

The lists come from books written over decades: plain-TeX ``{a \\over b}``, ``\\sb``/``\\sp``,
``\\cr`` row ends, ``\\mathop{\\mathrm{Hom}}`` from expanded macros, ``\\textup`` units.  Each
renders exactly like a modern spelling (``\\frac{a}{b}``, ``_``/``^``, ``\\\\``,
``\\operatorname{Hom}``, ``\\text``), so a model trained on both would be asked to guess which
one an image came from.  We rewrite them to the modern spelling on the token list, so the
normalizer sees one form.  (The tokenizer would be the better home for the plain synonyms;
until then the corpus build applies them.)
"""

from __future__ import annotations

from dataclasses import dataclass

from model.tokenizer import FONT_SWITCHES, Group, LatexSyntaxError, Node, _flatten, parse

# one-token synonyms the tokenizer does not know
TOKEN_SYNONYMS = {
    "\\sb": "_", "\\sp": "^", "\\cr": "\\\\", "\\textup": "\\text", "\\dag": "\\dagger",
    "\\empty": "\\emptyset", "\\ddag": "\\ddagger",
}
# \not followed by one of these is the negated relation's own command
NEGATIONS = {"=": "\\neq", "\\in": "\\notin", "\\subseteq": "\\nsubseteq", "\\mid": "\\nmid",
             "\\exists": "\\nexists", "\\leq": "\\nleq", "\\geq": "\\ngeq", "<": "\\nless",
             ">": "\\ngtr"}
INFIX = {"\\over": "\\frac", "\\choose": "\\binom"}
# class wrappers: \mathbin{X} is X spaced as a binary operator, which X already is
UNWRAP = {"\\mathbin", "\\mathrel", "\\mathord", "\\mathpunct", "\\mathinner"}
_OPERATOR_FONTS = {"\\mathrm", "\\rm", "\\operatorname", "\\text"}
_TRIGGERS = set(INFIX) | UNWRAP | set(FONT_SWITCHES) | {"\\mathop", "\\atop"}


def respell(tokens: list[str]) -> list[str]:
    """Tokens with the rewrites above applied; LatexSyntaxError if braces do not balance."""
    tokens = [TOKEN_SYNONYMS.get(t, t) for t in tokens]
    tokens = _negations(tokens)
    if not any(t in _TRIGGERS for t in tokens):
        return tokens
    if "\\atop" in tokens:
        raise LatexSyntaxError("\\atop has no modern spelling")
    return _flatten(_rewrite(parse(tokens)))


def _negations(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "\\not" and i + 1 < len(tokens) and tokens[i + 1] in NEGATIONS:
            out.append(NEGATIONS[tokens[i + 1]])
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def _rewrite(nodes: list[Node]) -> list[Node]:
    nodes = [Group(_rewrite(n.children)) if isinstance(n, Group) else n for n in nodes]
    nodes = _unwrap(nodes)
    return _cells(nodes)


def _unwrap(nodes: list[Node]) -> list[Node]:
    """Drop class wrappers; ``\\mathop{\\mathrm{Hom}}`` becomes ``\\operatorname{Hom}``."""
    out: list[Node] = []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        following = nodes[i + 1] if i + 1 < len(nodes) else None
        if isinstance(node, Group):
            out.append(node)
            i += 1
        elif node in UNWRAP and isinstance(following, Group):
            if node == "\\mathord":
                out.append(following)
            else:
                out.extend(following.children)
            i += 2
        elif node == "\\mathop" and isinstance(following, Group):
            name = _operator_name(following)
            out.extend(["\\operatorname", Group(name)] if name else [following])
            i += 2
        elif node in UNWRAP or node == "\\mathop":
            i += 1  # \mathbin\cup: the wrapper applies to one token, which stays
        else:
            out.append(node)
            i += 1
    return out


def _operator_name(group: Group) -> list[Node] | None:
    """Letters of ``{\\mathrm{Hom}}`` / ``{\\rm Hom}`` / ``{Hom}``, when that is all there is."""
    children = group.children
    if len(children) == 2 and children[0] in _OPERATOR_FONTS and isinstance(children[1], Group):
        children = children[1].children
    elif children and children[0] == "\\rm":
        children = children[1:]
    if children and all(isinstance(c, str) and len(c) == 1 and c.isalpha() for c in children):
        return list(children)
    return None


@dataclass
class _Span:
    """``\\begin..\\end`` or ``\\left..\\right``: a group of its own for infix commands."""

    head: list[Node]
    inner: list[Node]
    tail: list[Node]


def _cells(nodes: list[Node]) -> list[Node]:
    """Apply infix ``\\over``/``\\choose`` in each alignment cell, spans handled inside out."""
    out: list[Node] = []
    cell: list[Node | _Span] = []
    for unit in _spans(nodes):
        if isinstance(unit, str) and unit in ("&", "\\\\"):
            out.extend(_infix(cell))
            out.append(unit)  # type: ignore[arg-type]
            cell = []
        else:
            cell.append(unit)
    out.extend(_infix(cell))
    return out


def _spans(nodes: list[Node]) -> list[Node | _Span]:
    units: list[Node | _Span] = []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node == "\\left" or (isinstance(node, str) and node.startswith("\\begin{")):
            j = _matching(nodes, i)
            width = 2 if node == "\\left" else 1
            units.append(_Span(nodes[i:i + width], _cells(nodes[i + width:j]), nodes[j:j + width]))
            i = j + width
        else:
            units.append(node)
            i += 1
    return units


def _matching(nodes: list[Node], i: int) -> int:
    """Index of the ``\\right``/``\\end`` that closes the opener at ``i``."""
    is_left = nodes[i] == "\\left"
    depth = 0
    for j in range(i, len(nodes)):
        node = nodes[j]
        if not isinstance(node, str):
            continue
        if node == "\\left" if is_left else node.startswith("\\begin{"):
            depth += 1
        elif node == "\\right" if is_left else node.startswith("\\end{"):
            depth -= 1
            if depth == 0:
                if is_left and j + 1 >= len(nodes):
                    break
                return j
    raise LatexSyntaxError("\\left without \\right" if is_left else "\\begin without \\end")


def _expand(units: list[Node | _Span]) -> list[Node]:
    out: list[Node] = []
    for unit in units:
        if isinstance(unit, _Span):
            out.extend([*unit.head, *unit.inner, *unit.tail])
        else:
            out.append(unit)
    return out


def _infix(units: list[Node | _Span]) -> list[Node]:
    positions = [k for k, n in enumerate(units) if isinstance(n, str) and n in INFIX]
    if not positions:
        return _switch(units)
    if len(positions) > 1:
        raise LatexSyntaxError("ambiguous: two infix fractions in one group")
    k = positions[0]
    return [INFIX[units[k]], Group(_switch(units[:k])), Group(_switch(units[k + 1:]))]  # type: ignore[index]


def _switch(units: list[Node | _Span]) -> list[Node]:
    """``\\rm otherwise`` up to the end of its cell is ``\\mathrm{otherwise}``."""
    for k, unit in enumerate(units):
        if isinstance(unit, str) and unit in FONT_SWITCHES:
            rest = _switch(units[k + 1:])
            return _expand(units[:k]) + ([FONT_SWITCHES[unit], Group(rest)] if rest else [])
    return _expand(units)
