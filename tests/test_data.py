import numpy as np
import pytest
import torch

from gpt40k.training.data import CorpusError, find_text_files, get_batch, prepare_corpus, read_books
from gpt40k.model.tokenizer import CharTokenizer


def test_finds_files_folders_recursively_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep").mkdir()
    for name in ("a/2.txt", "a/1.txt", "a/deep/3.txt", "a/notes.md", "x.txt"):
        (tmp_path / name).write_text("text")
    found = find_text_files([str(tmp_path / "a")])
    assert [p.name for p in found] == ["1.txt", "2.txt", "3.txt"]  # sorted, recursive, *.txt only
    assert [p.name for p in find_text_files(str(tmp_path / "a" / "*.md"))] == ["notes.md"]
    both = find_text_files([str(tmp_path / "x.txt"), str(tmp_path / "a"), str(tmp_path / "a/1.txt")])
    assert [p.name for p in both] == ["x.txt", "1.txt", "2.txt", "3.txt"]  # no file twice


@pytest.mark.parametrize("spec, message", [
    ("missing.txt", "does not exist"),
    ("empty_dir", "holds no .txt file"),
    ("*.nothing", "matches no file"),
])
def test_clear_errors_for_bad_paths(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CorpusError, match=message):
        find_text_files([spec])
    with pytest.raises(CorpusError, match="no training data"):
        find_text_files([])


def test_bom_and_line_endings_are_normalised(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    books, _ = read_books(str(tmp_path / "a.txt"))
    assert books[0].text == "one\ntwo\nthree\n"


def test_bad_utf8_names_file_and_byte_offset(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Ave Cæsar".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.txt is not UTF-8 text: byte 0xe6 at byte offset 5"):
        read_books(str(tmp_path / "latin1.txt"))
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfab\xff")
    with pytest.raises(CorpusError, match="byte 0xff at byte offset 5"):
        read_books(str(tmp_path / "bom.txt"))
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    with pytest.raises(CorpusError, match="binary"):
        read_books(str(tmp_path / "bin.txt"))


def test_empty_and_too_short_corpus(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="corpus is empty"):
        prepare_corpus(str(tmp_path / "empty.txt"))
    (tmp_path / "short.txt").write_text("x" * 100)
    data = prepare_corpus(str(tmp_path / "short.txt"))
    with pytest.raises(CorpusError, match=r"validation split has 10 characters .* block_size \+ 1 = 33"):
        data.check_fits(32)
    data.check_fits(8)


def test_validation_takes_the_end_of_each_book(tmp_path):
    (tmp_path / "1.txt").write_text("a" * 90 + "b" * 10)
    (tmp_path / "2.txt").write_text("c" * 180 + "d" * 20)
    data = prepare_corpus(str(tmp_path), val_fraction=0.1)
    tok = data.tokenizer
    assert tok.decode(data.val) == "b" * 10 + "d" * 20
    assert tok.decode(data.train) == "a" * 90 + "c" * 180
    assert [(b.name, b.train, b.val) for b in data.books] == [("1.txt", 90, 10), ("2.txt", 180, 20)]
    assert "total" in data.summary_table()
    other = prepare_corpus(str(tmp_path), val_fraction=0.2)
    assert len(other.val) == 60
    with pytest.raises(CorpusError, match="val-fraction"):
        prepare_corpus(str(tmp_path), val_fraction=1.5)


def test_min_char_count_drops_rare_chars_from_text_and_reports_them(tmp_path):
    (tmp_path / "a.txt").write_text("abababab" * 10 + "αβ")
    data = prepare_corpus(str(tmp_path), min_char_count=2)
    assert data.tokenizer.chars == ["a", "b"]
    assert data.dropped_chars == {"α": 1, "β": 1}
    assert len(data.train) + len(data.val) == 80
    assert "dropped 2 rare character(s)" in data.summary_table()


def test_cache_is_reused_and_keyed_by_text_and_settings(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n" * 50)
    cache = tmp_path / "cache"
    first = prepare_corpus(str(tmp_path / "a.txt"), cache_dir=cache)
    second = prepare_corpus(str(tmp_path / "a.txt"), cache_dir=cache)
    assert not first.from_cache and second.from_cache
    assert isinstance(second.train, np.memmap)
    assert np.array_equal(first.train, second.train) and second.tokenizer.chars == first.tokenizer.chars
    assert not prepare_corpus(str(tmp_path / "a.txt"), cache_dir=cache, val_fraction=0.2).from_cache
    (tmp_path / "a.txt").write_text("hello there\n" * 50)
    changed = prepare_corpus(str(tmp_path / "a.txt"), cache_dir=cache)
    assert not changed.from_cache and "t" in changed.tokenizer.stoi


def test_a_given_tokenizer_is_used_and_unknown_chars_dropped(tmp_path):
    (tmp_path / "a.txt").write_text("abcz" * 30)
    tok = CharTokenizer("abc")
    data = prepare_corpus(str(tmp_path), tokenizer=tok)
    assert data.tokenizer is tok and data.dropped_chars == {"z": 30}


def test_get_batch_targets_are_inputs_shifted_and_reproducible():
    data = np.arange(100, dtype=np.uint8)
    x, y = get_batch(data, 4, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))
    x2, _ = get_batch(data, 4, 8, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    assert int(x.max()) < 99


def test_counting_and_encoding_in_chunks_equal_the_whole(monkeypatch):
    import numpy as np

    from gpt40k.model import tokenizer as tk
    from gpt40k.training.data import count_chars

    text = "the émperor protects 🙂\n" * 500
    chars, counts = count_chars([text], chunk=37)
    whole_chars, whole_counts = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), return_counts=True)
    assert chars.tolist() == whole_chars.tolist() and counts.tolist() == whole_counts.tolist()
    tok = tk.CharTokenizer(set(text) - {"🙂"})
    whole = tok.encode_array(text, unknown="drop")
    monkeypatch.setattr(tk, "ENCODE_CHUNK", 41)
    chunked = tok.encode_array(text, unknown="drop")
    assert chunked.ids.tolist() == whole.ids.tolist() and chunked.unknown == whole.unknown == ["🙂"]
