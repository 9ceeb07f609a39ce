"""Keep decoded LaTeX well formed: the tokens that may come next, given what was emitted so far.

A half-sure model sometimes ends a formula with a brace still open, closes a ``\\left`` with a
``}`` or forgets the second argument of ``\\frac``; the user then gets LaTeX that does not compile
and a preview that fails.  Decoding asks these rules which tokens are allowed at each step and
takes the most probable of those, so every complete reading nests correctly.  Readings the model
already writes well formed are unchanged: the rules only ever remove tokens that would break it.

The rules follow the canonical form the model is trained on (``model.tokenizer.normalize``):

* ``{ }``, ``\\left ... \\right`` and ``\\begin{env} ... \\end{env}`` nest; only the innermost
  open one may close, and EOS waits until all are closed;
* a command with braced arguments (``^``, ``\\frac``, ``\\sqrt``, ``\\mathrm`` ...) is followed by
  exactly that many ``{...}`` groups (``\\sqrt`` may take ``[...]`` first);
* ``\\left`` and ``\\right`` are followed by their delimiter (never EOS, a closer or ``{``).

Near the length limit a reading must still be able to close what it opened: ``budget`` bans the
tokens that would open more than the steps left can close, so a long reading ends with every
group closed and EOS instead of being cut mid-group (then it is marked cut short, since content
may be missing, but its LaTeX compiles and most of it scores).  A reading the time budget or the
repetition guard cuts has what it left open closed after it (``closing``), for the same reason.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .tokenizer import ARG_COUNT, OPTIONAL_ARG
from .vocab import EOS, Vocab


class Opened(NamedTuple):
    closer: int  # the token id that closes it
    owed: int    # braced arguments still owed once it closes (\frac's second after its first)


class SyntaxState(NamedTuple):
    """Where a reading stands: what is open, and what must come next.  Immutable, so a beam's
    hypotheses share prefixes safely."""

    stack: tuple[Opened, ...] = ()
    owed: int = 0            # the next token must open this many more braced arguments
    optional: bool = False   # ... or first a [...] optional argument
    delimiter: bool = False  # the next token is the delimiter of a \\left or \\right


class SyntaxRules:
    """The nesting rules of one vocabulary, as token ids."""

    def __init__(self, vocab: Vocab):
        ids = vocab.index
        self.open_brace = ids.get("{")
        self.close_brace = ids.get("}")
        self.open_optional = ids.get("[")
        self.close_optional = ids.get("]")
        self.right = ids.get("\\right")
        self.blank_delimiter = ids.get(".")  # \right. closes a \left with nothing drawn
        self.left = ids.get("\\left")
        self.begins = {ids[tok]: ids[tok.replace("\\begin{", "\\end{", 1)] for tok in vocab.tokens
                       if tok.startswith("\\begin{") and tok.replace("\\begin{", "\\end{", 1) in ids}
        self.arguments = {ids[tok]: n for tok, n in ARG_COUNT.items() if tok in ids}
        self.arguments.update({ids[tok]: 1 for tok in ("^", "_") if tok in ids})
        if self.open_brace is None or self.close_brace is None:
            self.arguments = {}  # a vocabulary without braces owes none
        self.optional_first = {ids[tok] for tok in OPTIONAL_ARG if tok in ids}
        closers = {self.close_brace, self.right, *self.begins.values()}
        self.closers = sorted(c for c in closers if c is not None)
        self.vocab_size = len(vocab)
        # How many more tokens closing needs after each token, in a state that owes nothing
        # (``cost``): an opener adds its closer (and delimiters, and the arguments it owes as
        # ``{}``), a closer or EOS removes one, anything else adds nothing.
        increase = torch.zeros(self.vocab_size, dtype=torch.long)
        for token, n in self.arguments.items():
            increase[token] = 2 * n
        for token in (self.open_brace, *self.begins):
            if token is not None:
                increase[token] = 1
        if self.left is not None:
            increase[self.left] = 3  # its delimiter, \right and that one's delimiter
        increase[[*self.closers, EOS]] = -1
        self.increase = increase
        self.most_increase = int(increase.max())

    def advance(self, state: SyntaxState, token: int) -> SyntaxState:
        """The state after ``token``.  Tokens the rules forbid (decoding without them) are taken
        as plain tokens, so any sequence can be followed."""
        stack = state.stack
        if state.delimiter:
            return state._replace(delimiter=False)
        if state.owed and token == self.open_brace:
            return SyntaxState(stack + (Opened(self.close_brace, state.owed - 1),))
        if state.owed and state.optional and token == self.open_optional:
            return SyntaxState(stack + (Opened(self.close_optional, state.owed),))
        if stack and token == stack[-1].closer:
            return SyntaxState(stack[:-1], stack[-1].owed, delimiter=token == self.right)
        if token == self.open_brace:
            return SyntaxState(stack + (Opened(self.close_brace, 0),))
        if token == self.left:
            return SyntaxState(stack + (Opened(self.right, 0),), delimiter=True)
        if token in self.begins:
            return SyntaxState(stack + (Opened(self.begins[token], 0),))
        if token in self.arguments:
            return SyntaxState(stack, self.arguments[token], token in self.optional_first)
        return SyntaxState(stack)

    def allowed(self, state: SyntaxState) -> list[int] | None:
        """The only tokens allowed next, or None when the rule is a ban (see ``banned``)."""
        if not state.owed:
            return None
        allowed = [self.open_brace]
        if state.optional and self.open_optional is not None:
            allowed.append(self.open_optional)
        return allowed

    def banned(self, state: SyntaxState) -> list[int]:
        """Tokens not allowed next: every closer but the innermost open one's, and EOS while
        anything is open; after ``\\left``/``\\right``, no closer, EOS or brace."""
        if state.delimiter:
            return [*self.closers, EOS] + ([self.open_brace] if self.open_brace is not None else [])
        top = state.stack[-1].closer if state.stack else None
        banned = [c for c in self.closers if c != top]
        if state.stack:
            banned.append(EOS)
        return banned

    def mask(self, log_probs: torch.Tensor, states: list[SyntaxState]) -> torch.Tensor:
        """``log_probs`` (one row per state) with the forbidden tokens at -inf, in place."""
        for row, state in enumerate(states):
            allowed = self.allowed(state)
            if allowed is not None:
                keep = log_probs[row, allowed].clone()
                log_probs[row] = float("-inf")
                log_probs[row, allowed] = keep
            else:
                log_probs[row, self.banned(state)] = float("-inf")
        return log_probs

    def cost(self, state: SyntaxState) -> int:
        """The fewest tokens that leave ``state`` with nothing open: the closers of what is open
        (and the delimiter after a ``\\right``), ``{}`` for each argument still owed.  (EOS is not
        counted: the length limit ends a reading too.)"""
        opened = sum(1 + (opened.closer == self.right) + 2 * opened.owed for opened in state.stack)
        return opened + 2 * state.owed + state.delimiter

    def closing(self, state: SyntaxState) -> list[int]:
        """The ``cost(state)`` tokens that leave ``state`` with nothing open: a blank delimiter
        where one is due, ``{}`` for each argument owed, then each open group's closer, innermost
        first (``\\right.`` for a ``\\left``), with the arguments owed after it.  For a reading a
        bound cut short, so that what it holds still compiles and renders."""
        out: list[int] = []
        if state.delimiter and self.blank_delimiter is not None:
            out.append(self.blank_delimiter)
        out += [self.open_brace, self.close_brace] * state.owed
        for opened in reversed(state.stack):
            out.append(opened.closer)
            if opened.closer == self.right and self.blank_delimiter is not None:
                out.append(self.blank_delimiter)
            out += [self.open_brace, self.close_brace] * opened.owed
        return out

    def budget(self, log_probs: torch.Tensor, states: list[SyntaxState], remaining: int) -> list[bool]:
        """Ban, in place, the tokens after which ``remaining - 1`` steps could no longer close the
        reading (``remaining`` counts this step's token).  Returns, per row, whether its most
        probable allowed token was banned: the limit, not the model, chose that step.

        Apply after ``mask``.  Within the closing cost of the limit only closers remain, each
        lowering the cost by one, so a reading that starts within budget always closes in it.
        """
        pressed = [False] * len(states)
        for row, state in enumerate(states):
            slack = remaining - 1 - self.cost(state)
            if slack >= self.most_increase or state.delimiter:
                continue  # whatever comes next fits (a delimiter always lowers the cost)
            if state.owed:  # only { (lowers the cost) or an optional [ (raises it by one) may come
                banned = [self.open_optional] if state.optional and slack < 1 and self.open_optional is not None else []
            else:  # the innermost open one's closer always lowers the cost (even a "]")
                top = state.stack[-1].closer if state.stack else None
                banned = [t for t in (self.increase > slack).nonzero().flatten().tolist() if t != top]
            if banned:
                best = int(log_probs[row].argmax())
                log_probs[row, banned] = float("-inf")
                pressed[row] = best in banned
        return pressed

    def complete(self, state: SyntaxState) -> bool:
        """True when nothing is open or owed: the reading may end here."""
        return not state.stack and not state.owed and not state.delimiter


def follow(rules: SyntaxRules, ids: list[int]) -> SyntaxState:
    """The state after a whole token sequence."""
    state = SyntaxState()
    for token in ids:
        state = rules.advance(state, token)
    return state


def well_formed(rules: SyntaxRules, ids: list[int]) -> bool:
    """True when no token of ``ids`` breaks the rules and it ends with nothing open."""
    state = SyntaxState()
    for token in ids:
        allowed = rules.allowed(state)
        if (allowed is not None and token not in allowed) or (allowed is None and token in rules.banned(state)):
            return False
        state = rules.advance(state, token)
    return rules.complete(state)
