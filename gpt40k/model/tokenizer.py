"""Character-level tokenizer: one token per distinct character of the corpus.

Encoding is a table lookup done by numpy over the whole text at once, so a
4M-character corpus encodes in a few milliseconds instead of a Python loop's seconds.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from ..errors import CheckpointError, TokenizerError, UnknownCharactersError, list_chars
from ..files import TOKENIZER_FILE, read_checked_json, write_text
from ..hub.client import locate

ENCODE_CHUNK = 1 << 22  # characters encoded at once
MAX_PROMPT_CHARS = 100_000  # longer prompts are cut before any work: only the last block_size characters count
# Typographic characters and the plain ones they become in a prompt when the vocabulary lacks them.
TYPOGRAPHIC = {"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "—": "-",
               "–": "-", "‐": "-", "…": "...", "\u00a0": " ", "\t": " ", "\r\n": "\n", "\r": "\n"}
UnknownPolicy = Literal["error", "drop", "replace"]


def codepoints(text: str) -> np.ndarray:
    """The characters of ``text`` as code points (uint32), without a Python loop; callers go in
    chunks of ENCODE_CHUNK characters, as this holds four bytes per character at once."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass
class EncodeResult:
    ids: np.ndarray
    unknown: list[str]  # distinct characters that were dropped or replaced


@dataclass
class Prompt:
    """A prompt as the model will read it: ids, the text they spell, and a note per change made."""
    ids: list[int]
    text: str
    notes: list[str] = field(default_factory=list)


class CharTokenizer:
    """Maps characters to ids (their rank in the sorted vocabulary) and back."""

    def __init__(self, chars: Iterable[str], replacement: str | None = None):
        self.chars: list[str] = sorted(set(chars))
        if not self.chars:
            raise TokenizerError("a tokenizer needs at least one character")
        if any(len(c) != 1 for c in self.chars):
            raise TokenizerError("every vocabulary entry must be a single character")
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        # The character that unknown ones become under unknown='replace': a space when the
        # vocabulary has one (it reads naturally), else the first character.
        if replacement is None:
            replacement = " " if " " in self.stoi else self.chars[0]
        if replacement not in self.stoi:
            raise TokenizerError(f"replacement character {replacement!r} is not in the vocabulary")
        self.replacement = replacement
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, min_char_count: int = 1) -> "CharTokenizer":
        """Vocabulary of ``text``, without characters seen fewer than ``min_char_count`` times."""
        counts = Counter(text)
        kept = [c for c, n in counts.items() if n >= min_char_count]
        if not kept:
            raise TokenizerError(f"no character occurs at least {min_char_count} times in the text")
        return cls(kept)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | None = None) -> "CharTokenizer":
        """Load ``tokenizer.json`` from a folder, a file, a run folder or a Hub id ``user/name[@rev]``."""
        path = Path(name_or_path)
        if path.is_file() or (path / TOKENIZER_FILE).is_file():
            return cls.load(path)
        return cls.load(locate(name_or_path, revision=revision, token=token, cache_dir=cache_dir) / TOKENIZER_FILE)

    # ---- encode / decode ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.chars)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, unknown: UnknownPolicy = "error") -> list[int]:
        return self.encode_array(text, unknown).ids.tolist()

    def encode_array(self, text: str, unknown: UnknownPolicy = "error") -> EncodeResult:
        """Vectorised encoding; ``unknown`` decides what happens to characters not in the vocabulary.
        Long texts go in chunks, so memory stays a few times one chunk, not ~40 times the text."""
        if unknown not in ("error", "drop", "replace"):
            raise TokenizerError(f"unknown must be 'error', 'drop' or 'replace', not {unknown!r}")
        if len(text) > ENCODE_CHUNK:
            parts = [self._encode_chunk(text[i:i + ENCODE_CHUNK], unknown)
                     for i in range(0, len(text), ENCODE_CHUNK)]
            return EncodeResult(np.concatenate([p.ids for p in parts]),
                                sorted({c for p in parts for c in p.unknown}))
        return self._encode_chunk(text, unknown)

    def _encode_chunk(self, text: str, unknown: UnknownPolicy) -> EncodeResult:
        codes = codepoints(text).astype(np.int64)
        pos = np.searchsorted(self._codepoints, codes)
        pos_clipped = np.minimum(pos, len(self._codepoints) - 1)
        known = self._codepoints[pos_clipped] == codes
        ids = pos_clipped
        missing: list[str] = []
        if not known.all():
            missing = sorted({chr(c) for c in np.unique(codes[~known])})
            if unknown == "error":
                raise UnknownCharactersError(missing)
            if unknown == "drop":
                ids = ids[known]
            else:
                ids = np.where(known, ids, self.stoi[self.replacement])
        dtype = np.uint8 if len(self) <= 256 else np.uint16
        return EncodeResult(ids=ids.astype(dtype), unknown=missing)

    def encode_prompt(self, text: str | None, max_chars: int | None = None) -> Prompt:
        """What every prompt goes through (the page, sample.py, the card, the trainer's samples):
        typography mapped to the plain forms the vocabulary has, unknown characters left out,
        only the last ``max_chars`` kept, and a new line when nothing is left; a note for each."""
        notes: list[str] = []
        text = unicodedata.normalize("NFC", "" if text is None else str(text)[-MAX_PROMPT_CHARS:])
        mapped = {}
        for src, dst in TYPOGRAPHIC.items():
            if src in text and src not in self.stoi and all(c in self.stoi for c in dst):
                text = text.replace(src, dst)
                if src not in ("\r\n", "\r"):
                    mapped[src] = dst
        if mapped:
            notes.append("Replaced " + ", ".join(f"{s!r} with {d!r}" for s, d in mapped.items())
                         + " (the model knows only the plain forms).")
        result = self.encode_array(text, unknown="drop")
        if result.unknown:
            notes.append(f"Removed {len(result.unknown)} character(s) the model does not know: "
                         f"{list_chars(result.unknown)}.")
        ids = result.ids.tolist()
        if max_chars is not None and len(ids) > max_chars:
            notes.append(f"The prompt is longer than the model's context of {max_chars} characters: "
                         f"only its last {max_chars} characters are used.")
            ids = ids[-max_chars:]
        if not ids:
            notes.append("The prompt is empty (after cleaning): starting from a new line.")
            ids = self.encode("\n", unknown="replace")
        return Prompt(ids, self.decode(ids), notes)

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def unknown_chars(self, text: str) -> list[str]:
        return sorted(set(text) - self.stoi.keys())

    # ---- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"type": "char", "version": 1, "vocab": self.chars, "replacement": self.replacement}

    def save(self, path: str | Path) -> None:
        """Write a readable JSON file: the vocabulary in id order."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``folder/tokenizer.json``, creating the folder (the Hugging Face convention)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save(folder / TOKENIZER_FILE)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        try:
            data = read_checked_json(path.parent, path.name)
            vocab = data["vocab"]
            if data.get("type") != "char" or not isinstance(vocab, list):
                raise ValueError("not a character tokenizer")
            if not all(isinstance(c, str) and len(c) == 1 and not 0xD800 <= ord(c) <= 0xDFFF for c in vocab):
                raise ValueError("its vocabulary holds entries that are not single characters (or are lone "
                                 "surrogates, which no text can hold)")
            if vocab != sorted(set(vocab)):
                raise ValueError("vocabulary is not sorted and unique")
            return cls(vocab, replacement=data.get("replacement"))
        except FileNotFoundError:
            raise TokenizerError(f"no {TOKENIZER_FILE} at {path}") from None
        except CheckpointError as e:  # not a regular file, too big, outside its folder
            raise TokenizerError(str(e)) from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TokenizerError(f"{path} is not a valid GPT-40k tokenizer file: {e}") from None

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={len(self)})"
