"""Random formulas from a small grammar, so every token is trained in many contexts.

The real lists are skewed: school algebra repeats ``\\frac`` and ``x^{2}``, research notes
lean on ``\\mathcal`` and arrows, and rare notation (``\\Vmatrix``, ``\\breve``, ``\\Bigg``,
``\\mathscr``) appears a handful of times or never.  The grammar below draws uniformly from
tables of letters, operators, accents, fonts, delimiters and environments, arranged as
realistic structures (expressions, equations, inequalities, sets, function definitions,
matrices, cases), so a model sees each of them often and in varied surroundings.

Every formula is valid math-mode LaTeX for pdflatex with amsmath, amssymb, bm and mathrsfs,
and normalizes with :func:`model.tokenizer.normalize`.  :func:`generator_tokens` is the
inventory of every token the generator can emit after normalization; it enters the bundled
vocabulary (a saved vocabulary file is reused as is, so new table entries never shift ids).
"""

from __future__ import annotations

import bisect
import random
import re
from functools import lru_cache
from typing import Callable, Iterator, Sequence

from model.tokenizer import SPACE, SYNONYMS, LatexSyntaxError, normalize, tokenize

# ------------------------------------------------------------------------------------ tables

LATIN_LOWER = tuple("abcdefghijklmnopqrstuvwxyz")
LATIN_UPPER = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
COMMON_VARIABLES = tuple("xyzabcntkmijpqrsuvwfgh")
GREEK_LOWER = tuple("\\" + g for g in (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma "
    "tau upsilon phi chi psi omega varepsilon vartheta varphi varrho varsigma varpi").split())
GREEK_UPPER = tuple("\\" + g for g in
                    "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())
SYMBOLS = ("\\infty", "\\partial", "\\nabla", "\\hbar", "\\ell", "\\emptyset", "\\varnothing",
           "\\aleph", "\\imath", "\\jmath", "\\wp", "\\Re", "\\Im", "\\top", "\\bot", "\\angle",
           "\\triangle", "\\square", "\\Box", "\\Diamond", "\\star", "\\dagger", "\\sharp",
           "\\flat", "\\natural", "\\clubsuit", "\\heartsuit", "\\spadesuit", "\\diamondsuit",
           "\\checkmark", "\\blacksquare", "\\complement", "\\beth", "\\mho", "\\eth",
           "\\bigcirc", "\\bigstar", "\\blacklozenge", "\\lozenge", "\\blacktriangle",
           "\\vartriangle", "\\triangledown", "\\blacktriangledown", "\\gimel", "\\daleth",
           "\\hslash", "\\digamma", "\\varkappa", "\\circledS", "\\Finv", "\\Game",
           "\\measuredangle", "\\sphericalangle", "\\backprime", "\\diagup", "\\diagdown")
ARITHMETIC_OPS = ("+", "-", "\\pm", "\\mp", "\\times", "\\cdot", "\\div", "/")
ALGEBRA_OPS = ("\\circ", "\\ast", "\\star", "\\otimes", "\\oplus", "\\ominus", "\\odot",
               "\\wedge", "\\vee", "\\cup", "\\cap", "\\setminus", "\\sqcup", "\\sqcap",
               "\\bullet", "\\amalg", "\\uplus", "\\diamond", "\\triangleleft", "\\rtimes",
               "\\ltimes", "\\boxplus", "\\boxtimes", "\\dotplus", "\\wr", "\\bmod",
               "\\smallsetminus", "\\centerdot", "\\curlyvee", "\\curlywedge", "\\Cap", "\\Cup",
               "\\circledcirc", "\\circleddash", "\\circledast", "\\divideontimes", "\\intercal",
               "\\barwedge", "\\veebar", "\\boxminus", "\\boxdot", "\\bigtriangleup",
               "\\bigtriangledown", "\\oslash", "\\triangleright", "\\lhd", "\\rhd")
ORDER_RELATIONS = ("=", "<", ">", "\\neq", "\\leq", "\\geq", "\\leqslant", "\\geqslant",
                   "\\approx", "\\equiv", "\\sim", "\\simeq", "\\cong", "\\propto", "\\ll", "\\gg",
                   "\\prec", "\\succ", "\\preceq", "\\succeq", "\\lesssim", "\\gtrsim",
                   "\\doteq", "\\triangleq", "\\asymp", "\\nless", "\\ngtr", "\\nleq", "\\ngeq",
                   "\\preccurlyeq", "\\succcurlyeq", "\\backsim", "\\eqsim", "\\approxeq",
                   "\\thicksim", "\\thickapprox", "\\bumpeq", "\\Bumpeq", "\\leqq", "\\geqq",
                   "\\lll", "\\ggg", "\\lessgtr", "\\gtrless", "\\lessdot", "\\gtrdot",
                   "\\nprec", "\\nsucc", "\\risingdotseq", "\\fallingdotseq",
                   "\\lessapprox", "\\gtrapprox", "\\ncong", "\\nsim", "\\precsim", "\\succsim")
SET_RELATIONS = ("\\in", "\\notin", "\\ni", "\\subset", "\\subseteq", "\\supset", "\\supseteq",
                 "\\subsetneq", "\\supsetneq", "\\nsubseteq", "\\sqsubseteq", "\\mid", "\\nmid",
                 "\\perp", "\\parallel", "\\models", "\\vdash", "\\dashv", "\\vDash", "\\smile",
                 "\\frown", "\\unlhd", "\\unrhd", "\\trianglelefteq", "\\trianglerighteq",
                 "\\sqsubset", "\\sqsupset", "\\sqsupseteq", "\\nsupseteq", "\\varsubsetneqq",
                 "\\subseteqq", "\\supseteqq", "\\Subset", "\\Supset", "\\pitchfork",
                 "\\Vdash", "\\nvdash", "\\nVdash", "\\between", "\\vartriangleleft",
                 "\\vartriangleright", "\\ntriangleleft", "\\nparallel", "\\shortmid")
ARROWS = ("\\to", "\\leftarrow", "\\Rightarrow", "\\Leftarrow", "\\Leftrightarrow",
          "\\leftrightarrow", "\\Longrightarrow", "\\Longleftarrow", "\\Longleftrightarrow",
          "\\longrightarrow", "\\longleftarrow", "\\longleftrightarrow", "\\mapsto",
          "\\longmapsto", "\\hookrightarrow", "\\hookleftarrow", "\\twoheadrightarrow",
          "\\uparrow", "\\downarrow", "\\updownarrow", "\\Uparrow", "\\Downarrow", "\\nearrow",
          "\\searrow", "\\swarrow", "\\nwarrow", "\\iff", "\\leadsto", "\\rightleftharpoons",
          "\\rightharpoonup", "\\leftharpoondown", "\\rightrightarrows", "\\circlearrowleft",
          "\\curvearrowright", "\\nrightarrow", "\\Rrightarrow", "\\rightarrowtail",
          "\\leftarrowtail", "\\circlearrowright", "\\curvearrowleft", "\\leftleftarrows",
          "\\leftrightarrows", "\\Lleftarrow", "\\twoheadleftarrow", "\\multimap",
          "\\nleftarrow", "\\nLeftarrow", "\\nRightarrow", "\\nLeftrightarrow",
          "\\upuparrows", "\\downdownarrows", "\\looparrowright", "\\rightsquigarrow",
          "\\leftrightsquigarrow", "\\Updownarrow", "\\leftharpoonup",
          "\\rightharpoondown", "\\leftrightharpoons", "\\restriction")
LOGIC = ("\\forall", "\\exists", "\\nexists", "\\neg", "\\therefore", "\\because")
ACCENTS = ("\\hat", "\\bar", "\\vec", "\\tilde", "\\dot", "\\ddot", "\\check", "\\breve",
           "\\acute", "\\grave", "\\mathring", "\\dddot")
WIDE_ACCENTS = ("\\widehat", "\\widetilde", "\\overline", "\\underline", "\\overrightarrow",
                "\\overleftarrow")
# font command -> which letters it is defined for (mathbb/mathcal/mathscr: capitals only)
FONTS = (("\\mathbb", LATIN_UPPER), ("\\mathcal", LATIN_UPPER), ("\\mathscr", LATIN_UPPER),
         ("\\mathfrak", LATIN_UPPER + LATIN_LOWER), ("\\mathrm", LATIN_UPPER + LATIN_LOWER),
         ("\\mathbf", LATIN_UPPER + LATIN_LOWER), ("\\mathsf", LATIN_UPPER + LATIN_LOWER),
         ("\\mathit", LATIN_UPPER + LATIN_LOWER), ("\\mathtt", LATIN_UPPER + LATIN_LOWER),
         ("\\boldsymbol", LATIN_UPPER + LATIN_LOWER + GREEK_LOWER))
FUNCTIONS = ("\\sin", "\\cos", "\\tan", "\\cot", "\\sec", "\\csc", "\\arcsin", "\\arccos",
             "\\arctan", "\\sinh", "\\cosh", "\\tanh", "\\coth", "\\log", "\\ln", "\\lg",
             "\\exp", "\\det", "\\dim", "\\ker", "\\deg", "\\gcd", "\\arg", "\\hom", "\\Pr")
OPERATOR_NAMES = ("rank", "tr", "sgn", "id", "Var", "Cov", "diag", "span", "supp", "erf",
                  "Hom", "End", "Aut", "Spec", "im", "ord", "lcm", "Res", "Tr", "grad", "div",
                  "curl", "sech", "arsinh", "Log", "Arg", "card", "dist", "vol", "proj")
BIG_OPERATORS = ("\\sum", "\\prod", "\\coprod", "\\bigcup", "\\bigcap", "\\bigoplus",
                 "\\bigotimes", "\\bigvee", "\\bigwedge", "\\bigsqcup", "\\bigodot",
                 "\\biguplus")
INTEGRALS = ("\\int", "\\iint", "\\iiint", "\\oint")
LIMIT_OPERATORS = ("\\lim", "\\max", "\\min", "\\sup", "\\inf", "\\limsup", "\\liminf",
                   "\\varlimsup", "\\varliminf", "\\injlim", "\\projlim")
DELIMITER_PAIRS = (("(", ")"), ("[", "]"), ("\\{", "\\}"), ("|", "|"), ("\\|", "\\|"),
                   ("\\langle", "\\rangle"), ("\\lfloor", "\\rfloor"), ("\\lceil", "\\rceil"),
                   ("[", ")"), ("(", "]"), ("]", "["), ("\\lvert", "\\rvert"),
                   ("\\ulcorner", "\\urcorner"), ("/", "\\backslash"), ("\\uparrow", "\\downarrow"))
SIZES = ("\\big", "\\Big", "\\bigg", "\\Bigg")
MATRICES = ("matrix", "pmatrix", "bmatrix", "vmatrix", "Vmatrix", "Bmatrix", "smallmatrix")
ARRAY_SPECS = ("cc", "ccc", "c|c", "cc|c", "rl", "lcr", "rcl", "r|rr", "ll", "cccc", "c|cc",
               "l|l", "|c|c|", "c")
TEXT_WORDS = ("if", "otherwise", "for", "for all", "and", "or", "where", "with", "such that",
              "if and only if", "else", "when", "on", "in", "as", "for some", "is", "even",
              "odd", "prime", "const", "a.e.", "iff", "true", "false", "elsewhere", "then",
              "almost surely", "times", "mod", "s.t.", "subject to", "minimize", "maximize",
              "by symmetry", "by induction", "Case 1", "Step 2", "Area", "Volume", "total",
              "rate", "speed", "error", "cost", "loss", "Prob", "Note")
UNITS = ("m", "cm", "mm", "km", "kg", "g", "s", "ms", "N", "J", "W", "Hz", "V", "A", "K",
         "mol", "Pa", "eV", "m/s", "km/h")
DOTS = ("\\ldots", "\\cdots")
SPACES = ("\\quad", "\\qquad")

# literal pieces the builders below write around the table entries
_STRUCTURE = ("{", "}", "^", "_", "'", "&", "\\\\", "(", ")", "[", "]", ",", ".", ";", ":", "!",
              "|", "*", "?", "+", "-", "=", "<", ">", "/", "\\frac", "\\sqrt", "\\binom",
              "\\left", "\\right", "\\overbrace", "\\underbrace", "\\overset", "\\underset",
              "\\stackrel", "\\text", "\\prime", "\\colon", "\\vdots",
              "\\ddots", "\\hline", "\\xrightarrow", "\\xleftarrow", "\\substack",
              "\\cfrac", "\\boxed", "\\pmod", "\\%", "\\{", "\\}", "\\mathbb", "\\mathrm",
              "\\begin{cases}", "\\end{cases}", "\\begin{aligned}", "\\end{aligned}",
              "\\begin{gathered}", "\\end{gathered}", "\\begin{array}", "\\end{array}", "\\middle",
              "\\operatorname*")

# ----------------------------------------------------------------------------- the grammar

_MAX_TOKENS = 120

# small choice lists used by the builders (kept here: f-string expressions cannot hold "\")
_NAMED_INDICES = ("max", "min", "eff", "tot", "in", "out", "opt")
_SPECIAL_INDICES = ("\\infty", "0", "\\ast", "\\mu\\nu", "\\alpha\\beta")
_MARK_EXPONENTS = ("T", "*", "\\top", "\\dagger", "\\ast", "\\perp", "\\circ", "+", "-")
_PHASE_EXPONENTS = ("i", "2 \\pi i", "i \\theta", "-x", "t", "-x^{2}", "i k x", "-\\lambda t", "-i \\omega t")
_ODD_EXPONENTS = ("(n)", "(k)", "\\prime 2", "\\prime", "n!", "\\alpha")
_PRIMES = ("'", "''", "'''")
_ROOT_DEGREES = ("3", "4", "n", "k", "m", "p")
_FUNCTION_DECORATIONS = ("'", "''", "^{-1}", "_{n}", "^{(k)}", "_{\\theta}")
_POWERED_FUNCTIONS = ("\\sin", "\\cos", "\\tan", "\\log", "\\ln", "\\sinh", "\\cosh")
_FUNCTION_POWERS = ("2", "3", "n", "-1")
_LOG_BASES = ("2", "10", "a", "b", "e")
_INDEX_SETS = ("I", "S", "A", "\\mathbb{N}", "\\mathbb{Z}", "F")
_UPPER_LIMITS = ("n", "N", "\\infty", "m", "k", "10")
_LOWER_BOUNDS = ("0", "a", "-1", "1", "-\\infty", "x_{0}")
_UPPER_BOUNDS = ("1", "b", "\\infty", "x", "t", "2\\pi", "\\pi")
_DOMAINS = ("\\Omega", "\\mathbb{R}", "E", "\\gamma", "C", "D")
_REGIONS = ("D", "C", "S", "\\Omega", "\\partial \\Omega", "R", "\\gamma", "V")
_LIMIT_TARGETS = ("0", "\\infty", "a", "+\\infty", "0^{+}", "x_{0}", "1", "-\\infty")
_SEQUENTIAL_LIMITS = ("\\lim", "\\limsup", "\\liminf", "\\varlimsup", "\\varliminf")
_DIRECTED_LIMITS = ("i", "n", "i \\in I", "U \\ni x")
_EXTREMUM_RANGES = ("x \\in X", "i", "1 \\leq i \\leq n", "n", "\\|x\\| = 1", "t \\in [0, T]",
                    "x \\in A", "k", "\\theta", "x > 0")
_STARRED_OPERATORS = ("argmax", "argmin", "esssup", "plim", "Res", "minimize")
_NORM_INDICES = ("2", "1", "p", "\\infty", "F")
_JOINERS = ("+", ",", "\\cdot", "\\times", "")
_PRODUCT_SIGNS = ("\\cdot", "\\times")
_DEFINING_RELATIONS = ("=", "=", ":=", "\\equiv", "\\approx")
_FUNCTION_NAMES = ("f", "g", "h", "F", "T", "u", "v", "p")
_FUNCTION_SUFFIXES = ("", "", "_{n}", "^{\\prime}", "_{\\alpha}")
_MAP_NAMES = ("f", "g", "T", "F", "h", "\\phi", "\\pi", "\\iota")
_COLONS = (":", "\\colon")
_MAP_ARROWS = ("\\to", "\\to", "\\to", "\\longrightarrow", "\\hookrightarrow", "\\twoheadrightarrow", "\\rightarrow")
_MAP_SEPARATORS = ("\\quad", "\\;", "")
_SCRIPT_FONTS = ("\\mathcal", "\\mathscr", "\\mathfrak")
_SET_OPS = ("\\times", "\\cup", "\\cap", "\\setminus", "\\otimes")
_OPEN_BRACKETS = ("[", "(")
_CLOSE_BRACKETS = ("]", ")")
_INTERVAL_STARTS = ("0", "a", "-1", "-\\infty")
_INTERVAL_ENDS = ("1", "b", "\\infty", "+\\infty")
_SET_SEPARATORS = ("\\mid", ":", "|", ",")
_QUANTIFIED = ("x", "y", "z", "n", "\\varepsilon")
_WITNESSES = ("y", "z", "m", "\\delta", "N")
_MEMBERSHIP = ("\\in", ">")
_SUCH_THAT = (":", ",", "\\quad", "\\text{ such that }")
_CONNECTIVES = ("\\wedge", "\\vee", "\\Rightarrow", "\\iff")
_NEGATIONS = ("\\neg", "")
_CLAUSE_GLUE = ("\\quad", "\\qquad", ",", "")
_SIGNS = ("-", "")
_MATRIX_NAMES = ("A", "M", "B", "\\Sigma", "R", "J", "\\det A", "P")
_LAST_CASES = ("otherwise", "else", "elsewhere", "if x is odd", "if n is even")
_CASE_PREFIXES = ("\\text{if }", "", "\\text{for }")
_CASE_HEADS = ("f(x)", "y", "|x|", "u(t)", "\\delta_{ij}", "H(x)")
_STEP_RELATIONS = ("=", "=", "\\leq", "\\geq", "\\approx")
_OVERSET_MARKS = ("\\text{def}", "!", "?", "\\mathrm{def}", "(1)", "*")
_OVERSET_RELATIONS = ("=", "\\leq", "\\to")
_UNDERSET_MARKS = ("n \\to \\infty", "x \\to 0", "\\text{a.s.}", "k")
_UNDERSET_RELATIONS = ("\\longrightarrow", "=", "\\to", "\\sim")
_STACKREL_MARKS = ("?", "\\text{def}", "d", "*", "\\triangle")
_STACKREL_RELATIONS = ("=", "\\sim", "\\to")
_ARROW_LABELS = ("f", "\\sim", "\\phi", "n \\to \\infty", "\\text{RREF}")
_ARROW_UNDER = ("a", "\\cong", "k")
_ARROW_OVER = ("f", "g")
_BACK_LABELS = ("g", "\\pi", "p")
_MODULI = ("n", "p", "m", "2", "7")
_MEANS = ("0", "\\mu")
_VARIANCES = ("1", "\\sigma^{2}")
_ORDERS = ("<", ">", "\\leq", "\\geq", "=", "\\neq")
_SUFFIXES = ("!", "\\%", "^{\\circ}")
_TAILS = (".", ",", ";")
_MULTIPLIERS = ("\\times 10", "\\cdot 10")


class _Grammar:
    """Builders for each kind of construct; ``depth`` bounds the nesting that is left."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # helpers
    def pick(self, seq: Sequence[str]) -> str:
        return seq[int(self.rng.random() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def choose(self, options: Sequence[tuple[float, Callable[[], str]]]) -> str:
        cumulative = []
        total = 0.0
        for weight, _ in options:
            total += weight
            cumulative.append(total)
        return options[bisect.bisect_right(cumulative, self.rng.random() * total)][1]()

    # atoms
    def integer(self) -> str:
        r = self.rng.random()
        if r < 0.6:
            return str(self.rng.randrange(10))
        if r < 0.9:
            return str(self.rng.randrange(10, 100))
        if r < 0.98:
            return str(self.rng.randrange(100, 1000))
        return str(self.rng.randrange(1000, 100000))

    def number(self) -> str:
        if self.chance(0.18):
            whole = str(self.rng.randrange(0, 100 if self.chance(0.8) else 10000))
            digits = "".join(str(self.rng.randrange(10)) for _ in range(self.rng.randint(1, 4)))
            return f"{whole}.{digits}"
        return self.integer()

    def letter(self) -> str:
        r = self.rng.random()
        if r < 0.40:
            return self.pick(COMMON_VARIABLES)
        if r < 0.58:
            return self.pick(LATIN_LOWER)
        if r < 0.74:
            return self.pick(LATIN_UPPER)
        if r < 0.92:
            return self.pick(GREEK_LOWER)
        return self.pick(GREEK_UPPER)

    def font_letter(self) -> str:
        command, letters = FONTS[int(self.rng.random() * len(FONTS))]
        if command in _WORD_FONTS and self.chance(0.25):
            word = "".join(self.pick(LATIN_LOWER) for _ in range(self.rng.randint(2, 4)))
            return f"{command}{{{word}}}"
        return f"{command}{{{self.pick(letters)}}}"

    def accented(self) -> str:
        inner = self.font_letter() if self.chance(0.2) else self.letter()
        if self.chance(0.2):
            extra = self.letter() if self.chance(0.5) else ""
            return f"{self.pick(WIDE_ACCENTS)}{{{inner} {extra}}}"
        return f"{self.pick(ACCENTS)}{{{inner}}}"

    def base(self) -> str:
        r = self.rng.random()
        if r < 0.62:
            return self.letter()
        if r < 0.80:
            return self.font_letter()
        if r < 0.96:
            return self.accented()
        return self.pick(SYMBOLS)

    def index(self) -> str:
        return self.choose((
            (5, lambda: self.pick("ijknmt")),
            (4, lambda: str(self.rng.randrange(10))),
            (2, self.letter),
            (2, lambda: f"{self.pick('ijkn')}{self.pick('+-')}{self.rng.randint(1, 2)}"),
            (1.5, lambda: self.pick("ijk") + self.pick("jkl")),
            (1, lambda: f"{self.pick('ijk')},{self.pick('jkl')}"),
            (0.5, lambda: f"\\text{{{self.pick(_NAMED_INDICES)}}}"),
            (0.5, lambda: f"\\mathrm{{{self.pick(_NAMED_INDICES)}}}"),
            (0.5, self.font_letter),
            (0.4, lambda: f"{self.pick('ijkn')}_{{{self.pick('0123')}}}"),
            (0.3, lambda: self.pick(_SPECIAL_INDICES)),
        ))

    def exponent(self, depth: int) -> str:
        return self.choose((
            (8, lambda: "2"),
            (2, lambda: self.pick("3456")),
            (2, lambda: self.pick("nkmpqx")),
            (2, lambda: "-1"),
            (1, lambda: self.pick(_MARK_EXPONENTS)),
            (1, lambda: f"{self.pick('nk')}{self.pick('+-')}1"),
            (1, lambda: f"-{self.pick('23nk')}"),
            (0.8, lambda: f"{self.rng.randint(2, 3)}{self.pick('nkx')}"),
            (0.7, lambda: f"\\frac{{{self.rng.randint(1, 3)}}}{{{self.rng.randint(2, 5)}}}"),
            (0.6, lambda: self.pick(_PHASE_EXPONENTS)),
            (0.5 if depth > 0 else 0, lambda: self.expression(depth - 1, max_terms=2)),
            (0.3, lambda: self.pick(_ODD_EXPONENTS)),
        ))

    def scripted(self, base: str, depth: int, p_sub: float = 0.35, p_sup: float = 0.3) -> str:
        if base in SYMBOLS and base not in _SCRIPTABLE_SYMBOLS:
            return base
        out = base
        if self.chance(p_sub):
            out += f"_{{{self.index()}}}"
        if self.chance(p_sup):
            out += f"^{{{self.exponent(depth)}}}"
        elif self.chance(0.06):
            out += self.pick(_PRIMES)
        return out

    def atom(self, depth: int) -> str:
        return self.scripted(self.base(), depth)

    # compound factors
    def fraction(self, depth: int) -> str:
        num = self.expression(depth - 1, max_terms=3)
        den = self.expression(depth - 1, max_terms=2)
        command = "\\frac" if self.chance(0.97) else "\\cfrac"
        return f"{command}{{{num}}}{{{den}}}"

    def derivative(self, depth: int) -> str:
        d = "\\partial" if self.chance(0.5) else "d"
        y, x = self.pick("fyuFgvw"), self.pick("xtsyzr")
        if self.chance(0.3):
            n = self.pick("23n")
            return f"\\frac{{{d}^{{{n}}} {y}}}{{{d} {x}^{{{n}}}}}"
        if self.chance(0.3):
            return f"\\frac{{{d}}}{{{d} {x}}} {self.factor(depth - 1)}"
        return f"\\frac{{{d} {y}}}{{{d} {x}}}"

    def root(self, depth: int) -> str:
        inner = self.expression(depth - 1, max_terms=3)
        if self.chance(0.2):
            return f"\\sqrt[{self.pick(_ROOT_DEGREES)}]{{{inner}}}"
        return f"\\sqrt{{{inner}}}"

    def parenthesized(self, depth: int) -> str:
        inner = self.expression(depth - 1, max_terms=3)
        r = self.rng.random()
        if r < 0.45:
            opening, closing = "(", ")"
        elif r < 0.6:
            opening, closing = "[", "]"
        elif r < 0.8:
            left, right = DELIMITER_PAIRS[int(self.rng.random() * len(DELIMITER_PAIRS))]
            opening, closing = f"\\left{left}", f"\\right{right}"
        else:
            size = self.pick(SIZES)
            left, right = DELIMITER_PAIRS[int(self.rng.random() * 8)]
            opening, closing = f"{size}{left}", f"{size}{right}"
        out = f"{opening} {inner} {closing}"
        if self.chance(0.25):
            out += f"^{{{self.exponent(depth)}}}"
        return out

    def evaluated(self, depth: int) -> str:
        body = self.expression(depth - 1, max_terms=2)
        if self.chance(0.5):
            return f"\\left. {body} \\right|_{{{self.pick('xtu')}={self.number()}}}"
        return f"{body} {self.pick(SIZES)}|_{{{self.pick('ab0')}}}^{{{self.pick('bx1')}}}"

    def function_call(self, depth: int) -> str:
        r = self.rng.random()
        if r < 0.45:
            name = self.pick(FUNCTIONS)
        elif r < 0.65:
            name = f"\\operatorname{{{self.pick(OPERATOR_NAMES)}}}"
        else:
            name = self.pick("fghFGHuvpqTLP")
            if self.chance(0.2):
                name += self.pick(_FUNCTION_DECORATIONS)
            args = ", ".join(self.expression(depth - 1, max_terms=2) for _ in range(self.rng.randint(1, 3)))
            return f"{name}({args})" if self.chance(0.8) else f"{name}\\left({args}\\right)"
        if name in _POWERED_FUNCTIONS and self.chance(0.2):
            name += f"^{{{self.pick(_FUNCTION_POWERS)}}}"
        if name == "\\log" and self.chance(0.2):
            name += f"_{{{self.pick(_LOG_BASES)}}}"
        if self.chance(0.5):
            return f"{name} {self.atom(depth)}"
        argument = self.expression(depth - 1, max_terms=3)
        return f"{name}({argument})" if self.chance(0.7) else f"{name}\\left({argument}\\right)"

    def limits(self, i: str) -> tuple[str, str]:
        """Lower and upper limit of a big operator over the index ``i`` (upper may be empty)."""
        r = self.rng.random()
        if r < 0.5:
            return f"{i}={self.pick('01')}", self.pick(_UPPER_LIMITS)
        if r < 0.62:
            return f"{i} \\in {self.pick(_INDEX_SETS)}", ""
        if r < 0.75:
            return f"{self.pick('01')} \\leq {i} \\leq {self.pick('NMm')}", ""
        if r < 0.85:
            return i, ""
        if r < 0.9:
            return f"\\substack{{{i} < {self.pick('pq')} \\\\ {i} \\neq {self.pick('lr')}}}", ""
        return f"{i}={self.pick('01')}", ""

    def big_operator(self, depth: int) -> str:
        op = self.pick(BIG_OPERATORS) if self.chance(0.45) else "\\sum"
        i = self.pick("ijkn")
        lower, upper = self.limits(i)
        out = op + (f"_{{{lower}}}" if lower else "") + (f"^{{{upper}}}" if upper else "")
        if self.chance(0.4):
            summand = f"{self.pick('axAfcbXu')}_{{{i}}}"
            if self.chance(0.3):
                summand += f"^{{{self.exponent(0)}}}"
        else:
            summand = self.term(depth - 1)
        return f"{out} {summand}"

    def integral(self, depth: int) -> str:
        op = self.pick(INTEGRALS) if self.chance(0.35) else "\\int"
        var = self.pick("xtsuyzr")
        r = self.rng.random()
        if op == "\\int" and r < 0.45:
            op += f"_{{{self.pick(_LOWER_BOUNDS)}}}^{{{self.pick(_UPPER_BOUNDS)}}}"
        elif op == "\\int" and r < 0.6:
            op += f"_{{{self.pick(_DOMAINS)}}}"
        elif r < 0.85:
            op += f"_{{{self.pick(_REGIONS)}}}"
        body = self.expression(depth - 1, max_terms=2)
        r = self.rng.random()
        if r < 0.3:
            return f"{op} {body} \\, d{var}"
        if r < 0.65:
            return f"{op} {body} d {var}"
        return f"{op} {self.factor(depth - 1)} \\mathrm{{d}}{var}"

    def limit(self, depth: int) -> str:
        if self.chance(0.08):
            name = self.pick(_STARRED_OPERATORS)
            return f"\\operatorname*{{{name}}}_{{{self.pick(_EXTREMUM_RANGES)}}} {self.term(depth - 1)}"
        op = self.pick(LIMIT_OPERATORS) if self.chance(0.6) else "\\lim"
        if op in _SEQUENTIAL_LIMITS:
            sub = f"{self.pick('xnthk')} \\to {self.pick(_LIMIT_TARGETS)}"
        elif op in ("\\injlim", "\\projlim"):
            sub = self.pick(_DIRECTED_LIMITS)
        else:
            sub = self.pick(_EXTREMUM_RANGES)
        return f"{op}_{{{sub}}} {self.term(depth - 1)}"

    def delimited(self, depth: int) -> str:
        inner = self.expression(depth - 1, max_terms=2)
        r = self.rng.random()
        if r < 0.35:
            return f"|{inner}|"
        if r < 0.55:
            norm = f"\\|{inner}\\|"
            return norm + (f"_{{{self.pick(_NORM_INDICES)}}}" if self.chance(0.4) else "")
        if r < 0.7:
            return f"\\lfloor {inner} \\rfloor" if self.chance(0.5) else f"\\lceil {inner} \\rceil"
        if r < 0.85:
            return f"\\langle {inner}, {self.atom(0)} \\rangle"
        left, right = DELIMITER_PAIRS[int(self.rng.random() * len(DELIMITER_PAIRS))]
        return f"\\left{left} {inner} \\right{right}"

    def braced_annotation(self, depth: int) -> str:
        body = self.expression(max(depth - 1, 0), max_terms=3)
        label = self.choose((
            (2, lambda: self.pick("nkmN")),
            (1, lambda: f"{self.pick('nk')} \\text{{ times}}"),
            (1, lambda: f"\\text{{{self.pick(TEXT_WORDS)}}}"),
            (1, lambda: f"= {self.number()}"),
        ))
        if self.chance(0.5):
            return f"\\underbrace{{{body}}}_{{{label}}}"
        return f"\\overbrace{{{body}}}^{{{label}}}"

    def binomial(self, depth: int) -> str:
        top = self.pick("nNmk") if self.chance(0.7) else self.integer()
        bottom = self.pick("kijr") if self.chance(0.7) else self.expression(depth - 1, 2)
        return f"\\binom{{{top}}}{{{bottom}}}"

    def wide(self, depth: int) -> str:
        return f"{self.pick(WIDE_ACCENTS)}{{{self.expression(depth - 1, max_terms=2)}}}"

    def dotted(self) -> str:
        x = self.pick("axuvx")
        return (f"{x}_{{1}} {self.pick(_JOINERS)} {x}_{{2}} {self.pick(_JOINERS)} {self.pick(DOTS)} "
                f"{self.pick(_JOINERS)} {x}_{{{self.pick('nkm')}}}")

    def factor(self, depth: int, number: float = 0.0) -> str:
        """One multiplicative factor; ``number`` weighs a plain number (only leading factors)."""
        if depth <= 0:
            return self.choose(((6, lambda: self.atom(0)), (3 * number, self.number),
                                (0.3, lambda: self.pick(SYMBOLS))))
        return self.choose((
            (30, lambda: self.atom(depth)),
            (10 * number, self.number),
            (7, lambda: self.parenthesized(depth)),
            (7, lambda: self.fraction(depth)),
            (1.5, lambda: self.derivative(depth)),
            (4, lambda: self.root(depth)),
            (7, lambda: self.function_call(depth)),
            (2.5, lambda: self.big_operator(depth)),
            (1.5, lambda: self.integral(depth)),
            (1.2, lambda: self.limit(depth)),
            (3, lambda: self.delimited(depth)),
            (1, lambda: self.binomial(depth)),
            (1.5, lambda: self.wide(depth)),
            (0.6, lambda: self.braced_annotation(depth)),
            (0.6, lambda: self.evaluated(depth)),
            (0.8, self.dotted),
            (0.3, lambda: f"\\boxed{{{self.expression(depth - 1, 2)}}}"),
            (0.3, lambda: f"{self.integer()}{self.pick(_SUFFIXES)}"),
        ))

    def term(self, depth: int) -> str:
        n = 1 if self.chance(0.65) else self.rng.randint(2, 3)
        factors = [self.factor(depth, number=1.0 if n == 1 else 0.0) for _ in range(n)]
        if n > 1 and self.chance(0.15):
            return f" {self.pick(_PRODUCT_SIGNS)} ".join(factors)
        if n > 1 and self.chance(0.3):
            factors.insert(0, self.integer() if self.chance(0.8) else self.number())
        return " ".join(factors)

    def expression(self, depth: int, max_terms: int = 4) -> str:
        n = 1 + min(int(self.rng.expovariate(1.3)), max_terms - 1)
        algebraic = self.chance(0.15)
        out = ("-" if self.chance(0.1) else "") + self.term(depth)
        for _ in range(n - 1):
            if algebraic:
                op = self.pick(ALGEBRA_OPS)
            else:
                op = self.pick("+-") if self.chance(0.6) else self.pick(ARITHMETIC_OPS)
            out += f" {op} {self.term(depth)}"
        return out

    # whole formulas
    def relation(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return "="
        if r < 0.8:
            return self.pick(ORDER_RELATIONS)
        if r < 0.93:
            return self.pick(SET_RELATIONS)
        return self.pick(ARROWS)

    def equation(self, depth: int) -> str:
        out = self.expression(depth, 3)
        for _ in range(1 if self.chance(0.75) else 2):
            out += f" {self.relation()} {self.expression(depth, 3)}"
        return out

    def definition(self, depth: int) -> str:
        f = self.pick(_FUNCTION_NAMES) + self.pick(_FUNCTION_SUFFIXES)
        args = ", ".join(self.pick("xyztsuv") for _ in range(self.rng.randint(1, 2)))
        return f"{f}({args}) {self.pick(_DEFINING_RELATIONS)} {self.expression(depth, 4)}"

    def set_name(self) -> str:
        r = self.rng.random()
        if r < 0.4:
            name = f"\\mathbb{{{self.pick('RCNZQFHPK')}}}"
            return name + (f"^{{{self.pick('nm2d')}}}" if self.chance(0.4) else "")
        if r < 0.65:
            return self.pick(LATIN_UPPER)
        if r < 0.8:
            return f"{self.pick(_SCRIPT_FONTS)}{{{self.pick(LATIN_UPPER)}}}"
        if r < 0.93:
            return (f"{self.pick(_OPEN_BRACKETS)}{self.pick(_INTERVAL_STARTS)}, "
                    f"{self.pick(_INTERVAL_ENDS)}{self.pick(_CLOSE_BRACKETS)}")
        return f"{self.pick(LATIN_UPPER)} {self.pick(_SET_OPS)} {self.pick(LATIN_UPPER)}"

    def mapping(self, depth: int) -> str:
        out = (f"{self.pick(_MAP_NAMES)} {self.pick(_COLONS)} {self.set_name()} "
               f"{self.pick(_MAP_ARROWS)} {self.set_name()}")
        if self.chance(0.4):
            out += f", {self.pick(_MAP_SEPARATORS)} {self.pick('xv')} \\mapsto {self.expression(depth - 1, 2)}"
        return out

    def set_builder(self, depth: int) -> str:
        x = self.pick("xnzpv")
        inner = max(depth - 1, 0)
        predicate = f"{self.expression(inner, 2)} {self.pick(ORDER_RELATIONS)} {self.expression(inner, 2)}"
        member = f"{x} \\in {self.set_name()}"
        if self.chance(0.5):
            return f"{self.pick(LATIN_UPPER)} = \\{{ {member} {self.pick(_SET_SEPARATORS)} {predicate} \\}}"
        if self.chance(0.3):
            return f"\\left\\{{ {member} \\middle| {predicate} \\right\\}}"
        return f"\\left\\{{ {member} {self.pick(_SET_SEPARATORS)} {predicate} \\right\\}}"

    def enumeration(self, depth: int) -> str:
        r = self.rng.random()
        if r < 0.4:
            items = [self.number() for _ in range(self.rng.randint(1, 4))]
            if self.chance(0.4):
                items += [self.pick(DOTS), self.pick("nNk")]
            return f"{self.pick(LATIN_UPPER)} = \\{{{', '.join(items)}\\}}"
        if r < 0.7:
            return f"{self.dotted()} {self.relation()} {self.expression(depth - 1, 2)}"
        return ", ".join(self.atom(0) for _ in range(self.rng.randint(2, 4)))

    def logic(self, depth: int) -> str:
        inner = max(depth - 1, 0)
        r = self.rng.random()
        if r < 0.5:
            domain = self.set_name() if self.chance(0.7) else "0"
            witness_domain = self.set_name() if self.chance(0.5) else "0"
            return (f"\\forall {self.pick(_QUANTIFIED)} {self.pick(_MEMBERSHIP)} {domain}, "
                    f"\\exists {self.pick(_WITNESSES)} {self.pick(_MEMBERSHIP)} {witness_domain} "
                    f"{self.pick(_SUCH_THAT)} {self.equation(inner)}")
        if r < 0.8:
            return f"{self.equation(inner)} {self.pick(ARROWS)} {self.equation(inner)}"
        return (f"{self.pick(LOGIC)} {self.pick('pqPA')} {self.pick(_CONNECTIVES)} "
                f"{self.pick(_NEGATIONS)} {self.pick('qrBQ')}")

    def text_clause(self, depth: int) -> str:
        main = self.equation(depth)
        clause = self.choose((
            (3, lambda: f"\\text{{{self.pick(TEXT_WORDS)} }} {self.atom(0)} {self.relation()} {self.number()}"),
            (1, lambda: f"\\text{{ {self.pick(TEXT_WORDS)}}}"),
            (1, lambda: f"\\text{{{self.pick(TEXT_WORDS)} {self.pick(TEXT_WORDS)}}}"),
        ))
        return f"{main} {self.pick(_CLAUSE_GLUE)} {clause}"

    def measurement(self) -> str:
        unit = self.pick(UNITS)
        unit_tex = f"\\mathrm{{{unit}}}" if self.chance(0.5) and "/" not in unit else f"\\text{{ {unit}}}"
        value = self.number()
        if self.chance(0.25):
            value += f" {self.pick(_MULTIPLIERS)}^{{{self.pick(_SIGNS)}{self.rng.randint(1, 12)}}}"
        return f"{self.letter()} {self.pick(('=', '='))} {value} {unit_tex}"

    def cell(self, depth: int) -> str:
        """A matrix or array entry; never starting with "[" (after "\\\\" that is a skip length)."""
        if self.chance(0.5):
            return self.pick(_SIGNS) + self.number() if self.chance(0.6) else self.atom(0)
        return self.row_start(lambda: self.expression(max(depth - 1, 0), 2))

    def row_start(self, build: Callable[[], str]) -> str:
        for _ in range(20):
            text = build()
            if not text.startswith("["):
                return text
        return "x"

    def matrix(self, depth: int) -> str:
        env = self.pick(MATRICES)
        rows, cols = self.rng.randint(2, 4), self.rng.randint(1, 4)
        if self.chance(0.15):
            a = self.pick("axA")
            body = (f"{a}_{{11}} & \\cdots & {a}_{{1n}} \\\\ \\vdots & \\ddots & \\vdots \\\\ "
                    f"{a}_{{m1}} & \\cdots & {a}_{{mn}}")
        else:
            body = " \\\\ ".join(" & ".join(self.cell(depth) for _ in range(cols)) for _ in range(rows))
        out = f"\\begin{{{env}}} {body} \\end{{{env}}}"
        if self.chance(0.5):
            out = f"{self.pick(_MATRIX_NAMES)} = {out}"
        return out

    def array(self, depth: int) -> str:
        spec = self.pick(ARRAY_SPECS)
        cols = sum(spec.count(c) for c in "clr")
        rows = [" & ".join(self.cell(depth) for _ in range(cols)) for _ in range(self.rng.randint(2, 4))]
        separator = " \\\\ \\hline " if self.chance(0.3) else " \\\\ "
        body = f"\\begin{{array}}{{{spec}}} {separator.join(rows)} \\end{{array}}"
        if self.chance(0.6):
            left, right = DELIMITER_PAIRS[int(self.rng.random() * 5)]
            body = f"\\left{left} {body} \\right{right}"
        return body

    def cases(self, depth: int) -> str:
        n = self.rng.randint(2, 3)
        rows = []
        for k in range(n):
            value = self.row_start(lambda: self.expression(max(depth - 1, 0), 3))
            if k == n - 1 and self.chance(0.5):
                condition = f"\\text{{{self.pick(_LAST_CASES)}}}"
            else:
                condition = f"{self.pick(_CASE_PREFIXES)} {self.atom(0)} {self.relation()} {self.number()}"
            rows.append(f"{value} & {condition}")
        body = " \\\\ ".join(rows)
        return f"{self.pick(_CASE_HEADS)} = \\begin{{cases}} {body} \\end{{cases}}"

    def aligned(self, depth: int) -> str:
        inner = max(depth - 1, 0)
        if self.chance(0.5):
            lines = [f"{self.row_start(lambda: self.expression(inner, 3))} & = {self.expression(inner, 3)}"]
            for _ in range(self.rng.randint(1, 2)):
                lines.append(f"& {self.pick(_STEP_RELATIONS)} {self.expression(inner, 3)}")
        else:
            lines = [f"{self.row_start(lambda: self.expression(inner, 3))} & {self.relation()} "
                     f"{self.expression(inner, 2)}" for _ in range(self.rng.randint(2, 3))]
        if self.chance(0.2):
            body = " \\\\ ".join(line.replace("& ", "") for line in lines)
            if "\\\\ [" in body:
                return self.row_start(lambda: self.expression(inner, 3))
            return f"\\begin{{gathered}} {body} \\end{{gathered}}"
        body = " \\\\ ".join(lines)
        return f"\\begin{{aligned}} {body} \\end{{aligned}}"

    def annotated_relation(self, depth: int) -> str:
        lhs, rhs = self.expression(depth - 1, 2), self.expression(depth - 1, 2)
        r = self.rng.random()
        if r < 0.3:
            rel = f"\\overset{{{self.pick(_OVERSET_MARKS)}}}{{{self.pick(_OVERSET_RELATIONS)}}}"
        elif r < 0.55:
            rel = f"\\underset{{{self.pick(_UNDERSET_MARKS)}}}{{{self.pick(_UNDERSET_RELATIONS)}}}"
        elif r < 0.75:
            rel = f"\\stackrel{{{self.pick(_STACKREL_MARKS)}}}{{{self.pick(_STACKREL_RELATIONS)}}}"
        elif r < 0.83:
            rel = f"\\xrightarrow{{{self.pick(_ARROW_LABELS)}}}"
        elif r < 0.9:
            rel = f"\\xrightarrow[{self.pick(_ARROW_UNDER)}]{{{self.pick(_ARROW_OVER)}}}"
        else:
            rel = f"\\xleftarrow{{{self.pick(_BACK_LABELS)}}}"
        return f"{lhs} {rel} {rhs}"

    def congruence(self) -> str:
        return f"{self.atom(0)} \\equiv {self.number()} \\pmod{{{self.pick(_MODULI)}}}"

    def probability(self, depth: int) -> str:
        a, b = self.pick("AXE"), self.pick("BYF")
        r = self.rng.random()
        if r < 0.2:
            return f"P({a} \\mid {b}) = \\frac{{P({b} \\mid {a}) P({a})}}{{P({b})}}"
        if r < 0.4:
            return f"\\mathbb{{E}}[{self.expression(max(depth - 1, 0), 2)}] = {self.expression(depth - 1, 3)}"
        if r < 0.6:
            return f"\\operatorname{{Var}}({a}) = \\mathbb{{E}}[{a}^{{2}}] - (\\mathbb{{E}}[{a}])^{{2}}"
        if r < 0.8:
            return f"{a} \\sim \\mathcal{{N}}({self.pick(_MEANS)}, {self.pick(_VARIANCES)})"
        return f"\\Pr({a} {self.pick(_ORDERS)} {self.atom(0)}) {self.relation()} {self.number()}"

    def tiny(self) -> str:
        return self.choose((
            (4, lambda: self.atom(0)),
            (2, self.number),
            (1, lambda: self.pick(_LONE_SYMBOLS)),
            (1, self.font_letter),
            (1, lambda: f"{self.atom(0)} {self.relation()} {self.atom(0)}"),
            (0.5, lambda: f"{self.pick(FUNCTIONS)} {self.atom(0)}"),
            (0.5, lambda: f"{self.atom(0)} {self.pick(SET_RELATIONS)} {self.set_name()}"),
            (0.5, lambda: f"{self.atom(0)} {self.pick(ARROWS)} {self.atom(0)}"),
        ))

    def formula(self) -> str:
        depth = self.choose(((5, lambda: "0"), (5, lambda: "1"), (3, lambda: "2"), (0.8, lambda: "3")))
        d = int(depth)
        body = self.choose((
            (9, self.tiny),
            (16, lambda: self.expression(d + 1, 4)),
            (22, lambda: self.equation(d + 1)),
            (6, lambda: self.definition(d + 1)),
            (3, lambda: self.mapping(d + 1)),
            (3, lambda: self.set_builder(d + 1)),
            (3, lambda: self.enumeration(d + 1)),
            (3, lambda: self.logic(d + 1)),
            (3, lambda: self.text_clause(d)),
            (1.5, self.measurement),
            (4, lambda: self.matrix(d)),
            (1.5, lambda: self.array(d)),
            (2, lambda: self.cases(d + 1)),
            (2.5, lambda: self.aligned(d + 1)),
            (2, lambda: self.annotated_relation(d + 1)),
            (0.7, self.congruence),
            (1.5, lambda: self.probability(d + 1)),
            (1.5, lambda: f"{self.equation(d)}, {self.pick(SPACES)} {self.equation(d)}"),
        ))
        if self.chance(0.08):
            body += self.pick(_TAILS)
        return body


_SCRIPTABLE_SYMBOLS = ("\\partial", "\\nabla", "\\ell", "\\hbar", "\\aleph", "\\wp", "\\infty",
                       "\\Re", "\\Im", "\\beth", "\\imath", "\\jmath", "\\mho", "\\eth")
_WORD_FONTS = ("\\mathrm", "\\mathbf", "\\mathsf", "\\mathtt", "\\mathit")
_LONE_SYMBOLS = SYMBOLS + GREEK_LOWER + GREEK_UPPER + LOGIC


# ----------------------------------------------------------------------------- public API


def generate(n: int, seed: int) -> Iterator[str]:
    """``n`` random formulas (duplicates possible, at most 120 tokens), the same for a seed."""
    if n < 0:
        raise ValueError("the number of formulas to generate must not be negative")
    grammar = _Grammar(random.Random(seed))
    produced = 0
    while produced < n:
        latex = " ".join(grammar.formula().split())
        if len(_ROUGH_TOKEN.findall(latex)) > _MAX_TOKENS:  # normalizing would cost 2x the time
            continue
        produced += 1
        yield latex


_ROUGH_TOKEN = re.compile(r"\\[a-zA-Z]+|\\.|[^\s{}]|[{}]")


def _entry_tokens(entry: str) -> list[str]:
    """Canonical tokens of a table entry; bare commands that need arguments stay as they are."""
    try:
        return normalize(entry)
    except LatexSyntaxError:
        return [SYNONYMS.get(t, t) for t in tokenize(entry)]


@lru_cache(maxsize=1)
def generator_tokens() -> frozenset[str]:
    """Every token :func:`generate` can emit, after normalization (enters the vocabulary)."""
    tokens: set[str] = set("0123456789") | set(LATIN_LOWER) | set(LATIN_UPPER) | {SPACE}
    tables: tuple[Sequence[str], ...] = (
        GREEK_LOWER, GREEK_UPPER, SYMBOLS, ARITHMETIC_OPS, ALGEBRA_OPS, ORDER_RELATIONS,
        SET_RELATIONS, ARROWS, LOGIC, ACCENTS, WIDE_ACCENTS, tuple(f for f, _ in FONTS),
        FUNCTIONS, BIG_OPERATORS, INTEGRALS, LIMIT_OPERATORS, SIZES, DOTS, SPACES, _STRUCTURE,
        _SPECIAL_INDICES, _MARK_EXPONENTS, _PHASE_EXPONENTS, _ODD_EXPONENTS, _INDEX_SETS,
        _UPPER_LIMITS, _LOWER_BOUNDS, _UPPER_BOUNDS, _DOMAINS, _REGIONS, _LIMIT_TARGETS,
        _EXTREMUM_RANGES, _DIRECTED_LIMITS, _NORM_INDICES, _JOINERS, _PRODUCT_SIGNS,
        _DEFINING_RELATIONS, _FUNCTION_SUFFIXES, _FUNCTION_DECORATIONS, _MAP_NAMES, _COLONS,
        _MAP_ARROWS, _MAP_SEPARATORS, _SCRIPT_FONTS, _SET_OPS, _INTERVAL_STARTS, _INTERVAL_ENDS,
        _SET_SEPARATORS, _QUANTIFIED, _WITNESSES, _MEMBERSHIP, _SUCH_THAT, _CONNECTIVES,
        _NEGATIONS, _CLAUSE_GLUE, _MATRIX_NAMES, _CASE_PREFIXES, _CASE_HEADS, _STEP_RELATIONS,
        _OVERSET_MARKS, _OVERSET_RELATIONS, _UNDERSET_MARKS, _UNDERSET_RELATIONS,
        _STACKREL_MARKS, _STACKREL_RELATIONS, _ARROW_LABELS, _ARROW_UNDER, _BACK_LABELS,
        _SUFFIXES, _MULTIPLIERS, _TAILS,
    )
    for table in tables:
        for entry in table:
            tokens.update(_entry_tokens(entry))
    tokens.update(f"\\{kind}{{{env}}}" for env in MATRICES for kind in ("begin", "end"))
    for left, right in DELIMITER_PAIRS:
        tokens.update(normalize(f"\\left{left} x \\right{right}"))
    for word in (TEXT_WORDS + _LAST_CASES + UNITS + OPERATOR_NAMES + ARRAY_SPECS + _NAMED_INDICES
                 + _STARRED_OPERATORS):
        tokens.update(ch for ch in word if ch != " ")
    return frozenset(tokens)
