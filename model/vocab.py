"""The token vocabulary, saved as JSON beside the weights.

Ids are positions in ``tokens``; the first four are special.  The vocabulary of the bundled
model must stay stable: new tokens are appended, never inserted, so trained weights carry over.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .atomic import atomic_write

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
FORMAT_VERSION = 1


@dataclass
class Vocab:
    tokens: list[str]

    def __post_init__(self) -> None:
        if self.tokens[:4] != SPECIALS:
            raise ValueError("vocabulary must start with " + ", ".join(SPECIALS))
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: list[str]) -> list[int]:
        """Token ids framed by BOS and EOS; unknown tokens become UNK."""
        return [BOS, *(self.index.get(t, UNK) for t in tokens), EOS]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ids, stopping at EOS and skipping the other specials."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS) and i < len(self.tokens):
                out.append(self.tokens[i])
        return out

    def covers(self, tokens: list[str]) -> bool:
        return all(t in self.index for t in tokens)

    def extended(self, new_tokens: Iterable[str]) -> "Vocab":
        """A copy with new tokens appended (existing ids unchanged)."""
        extra = [t for t in dict.fromkeys(new_tokens) if t not in self.index]
        return Vocab(self.tokens + extra)

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_count: int = 1,
              always: Iterable[str] = ()) -> "Vocab":
        """Vocabulary of the tokens seen at least ``min_count`` times, plus ``always``."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        keep = set(always) | {t for t, c in counts.items() if c >= min_count}
        return cls(SPECIALS + sorted(keep - set(SPECIALS)))

    def to_json(self) -> dict:
        return {"format": FORMAT_VERSION, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocab":
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError("not a vocabulary file")
        if data.get("format", 1) > FORMAT_VERSION:
            raise ValueError(f"vocabulary format {data.get('format')} is newer than this program")
        return cls([str(t) for t in data["tokens"]])

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    with atomic_write(path) as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
