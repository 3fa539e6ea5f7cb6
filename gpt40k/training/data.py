"""The corpus: find and read the books, split each one into train/val, encode, cache, batch.

Every book gives the *end* of its text to validation, so each book is represented in the
val loss (a single split at the end of the joined text would validate on the last book only).
The encoded splits are cached as raw uint8/uint16 files that are memory-mapped on the next
run, keyed by a hash of the raw bytes and the settings that shape them.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import CorpusError, list_chars
from ..files import atomic_file, write_json
from ..model.tokenizer import ENCODE_CHUNK, CharTokenizer, codepoints

GLOB_CHARS = set("*?[")
MAX_UNKNOWN_SHARE = 0.01  # resuming: past 1% of unknown characters the text is not the run's own


@dataclass
class Book:
    name: str
    text: str


# ---- finding and reading files ----------------------------------------------------------
def find_text_files(specs: list[str] | str) -> list[Path]:
    """Files named directly, all ``*.txt`` below directories (recursively, sorted), and globs."""
    specs = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    if not specs:
        raise CorpusError("no training data given: pass --data with a file, a folder or a glob")
    files: list[Path] = []
    for spec in map(str, specs):
        path = Path(spec).expanduser()
        if GLOB_CHARS & set(spec):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise CorpusError(f"the pattern {spec!r} matches no file")
            files += matches
        elif path.is_dir():
            matches = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not matches:
                raise CorpusError(f"the folder {spec!r} holds no .txt file (searched recursively)")
            files += matches
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"{spec!r} does not exist: pass a text file, a folder of .txt files or a glob")
    # A file named twice (a folder and a glob inside it) is read once, in first-seen order.
    return list(dict.fromkeys(p.resolve() for p in files))


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 (optional BOM) to text with LF line endings, or a CorpusError naming the problem."""
    utf16 = _utf16_kind(raw)
    if utf16:
        raise CorpusError(f"{name} is {utf16} text (Windows Notepad's \"Unicode\"), not UTF-8: convert it, e.g. "
                          f"`iconv -f UTF-16 -t UTF-8 {Path(name).name} > {Path(name).stem}-utf8.txt`, or in an "
                          "editor save it as UTF-8, then train on the converted file")
    if b"\x00" in raw:  # anywhere: a NUL would enter the vocabulary silently
        raise CorpusError(f"{name} looks like a binary file (it holds NUL bytes), not text; leave it out")
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = bom + e.start  # in the file, BOM included, so a hex editor finds it
        raise CorpusError(
            f"{name} is not UTF-8 text: byte 0x{raw[offset]:02x} at byte offset {offset} cannot be decoded. "
            "Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or leave it out."
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _utf16_kind(raw: bytes) -> str | None:
    """"UTF-16" when ``raw`` is UTF-16 text: a byte-order mark, or (without one) a NUL in every other
    byte of mostly-ASCII text."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    head = raw[:4096]
    if len(head) >= 16 and len(head) % 2 == 0:
        for zeros in (head[1::2], head[0::2]):  # little-endian ASCII has its NULs at odd offsets
            if zeros.count(0) > 0.9 * len(zeros):
                return "UTF-16"
    return None


def read_books(specs: list[str] | str) -> tuple[list[Book], str]:
    """The books, and a hash of their raw bytes and names (the cache key's first part)."""
    digest = hashlib.sha256()
    books = []
    for path in find_text_files(specs):
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise CorpusError(f"cannot read {path}: {e.strerror}") from None
        digest.update(path.name.encode() + b"\0" + len(raw).to_bytes(8, "little") + raw)
        books.append(Book(path.name, decode_text(raw, str(path))))
    if not any(b.text for b in books):
        raise CorpusError("the corpus is empty: every file given holds no text")
    return books, digest.hexdigest()


# ---- the prepared, encoded corpus --------------------------------------------------------
@dataclass
class BookStats:
    name: str
    chars: int
    distinct: int
    train: int
    val: int


@dataclass
class CorpusData:
    """Encoded train and val splits (memory-mapped arrays) with the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: CharTokenizer
    books: list[BookStats]
    dropped_chars: dict[str, int] = field(default_factory=dict)  # char -> occurrences removed
    cache_path: str | None = None
    from_cache: bool = False

    @property
    def n_chars(self) -> int:
        return sum(b.chars for b in self.books)

    def summary(self) -> dict:
        return {
            "files": len(self.books),
            "characters": self.n_chars,
            "vocab_size": len(self.tokenizer),
            "train_tokens": int(len(self.train)),
            "val_tokens": int(len(self.val)),
            "dropped_chars": self.dropped_chars,
            "books": [vars(b) for b in self.books],
        }

    def summary_table(self) -> str:
        rows = [("file", "characters", "distinct", "train", "val")]
        rows += [(b.name, f"{b.chars:,}", f"{b.distinct}", f"{b.train:,}", f"{b.val:,}") for b in self.books]
        rows.append(("total", f"{self.n_chars:,}", f"{len(self.tokenizer)} (vocab)",
                     f"{len(self.train):,}", f"{len(self.val):,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        if self.dropped_chars:
            shown = ", ".join(f"{c!r}×{n}" for c, n in sorted(self.dropped_chars.items(), key=lambda x: -x[1]))
            lines.append(f"dropped {len(self.dropped_chars)} rare character(s) "
                         f"({sum(self.dropped_chars.values()):,} occurrences): {shown}")
        return "\n".join(lines)

    def check_vocabulary_covers(self) -> None:
        """For a resumed run: the text must be (nearly all) in the run's vocabulary; beyond
        MAX_UNKNOWN_SHARE these are other books, not rare characters of the run's own."""
        unknown = sum(self.dropped_chars.values())
        if unknown > MAX_UNKNOWN_SHARE * max(self.n_chars, 1):
            chars = sorted(self.dropped_chars, key=lambda c: -self.dropped_chars[c])
            raise CorpusError(
                f"{unknown / self.n_chars:.0%} of this text is characters the run being resumed never had in its "
                f"vocabulary ({list_chars(chars)}): these are not the books it was trained on. Resume with its "
                "own --data, or train a new run on these books (--out NEW_FOLDER)")

    def check_fits(self, block_size: int) -> None:
        """Both splits must hold at least one (block_size + 1)-token training example."""
        need = block_size + 1
        for split, data in (("training", self.train), ("validation", self.val)):
            if len(data) < need:
                raise CorpusError(
                    f"the corpus is too short: the {split} split has {len(data):,} characters but one "
                    f"example needs block_size + 1 = {need}. Add text, lower --block-size"
                    + (", or raise --val-fraction" if split == "validation" else ", or lower --val-fraction")
                )


def prepare_corpus(
    specs: list[str] | str,
    cache_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    min_char_count: int = 1,
    tokenizer: CharTokenizer | None = None,
) -> CorpusData:
    """Read, split and encode the books, reusing the cache in ``cache_dir`` when it matches.

    With ``tokenizer`` given (a resumed run), the text is encoded with that vocabulary and
    characters outside it are dropped; otherwise the vocabulary is built from the text.
    """
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if min_char_count < 1:
        raise CorpusError(f"--min-char-count must be at least 1, got {min_char_count}")
    books, raw_hash = read_books(specs)
    settings = {"val_fraction": val_fraction, "min_char_count": min_char_count,
                "vocab": tokenizer.chars if tokenizer else None}
    key = hashlib.sha256((raw_hash + json.dumps(settings, ensure_ascii=False)).encode()).hexdigest()[:16]
    if cache_dir is not None:
        cached = _load_cache(Path(cache_dir), key)
        if cached is not None:
            return cached
    data = _encode_books(books, val_fraction, min_char_count, tokenizer)
    if cache_dir is not None:
        data = _save_cache(data, Path(cache_dir), key)
    return data


def count_chars(texts, chunk: int = ENCODE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(code points, their counts) over ``texts``, sorted; counted in chunks to bound memory."""
    total = np.zeros(0x110000, dtype=np.int64)
    for text in texts:
        for i in range(0, len(text), chunk):
            total += np.bincount(codepoints(text[i:i + chunk]), minlength=len(total))
    chars = np.flatnonzero(total)
    return chars.astype(np.uint32), total[chars]


def _encode_books(books: list[Book], val_fraction: float, min_char_count: int,
                  tokenizer: CharTokenizer | None) -> CorpusData:
    chars, counts = count_chars(b.text for b in books)
    if tokenizer is None:
        keep = counts >= min_char_count
        if not keep.any():
            raise CorpusError(f"no character occurs at least --min-char-count={min_char_count} times")
        tokenizer = CharTokenizer(chr(c) for c in chars[keep])
    dropped = {chr(c): int(n) for c, n in zip(chars, counts) if chr(c) not in tokenizer.stoi}
    train_parts, val_parts, stats = [], [], []
    for book in books:
        ids = tokenizer.encode_array(book.text, unknown="drop").ids
        n_val = int(round(len(ids) * val_fraction))
        train_parts.append(ids[: len(ids) - n_val])
        val_parts.append(ids[len(ids) - n_val:])
        stats.append(BookStats(book.name, len(book.text), len(set(book.text)), len(ids) - n_val, n_val))
    dtype = train_parts[0].dtype
    return CorpusData(
        train=np.concatenate(train_parts).astype(dtype, copy=False),
        val=np.concatenate(val_parts).astype(dtype, copy=False),
        tokenizer=tokenizer,
        books=stats,
        dropped_chars=dropped,
    )


def _save_cache(data: CorpusData, cache_dir: Path, key: str) -> CorpusData:
    """Write the splits and their description, each atomically, then map them back from disk."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for split in ("train", "val"):
            with atomic_file(cache_dir / f"corpus-{key}.{split}.bin") as tmp:
                getattr(data, split).tofile(tmp)
        meta = {
            "dtype": str(data.train.dtype),
            "tokenizer": data.tokenizer.to_dict(),
            "books": [vars(b) for b in data.books],
            "dropped_chars": data.dropped_chars,
        }
        write_json(cache_dir / f"corpus-{key}.json", meta)  # written last: it marks the cache complete
    except OSError as e:
        raise CorpusError(f"cannot write the corpus cache in {cache_dir}: {e.strerror}. "
                          "Pass a writable --cache-dir.") from None
    # An empty split cannot be memory-mapped: keep it in memory (check_fits then says what is wrong).
    return _load_cache(cache_dir, key, from_cache=False) or data


def _load_cache(cache_dir: Path, key: str, from_cache: bool = True) -> CorpusData | None:
    meta_path = cache_dir / f"corpus-{key}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        arrays = {s: np.memmap(cache_dir / f"corpus-{key}.{s}.bin", dtype=meta["dtype"], mode="r")
                  for s in ("train", "val")}
        books = [BookStats(**b) for b in meta["books"]]
        if (len(arrays["train"]), len(arrays["val"])) != (sum(b.train for b in books), sum(b.val for b in books)):
            return None  # truncated or overwritten: rebuilt below
        tok = meta["tokenizer"]
        return CorpusData(
            train=arrays["train"], val=arrays["val"],
            tokenizer=CharTokenizer(tok["vocab"], replacement=tok.get("replacement")),
            books=books,
            dropped_chars=meta["dropped_chars"],
            cache_path=str(meta_path), from_cache=from_cache,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache is rebuilt, never trusted


# ---- batches ----------------------------------------------------------------------------
def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``block_size + 1`` tokens: inputs and the next-token targets.

    Offsets come from ``generator`` alone, so saving its state makes a resumed run draw the
    very batches the uninterrupted run would have drawn.
    """
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).numpy()
    windows = torch.from_numpy(data[starts[:, None] + np.arange(block_size + 1)].astype(np.int64))
    device = torch.device(device)
    if device.type == "cuda":
        windows = windows.pin_memory().to(device, non_blocking=True)
    else:
        windows = windows.to(device)
    return windows[:, :-1], windows[:, 1:]
