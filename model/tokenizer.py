"""LaTeX tokens: split, normalize to one canonical form, write back as a person would type it.

The canonical form is what the model is trained to emit and what scoring compares, so two
spellings that render the same (``x^2`` and ``x^{2}``, ``\\le`` and ``\\leq``) must become one
token sequence.  Invisible or style-only commands (``\\displaystyle``, thin spaces, ``\\limits``)
are dropped: a snip cannot show them reliably, so asking the model for them only adds noise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

SPACE = " "  # the token for a space inside text mode (\text{if x}); never emitted in math mode

# Commands whose argument is typeset in text mode, where spaces are significant.
TEXT_COMMANDS = {"\\text", "\\textrm", "\\textbf", "\\textit", "\\textsf", "\\texttt", "\\mbox", "\\textnormal"}

# Number of mandatory arguments of the commands whose arguments we brace canonically.
ARG_COUNT = {
    "\\frac": 2, "\\binom": 2, "\\overset": 2, "\\underset": 2, "\\stackrel": 2, "\\cfrac": 2,
    "\\sqrt": 1, "\\hat": 1, "\\widehat": 1, "\\bar": 1, "\\overline": 1, "\\underline": 1,
    "\\vec": 1, "\\tilde": 1, "\\widetilde": 1, "\\dot": 1, "\\ddot": 1, "\\dddot": 1, "\\check": 1,
    "\\breve": 1, "\\acute": 1, "\\grave": 1, "\\mathring": 1, "\\overbrace": 1, "\\underbrace": 1,
    "\\overrightarrow": 1, "\\overleftarrow": 1, "\\xrightarrow": 1, "\\xleftarrow": 1,
    "\\mathbb": 1, "\\mathcal": 1, "\\mathscr": 1, "\\mathfrak": 1, "\\mathrm": 1, "\\mathbf": 1,
    "\\mathit": 1, "\\mathsf": 1, "\\mathtt": 1, "\\boldsymbol": 1, "\\operatorname": 1,
    "\\operatorname*": 1, "\\pmod": 1, "\\boxed": 1, "\\phantom": 1, "\\fbox": 1, "\\pmb": 1,
    "\\overleftrightarrow": 1, "\\underrightarrow": 1, "\\underleftarrow": 1, "\\overparen": 1,
    "\\substack": 1,
    **{c: 1 for c in TEXT_COMMANDS},
}
OPTIONAL_ARG = {"\\sqrt", "\\xrightarrow", "\\xleftarrow"}

SYNONYMS = {
    "\\le": "\\leq", "\\ge": "\\geq", "\\ne": "\\neq", "\\rightarrow": "\\to", "\\gets": "\\leftarrow",
    "\\lbrace": "\\{", "\\rbrace": "\\}", "\\vert": "|", "\\lvert": "|", "\\rvert": "|",
    "\\Vert": "\\|", "\\lVert": "\\|", "\\rVert": "\\|", "\\dots": "\\ldots", "\\dotsc": "\\ldots",
    "\\dotsb": "\\cdots", "\\dotsm": "\\cdots", "\\dotsi": "\\cdots", "\\land": "\\wedge",
    "\\lor": "\\vee", "\\lnot": "\\neg", "\\bm": "\\boldsymbol", "\\dfrac": "\\frac",
    "\\tfrac": "\\frac", "\\bigl": "\\big", "\\bigr": "\\big", "\\Bigl": "\\Big", "\\Bigr": "\\Big",
    "\\biggl": "\\bigg", "\\biggr": "\\bigg", "\\Biggl": "\\Bigg", "\\Biggr": "\\Bigg",
    "\\bigm": "\\big", "\\Bigm": "\\Big", "\\textrm": "\\text", "\\mbox": "\\text",
    "\\textnormal": "\\text", "\\lbrack": "[", "\\rbrack": "]", "\\owns": "\\ni",
    "\\implies": "\\Longrightarrow", "\\impliedby": "\\Longleftarrow", "\\lt": "<", "\\gt": ">",
    "\\sb": "_", "\\sp": "^", "\\cr": "\\\\", "\\textup": "\\text", "\\dag": "\\dagger",
    "\\ast": "*", "\\empty": "\\emptyset", "\\thinspace": "\\,", "\\medspace": "\\:", "\\thickspace": "\\;", "\\negthinspace": "\\!",
}

# A word (letters only) in these text fonts looks the same in the math font: one spelling.
TEXT_TO_MATH = {"\\text": "\\mathrm", "\\textbf": "\\mathbf", "\\textit": "\\mathit",
                "\\textsf": "\\mathsf", "\\texttt": "\\mathtt"}

# Dropped: style switches and spacing a snip cannot show reliably.
DROP = {
    "\\displaystyle", "\\textstyle", "\\scriptstyle", "\\scriptscriptstyle", "\\limits",
    "\\nolimits", "\\,", "\\:", "\\;", "\\!", "\\>", "\\ ", "~", "\\enspace", "\\nobreak",
    "\\relax", "\\mathstrut", "\\strut", "\\allowbreak", "\\hfill", "\\hfil",
}
# Dropped together with their one braced argument.
DROP_WITH_ARG = {"\\hspace", "\\hspace*", "\\vspace", "\\label", "\\tag", "\\color", "\\kern", "\\mspace"}

# Old-style font switches: {\rm d} is \mathrm{d}.
FONT_SWITCHES = {"\\rm": "\\mathrm", "\\bf": "\\mathbf", "\\cal": "\\mathcal", "\\it": "\\mathit",
                 "\\sf": "\\mathsf", "\\tt": "\\mathtt", "\\mit": "\\mathit", "\\Bbb": "\\mathbb"}

# \operatorname{sin} and \mathrm{sin} render as \sin (but for the operator's thin spaces, which
# the normal form ignores as it ignores \,); any other \operatorname{word} as \mathrm{word}.
NAMED_OPERATORS = {
    "arccos", "arcsin", "arctan", "arg", "cos", "cosh", "cot", "coth", "csc", "deg", "det", "dim",
    "exp", "gcd", "hom", "inf", "ker", "lg", "lim", "liminf", "limsup", "ln", "log", "max", "min",
    "Pr", "sec", "sin", "sinh", "sup", "tan", "tanh",
}

# ... and \operatorname*{lim} as \lim: these named operators take limits anyway.
LIMITS_OPERATORS = {"det", "gcd", "inf", "lim", "liminf", "limsup", "max", "min", "Pr", "sup"}

# Groups around these are kept: braces change their spacing ({=} is an ordinary atom).
_SPACING_SENSITIVE = set("+-=<>,;:*/|[]") | {"\\pm", "\\mp", "\\times", "\\cdot", "\\leq", "\\geq",
                                          "\\neq", "\\to", "\\in", "\\subset", "\\cup", "\\cap"}

# Binary operators and relations beyond those: a bare group that starts or ends with one keeps
# its braces, for the same reason.
_BINARY_OR_RELATION = {
    "\\ast", "\\star", "\\circ", "\\bullet", "\\div", "\\setminus", "\\wedge", "\\vee", "\\oplus",
    "\\ominus", "\\otimes", "\\oslash", "\\odot", "\\sqcap", "\\sqcup", "\\uplus", "\\amalg", "\\wr",
    "\\approx", "\\equiv", "\\sim", "\\simeq", "\\cong", "\\propto", "\\perp", "\\mid", "\\parallel",
    "\\ni", "\\notin", "\\subseteq", "\\supseteq", "\\supset", "\\ll", "\\gg", "\\prec", "\\succ",
    "\\preceq", "\\succeq", "\\mapsto", "\\leftarrow", "\\Leftarrow", "\\Rightarrow", "\\Leftrightarrow",
    "\\leftrightarrow", "\\iff", "\\longrightarrow", "\\longleftarrow", "\\Longrightarrow",
    "\\Longleftarrow", "\\longmapsto", "\\doteq", "\\models", "\\vdash", "\\dashv", "\\asymp",
    "\\triangleq", "\\colon", "\\not", "\\bmod", "\\mod",
}
# Commands outside ARG_COUNT that take a braced argument: a group after one is that argument.
_TAKES_GROUP = {
    "\\emph", "\\textsc", "\\textsl", "\\textmd", "\\not", "\\mathop", "\\mathbin", "\\mathrel",
    "\\mathord", "\\mathopen", "\\mathclose", "\\mathpunct", "\\mathinner", "\\hbox", "\\vbox",
    "\\rlap", "\\llap", "\\mathrlap", "\\mathllap", "\\mathclap", "\\raisebox", "\\textcolor",
    "\\colorbox", "\\scalebox", "\\makebox", "\\mathnormal", "\\smash", "\\vphantom", "\\hphantom",
    "\\ensuremath", "\\cancel", "\\bcancel", "\\xcancel", "\\sideset", "\\root", "\\buildrel",
    "\\uppercase", "\\lowercase", "\\bold", "\\middle",
}
# Infix commands whose scope is the group around them ({a \over b}).
_INFIX = {"\\over", "\\choose", "\\atop", "\\above", "\\brace", "\\brack", "\\overwithdelims"}

# \left( x \right) draws the plain ( x ) when what it encloses is no taller than a line of
# letters and no script follows it: TeX and KaTeX then pick the delimiters' normal size (pdflatex
# renders of such pairs are pixel-identical but for the thin space an opening \left takes after
# a letter or operator name, which DROP ignores as it ignores \,).  Fonts keep their argument's
# height; every other command with an argument (fractions, roots, accents, arrows) and these make
# it taller.
_PLAIN_DELIMITERS = {"(", ")", "[", "]", "\\{", "\\}", "|", "\\|", "/", "\\langle", "\\rangle", "\\lfloor",
                     "\\rfloor", "\\lceil", "\\rceil"}
_SAME_HEIGHT_COMMANDS = {"\\mathrm", "\\mathbf", "\\mathit", "\\mathsf", "\\mathtt", "\\mathbb", "\\mathcal",
                         "\\mathscr", "\\mathfrak", "\\boldsymbol", "\\pmb", "\\operatorname", "\\text",
                         "\\textbf", "\\textit", "\\textsf", "\\texttt"}
_TALL = {"\\sum", "\\prod", "\\coprod", "\\int", "\\iint", "\\iiint", "\\oint", "\\bigcup", "\\bigcap",
         "\\bigoplus", "\\bigotimes", "\\bigodot", "\\biguplus", "\\bigsqcup", "\\bigvee", "\\bigwedge",
         "\\left", "\\right", "\\middle", "\\big", "\\Big", "\\bigg", "\\Bigg", "\\\\", "&", "\\not"}

_COLUMN_SPEC_ENVS = ("\\begin{array}", "\\begin{tabular}", "\\begin{subarray}")
_ENVS_WITH_ARGUMENT = (*_COLUMN_SPEC_ENVS, "\\begin{alignedat}")  # the first group after them is not a cell
_CELL_ENDS = ("&", "\\\\")
_STARRED_WORD = re.compile(r"\\[a-zA-Z]+\*")
_TOKEN_RE = re.compile(r"\\(?:[a-zA-Z]+\*?|.)|\s+|.", re.DOTALL)
_ENV_RE = re.compile(r"\\(begin|end)\s*\{\s*([a-zA-Z]+\*?)\s*\}")


class LatexSyntaxError(ValueError):
    """The formula cannot be parsed (unbalanced braces, dangling script...)."""


@dataclass
class TextMode:
    """Follows a token stream and says whether it is inside a text-mode argument
    (``\\text{...}``), where spaces and characters such as ``<`` mean something else."""

    _starts: list[int] = field(default_factory=list)  # brace depths at which text arguments opened
    _depth: int = 0
    _pending: bool = False

    @property
    def inside(self) -> bool:
        return bool(self._starts)

    def feed(self, tok: str) -> None:
        if tok == "{":
            self._depth += 1
            if self._pending:
                self._starts.append(self._depth)
                self._pending = False
        elif tok == "}":
            if self._starts and self._starts[-1] == self._depth:
                self._starts.pop()
            self._depth -= 1
        elif tok in TEXT_COMMANDS:
            self._pending = True


def tokenize(latex: str) -> list[str]:
    """Split LaTeX into tokens: control words, control symbols, single characters.

    ``\\begin{pmatrix}`` is one token, and inside text-mode arguments (``\\text{...}``)
    each run of spaces becomes the SPACE token, because there spaces are visible.
    """
    tokens: list[str] = []
    mode = TextMode()
    pos = 0
    while pos < len(latex):
        env = _ENV_RE.match(latex, pos)
        if env:
            tokens.append(f"\\{env.group(1)}{{{env.group(2)}}}")
            pos = env.end()
            continue
        match = _TOKEN_RE.match(latex, pos)
        assert match is not None
        tok = match.group(0)
        pos = match.end()
        if tok.isspace():
            if mode.inside and tokens and tokens[-1] != SPACE:
                tokens.append(SPACE)
            continue
        if _STARRED_WORD.fullmatch(tok) and tok not in ("\\operatorname*", "\\hspace*"):
            # \frac* is not a command: the star is its own token.
            tokens.append(tok[:-1])
            tok = "*"
        mode.feed(tok)
        tokens.append(tok)
    return tokens


# ---------------------------------------------------------------- parse tree and normal form

Node = Union[str, "Group"]


@dataclass
class Group:
    """A brace group ``{...}``."""

    children: list[Node] = field(default_factory=list)


def parse(tokens: list[str]) -> list[Node]:
    """Nest tokens into brace groups; raise LatexSyntaxError when braces do not balance."""
    stack: list[list[Node]] = [[]]
    for tok in tokens:
        if tok == "{":
            stack.append([])
        elif tok == "}":
            if len(stack) == 1:
                raise LatexSyntaxError("unbalanced '}'")
            children = stack.pop()
            stack[-1].append(Group(children))
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise LatexSyntaxError("unbalanced '{'")
    return stack[0]


def _flatten(nodes: list[Node]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, Group):
            out.append("{")
            out.extend(_flatten(node.children))
            out.append("}")
        else:
            out.append(node)
    return out


def _as_group(node: Node) -> Group:
    return node if isinstance(node, Group) else Group([node])


def _is_plain(node: Node) -> bool:
    """A single token whose surrounding braces change nothing visible."""
    return (isinstance(node, str) and node != SPACE and node not in _SPACING_SENSITIVE
            and node not in ARG_COUNT and node not in ("^", "_", "&", "\\\\", "'")
            and not node.startswith(("\\begin", "\\end")) and node not in ("\\left", "\\right"))


def _is_single_construct(nodes: list[Node]) -> bool:
    """One token, or one command with exactly its braced arguments: {x}, {\\mathrm{d}}."""
    if len(nodes) == 1:
        return _is_plain(nodes[0])
    head = nodes[0]
    return (isinstance(head, str) and head in ARG_COUNT and head not in TEXT_COMMANDS
            and len(nodes) == 1 + ARG_COUNT[head] and all(isinstance(n, Group) for n in nodes[1:]))


def _is_spacing_sensitive(node: Node) -> bool:
    return isinstance(node, str) and (node in _SPACING_SENSITIVE or node in _BINARY_OR_RELATION)


def _alone_in_cell(nodes: list[Node], i: int) -> bool:
    """Whether nodes[i] is all there is of its list or of its array cell."""
    first = i == 0 or (isinstance(nodes[i - 1], str) and (
        nodes[i - 1] in _CELL_ENDS or (nodes[i - 1].startswith("\\begin{") and nodes[i - 1] not in _ENVS_WITH_ARGUMENT))
    ) or (i >= 2 and isinstance(nodes[i - 1], Group) and nodes[i - 2] in _ENVS_WITH_ARGUMENT)
    last = i + 1 == len(nodes) or (isinstance(nodes[i + 1], str) and (
        nodes[i + 1] in _CELL_ENDS or nodes[i + 1].startswith("\\end{")))
    return first and last


def _braces_show_nothing(nodes: list[Node], i: int, inner: list[Node]) -> bool:
    """Whether the bare group nodes[i] (already normalized to ``inner``) draws the same without
    its braces: |{1-s}| is |1-s|, a matrix cell {-1} is -1.  Not when a script, prime or
    preceding command applies to the group as a whole, when an infix command or a cell break
    needs its scope, or when an operator at its edge would change the spacing around it (a
    group alone in its list or cell has no neighbours to space against)."""
    if any(isinstance(n, str) and (n in _INFIX or n in _CELL_ENDS) for n in inner):
        return False
    if _alone_in_cell(nodes, i):
        return True
    after = nodes[i + 1] if i + 1 < len(nodes) else None
    before = nodes[i - 1] if i > 0 else None
    if after in ("^", "_", "'", "\\limits", "\\nolimits"):
        return False
    if isinstance(before, str) and (before in _TAKES_GROUP or before in ARG_COUNT or before.startswith("\\begin")
                                    or before in DROP_WITH_ARG):
        return False
    return not (_spaces_at_edge(inner[0], _OPEN_BRACKET) or _spaces_at_edge(inner[-1], _CLOSE_BRACKET))


# A bare group is an ordinary atom.  Where its first token is an opening bracket, TeX spaces it
# from the left neighbour as an ordinary atom but for the thin space after an operator name (which
# the normal form ignores, as it does for "(" and \,); a closing bracket at the right edge spaces
# exactly like one.  Each only matters at the other edge (]0,1[ : "x \in ]" takes no space),
# and | and / are ordinary atoms anyway: {[0]},{[1]} and a{|x|}b draw as [0],[1] and a|x|b.
_OPEN_BRACKET, _CLOSE_BRACKET = "[", "]"
_ORDINARY_SYMBOLS = {"|", "/"}


def _spaces_at_edge(node: Node, harmless_bracket: str) -> bool:
    """Whether node, at one edge of a bare group, would be spaced differently without the braces."""
    return _is_spacing_sensitive(node) and node != harmless_bracket and node not in _ORDINARY_SYMBOLS


def _normalize_text(nodes: list[Node]) -> list[Node]:
    """Text-mode content: kept as typed, nested groups normalized the same way, except for
    spacing that draws the same (see _merge_quads, _text_tildes)."""
    return _text_tildes(_merge_quads([Group(_normalize_text(n.children)) if isinstance(n, Group) else n for n in nodes]))


def _text_tildes(nodes: list[Node]) -> list[Node]:
    """In text, ~ is an interword space like a typed one (it only forbids a line break): \\text{a~b}
    is \\text{a b}.  Not after sentence punctuation, where a typed space is wider, nor beside
    another space (the two add up)."""
    out = list(nodes)
    for k, node in enumerate(out):
        before = out[k - 1] if k else None
        after = out[k + 1] if k + 1 < len(out) else None
        if node == "~" and SPACE not in (before, after) and before not in (".", "?", "!", ":"):
            out[k] = SPACE
    return out


def _merge_quads(nodes: list[Node]) -> list[Node]:
    """A run of \\quad and \\qquad is so many ems of space: \\quad\\quad is \\qquad, written
    with as many \\qquad as fit and one \\quad for an odd em."""
    out: list[Node] = []
    k = 0
    while k < len(nodes):
        ems = 0
        while k < len(nodes) and nodes[k] in ("\\quad", "\\qquad"):
            ems += 1 if nodes[k] == "\\quad" else 2
            k += 1
        if ems:
            out += ["\\qquad"] * (ems // 2) + ["\\quad"] * (ems % 2)
        else:
            out.append(nodes[k])
            k += 1
    return out


def _script_bars(nodes: list[Node]) -> list[Node]:
    """In a sub- or superscript \\mid is |: TeX puts no space around a relation in script
    styles, and the two are one glyph (\\sum_{d\\mid n} is \\sum_{d|n})."""
    return [Group(_script_bars(n.children)) if isinstance(n, Group)
            else "|" if n == "\\mid" and not (k and nodes[k - 1] in _SIZING) else n
            for k, n in enumerate(nodes)]


def _take_argument(nodes: list[Node], i: int) -> tuple[Group, int]:
    """The argument starting at nodes[i], braced; a bare command keeps its own arguments."""
    if i >= len(nodes):
        raise LatexSyntaxError("missing argument")
    node = nodes[i]
    if isinstance(node, Group):
        return Group(_normalize(node.children)), i + 1
    node = SYNONYMS.get(node, node)
    if node in ARG_COUNT or node in ("^", "_"):
        # e.g. x^\frac12: brace the command together with its arguments
        consumed, j = _normalize_one(nodes, i)
        return Group(consumed), j
    return Group([node]), i + 1


def _normalize_one(nodes: list[Node], i: int) -> tuple[list[Node], int]:
    """Normalize the construct that starts at nodes[i]; return its nodes and the next index."""
    node = nodes[i]
    if isinstance(node, Group):
        inner = _normalize(node.children)
        if not inner:
            return [], i + 1
        if _is_single_construct(inner) or _braces_show_nothing(nodes, i, inner):
            return inner, i + 1
        return [Group(inner)], i + 1
    tok = SYNONYMS.get(node, node)
    if tok in DROP:
        return [], i + 1
    if tok in DROP_WITH_ARG:
        j = i + 1
        if j < len(nodes) and nodes[j] == "*":
            j += 1
        return [], min(j + 1, len(nodes))
    if tok in FONT_SWITCHES:
        # like TeX, the switch lasts to the end of the group or of the array cell
        end = next((k for k in range(i + 1, len(nodes)) if nodes[k] in _CELL_ENDS
                    or (isinstance(nodes[k], str) and nodes[k].startswith("\\end{"))), len(nodes))
        rest = _normalize(nodes[i + 1:end])
        return ([FONT_SWITCHES[tok], Group(rest)] if rest else []), end
    if tok in ("^", "_"):
        arg, j = _take_argument(nodes, i + 1)
        arg = Group(_script_bars(arg.children))
        if tok == "^" and arg.children and all(c == "\\prime" for c in arg.children):
            return ["'"] * len(arg.children), j  # f^{\prime\prime} is f'': TeX reads ' as ^{\prime}
        return [tok, arg], j
    if tok in _SIZING:
        if i + 1 < len(nodes) and isinstance(nodes[i + 1], str):
            delim = SYNONYMS.get(nodes[i + 1], nodes[i + 1])
            return [tok, _ANGLE_DELIMITERS.get(delim, delim)], i + 2
        return [tok], i + 1
    if tok in _COLUMN_SPEC_ENVS and i + 1 < len(nodes) and isinstance(nodes[i + 1], Group):
        return [tok, Group(_normalize_text(nodes[i + 1].children))], i + 2
    if tok in ARG_COUNT:
        out: list[Node] = [tok]
        j = i + 1
        if tok in OPTIONAL_ARG and j < len(nodes) and nodes[j] == "[":
            k = j + 1
            while k < len(nodes) and nodes[k] != "]":
                k += 1
            if k >= len(nodes):
                raise LatexSyntaxError(f"unclosed optional argument of {tok}")
            optional = _normalize(nodes[j + 1:k])
            if optional:
                out += ["[", *optional, "]"]
            j = k + 1
        for _ in range(ARG_COUNT[tok]):
            if tok in TEXT_COMMANDS and j < len(nodes) and isinstance(nodes[j], Group):
                arg = Group(_normalize_text(nodes[j].children))
                j += 1
            else:
                arg, j = _take_argument(nodes, j)
            out.append(arg)
        if tok == "\\text" and _is_number(out[1]):
            return list(out[1].children), j  # \text{2.5} draws the digits math draws
        if tok in TEXT_TO_MATH and _is_word(out[1]):
            out = [TEXT_TO_MATH[tok], out[1]]  # \text{kg} and \mathrm{kg} look the same: one spelling
        if tok in ("\\operatorname", "\\operatorname*") and isinstance(out[1], Group):
            name = "".join(c for c in out[1].children if isinstance(c, str))
            named = name in (NAMED_OPERATORS if tok == "\\operatorname" else LIMITS_OPERATORS)
            if named and all(isinstance(c, str) and len(c) == 1 for c in out[1].children):
                return [f"\\{name}"], j
            if tok == "\\operatorname" and _is_word(out[1]):
                out = ["\\mathrm", out[1]]  # the same upright letters; its thin spaces go, like \,
        if out[0] == "\\mathrm" and _is_word(out[1]):
            name = "".join(out[1].children)
            scripted = j < len(nodes) and nodes[j] in ("^", "_")  # \lim_{n} puts n below, \mathrm{lim}_{n} beside
            if name in NAMED_OPERATORS and not (name in LIMITS_OPERATORS and scripted):
                return [f"\\{name}"], j  # \mathrm{sin} draws \sin's letters
        return out, j
    return [tok], i + 1


def _is_chars(node: Node, accept: Callable[[str], bool]) -> bool:
    """A non-empty group of single characters that all pass ``accept`` (no command, no nested group)."""
    return (isinstance(node, Group) and bool(node.children)
            and all(isinstance(c, str) and len(c) == 1 and accept(c) for c in node.children))


def _is_word(node: Node) -> bool:
    """A group of letters only (no space, digit or command): upright in any text or roman font."""
    return _is_chars(node, lambda c: c.isascii() and c.isalpha())


# Commands whose next token is a delimiter they size.
_SIZING = ("\\left", "\\right", "\\big", "\\Big", "\\bigg", "\\Bigg")
# As a delimiter after \left, \right or \big, < and > are TeX's angle brackets.
_ANGLE_DELIMITERS = {"<": "\\langle", ">": "\\rangle"}


def _is_number(node: Node) -> bool:
    """A group of digits and points only: upright roman in text and in math alike (a comma or
    other punctuation is spaced differently in math, so it stays in its \\text)."""
    return _is_chars(node, lambda c: c in "0123456789.")


def _drop_final_row_breaks(nodes: list[Node]) -> list[Node]:
    """A \\\\ just before \\end{...} starts no row (LaTeX and KaTeX draw nothing for it)."""
    return [n for k, n in enumerate(nodes)
            if not (n == "\\\\" and k + 1 < len(nodes) and isinstance(nodes[k + 1], str)
                    and nodes[k + 1].startswith("\\end{"))]


def _drop_trailing_empty_cells(nodes: list[Node]) -> list[Node]:
    """Empty cells at the end of a row draw nothing: a & b & & \\\\ is a & b \\\\ (not where
    the column specification may draw rules, as in array)."""
    out: list[Node] = []
    envs: list[str] = []
    for node in nodes:
        if isinstance(node, str) and node.startswith("\\begin{"):
            envs.append(node)
        ends_row = isinstance(node, str) and (node == "\\\\" or node.startswith("\\end{"))
        if ends_row and envs and envs[-1] not in _COLUMN_SPEC_ENVS:
            while out and out[-1] == "&":
                out.pop()
        if isinstance(node, str) and node.startswith("\\end{") and envs:
            envs.pop()
        out.append(node)
    return out


def _trim_array_columns(nodes: list[Node]) -> list[Node]:
    """Column letters of an array beyond the most cells of any row draw nothing:
    \\begin{array}{rrrr} a & b & c \\end{array} is {rrr}.  Only for l, c and r (a rule | or
    an @{...} may show) and without \\multicolumn (one cell, several columns)."""
    out = list(nodes)
    for k, node in enumerate(out):
        if node != "\\begin{array}" or k + 1 >= len(out) or not isinstance(out[k + 1], Group):
            continue
        spec = out[k + 1].children
        if not spec or not all(c in ("l", "c", "r") for c in spec):
            continue
        depth, cells, most = 0, 1, 1
        for item in out[k + 2:]:
            if item == "\\multicolumn":
                most = len(spec)
                break
            if not isinstance(item, str):
                continue
            if item.startswith("\\begin{"):
                depth += 1
            elif item.startswith("\\end{"):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and item == "&":
                cells += 1
                most = max(most, cells)
            elif depth == 0 and item == "\\\\":
                cells = 1
        if most < len(spec):
            out[k + 1] = Group(spec[:most])
    return out


# Math alphabets whose letters are drawn one by one, without kerns or ligatures between them.
_ALPHABETS = {"\\mathbf", "\\mathrm", "\\mathit", "\\mathsf", "\\mathtt", "\\mathcal", "\\mathbb",
              "\\mathfrak", "\\mathscr"}


def _is_plain_run(node: Node) -> bool:
    """A group of letters and digits only."""
    return _is_chars(node, lambda c: c.isascii() and c.isalnum())


def _merge_alphabet_runs(nodes: list[Node]) -> list[Node]:
    """\\mathbf{u}\\mathbf{v} is \\mathbf{uv}: math alphabets set each letter on its own.  Not
    when a script or prime follows (a script sits by a one-letter group's glyph, by a longer
    group's box: \\mathcal{LI}_{x} is wider than \\mathcal{L}\\mathcal{I}_{x})."""
    out: list[Node] = []
    k = 0
    while k < len(nodes):
        node = nodes[k]
        if (isinstance(node, str) and node in _ALPHABETS and k + 1 < len(nodes) and _is_plain_run(nodes[k + 1])
                and len(out) >= 2
                and out[-2] == node and _is_plain_run(out[-1])
                and (k + 2 >= len(nodes) or nodes[k + 2] not in ("^", "_", "'"))):
            out[-1] = Group([*out[-1].children, *nodes[k + 1].children])
            k += 2
            continue
        out.append(node)
        k += 1
    return out


def _final_punctuation(nodes: list[Node]) -> list[Node]:
    """A formula's last \\text{,} or \\text{;} is math's , or ;: after an ordinary symbol
    nothing is spaced differently when nothing follows (the semicolon is one glyph; the comma
    is math italic's, a few grey levels from roman's, as with the point)."""
    if len(nodes) < 3 or nodes[-2] != "\\text" or not isinstance(nodes[-1], Group):
        return nodes
    children, before = nodes[-1].children, nodes[-3]
    marks = [c for c in children if c != SPACE]
    if marks not in ([","], [";"]) or children[0] == SPACE:
        return nodes
    if isinstance(before, str) and (_is_spacing_sensitive(before) or before in _TALL or before in ARG_COUNT
                                    or before in _CELL_ENDS or before.startswith("\\begin")
                                    or before[1:] in NAMED_OPERATORS):
        return nodes
    return [*nodes[:-2], marks[0]]


def _reorder_scripts(nodes: list[Node]) -> list[Node]:
    """Put a subscript before a superscript or prime on the same base: x^{a}_{b} is x_{b}^{a},
    and x'_{b} is x_{b}' (TeX reads ' as a superscript \\prime: both stack the same two scripts)."""
    out = list(nodes)
    k = 0
    while k < len(out):
        if (out[k] == "^" and k + 3 < len(out) and out[k + 2] == "_"
                and (k + 4 >= len(out) or out[k + 4] not in ("^", "_"))):
            out[k:k + 4] = [out[k + 2], out[k + 3], out[k], out[k + 1]]
            k += 4
            continue
        primes = 0
        while k > 0 and k + primes < len(out) and out[k + primes] == "'":
            primes += 1
        j = k + primes  # the subscript after the primes, if any
        if primes and j + 1 < len(out) and out[j] == "_" and (j + 2 >= len(out) or out[j + 2] not in ("^", "_", "'")):
            out[k:j + 2] = [out[j], out[j + 1], *["'"] * primes]
            k = j + 2
        else:
            k += max(primes, 1)
    return out


def _one_line_high(nodes: list[Node], in_script: bool = False) -> bool:
    """Whether normalized ``nodes`` stand no taller than a line of letters with single scripts:
    no fraction, root, accent, big operator, array or nested sized delimiter, no base with both
    a subscript and a superscript, no script inside a script."""
    for k, node in enumerate(nodes):
        if isinstance(node, Group):
            if not _one_line_high(node.children, in_script):
                return False
            continue
        if node in _TALL or node.startswith("\\begin") or (node in ARG_COUNT and node not in _SAME_HEIGHT_COMMANDS):
            return False
        if node in ("^", "_"):
            if in_script or (k + 2 < len(nodes) and nodes[k + 2] in ("^", "_")):
                return False
            argument = nodes[k + 1] if k + 1 < len(nodes) else None
            if isinstance(argument, Group) and not _one_line_high(argument.children, True):
                return False
    return True


def _plain_delimiters(nodes: list[Node]) -> list[Node]:
    """\\left( x \\right) as ( x ) where the two draw the same (see _PLAIN_DELIMITERS); pass
    after pass, so \\left( \\left( a \\right) b \\right) loses the inner pair, then the outer."""
    out = list(nodes)
    changed = True
    while changed:
        changed = False
        k = 0
        while k < len(out):
            if out[k] == "\\left" and k + 1 < len(out) and out[k + 1] in _PLAIN_DELIMITERS:
                depth, j = 0, k + 2
                while j < len(out) and not (out[j] == "\\right" and depth == 0):
                    depth += (out[j] == "\\left") - (out[j] == "\\right")
                    j += 1
                scripted = j + 2 < len(out) and out[j + 2] in ("^", "_", "'")  # placed by the pair's height
                if (j + 1 < len(out) and out[j + 1] in _PLAIN_DELIMITERS and not scripted
                        and _one_line_high(out[k + 2:j])):
                    out[k:j + 2] = [out[k + 1], *out[k + 2:j], out[j + 1]]
                    changed = True
            k += 1
    return out


def _normalize(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    i = 0
    while i < len(nodes):
        produced, i = _normalize_one(nodes, i)
        out.extend(produced)
    out = _trim_array_columns(_drop_trailing_empty_cells(_drop_final_row_breaks(_merge_alphabet_runs(_merge_quads(out)))))
    return _plain_delimiters(_reorder_scripts(out))


def normalize_tokens(tokens: list[str]) -> list[str]:
    """Canonical token sequence of a tokenized formula."""
    return _flatten(_final_punctuation(_normalize(parse(tokens))))


def normalize(latex: str) -> list[str]:
    """Canonical token sequence of a LaTeX formula (the training target and scoring form)."""
    return normalize_tokens(tokenize(latex))


# ---------------------------------------------------------------- back to LaTeX

_CONTROL_WORD = re.compile(r"\\[a-zA-Z]+\*?")


def detokenize(tokens: list[str]) -> str:
    """LaTeX the way a person types it: ``\\frac{a}{b}``, ``\\alpha x``, ``a & b \\\\ c``."""
    out: list[str] = []
    prev = ""
    for tok in tokens:
        if tok in ("&", "\\\\"):
            out.append(f" {tok} ")
            prev = " "
            continue
        if tok == SPACE:
            out.append(" ")
            prev = " "
            continue
        if _CONTROL_WORD.fullmatch(prev) and (tok[0].isalpha() or tok[0].isdigit() or tok == "*"):
            out.append(" ")
        out.append(tok)
        prev = tok
    return "".join(out).strip()


def canonical(latex: str) -> str:
    """Normalize and write back: the LaTeX a user is shown for any spelling of a formula."""
    return detokenize(normalize(latex))
