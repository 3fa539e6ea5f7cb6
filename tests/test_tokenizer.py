import json

import numpy as np
import pytest

from gpt40k.errors import TokenizerError
from gpt40k.model.tokenizer import CharTokenizer, UnknownCharactersError


def test_vocab_is_sorted_distinct_chars_and_round_trips():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert len(tok) == tok.vocab_size == 8
    ids = tok.encode("hold")
    assert ids == [tok.stoi[c] for c in "hold"]
    assert tok.decode(ids) == "hold"


def test_unknown_characters_policy():
    tok = CharTokenizer.from_text("abc ")
    with pytest.raises(UnknownCharactersError) as err:
        tok.encode("abxcyx")
    assert err.value.chars == ["x", "y"]
    assert "'x'" in str(err.value) and "unknown='drop'" in str(err.value)
    assert tok.decode(tok.encode("abxc", unknown="drop")) == "abc"
    assert tok.decode(tok.encode("abxc", unknown="replace")) == "ab c"  # replaced by a space
    result = tok.encode_array("a€b", unknown="drop")
    assert result.unknown == ["€"]
    with pytest.raises(ValueError, match="unknown must be"):
        tok.encode("a", unknown="ignore")


def test_min_char_count_drops_rare_characters():
    tok = CharTokenizer.from_text("aaabbc", min_char_count=2)
    assert tok.chars == ["a", "b"]
    with pytest.raises(ValueError, match="at least 5 times"):
        CharTokenizer.from_text("ab", min_char_count=5)


def test_emoji_astral_and_surrogates_are_handled():
    tok = CharTokenizer.from_text("ab🙂")
    assert tok.decode(tok.encode("b🙂a")) == "b🙂a"
    assert tok.encode("a\ud800b", unknown="drop") == tok.encode("ab")  # a lone surrogate is just unknown


def test_save_load_is_readable_json(tmp_path):
    tok = CharTokenizer.from_text("Ave Imperator\n")
    tok.save(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["vocab"] == tok.chars and data["type"] == "char"
    again = CharTokenizer.load(tmp_path)
    assert again.chars == tok.chars and again.replacement == tok.replacement


def test_load_rejects_bad_files(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"type": "bpe", "vocab": ["a"]}')
    with pytest.raises(ValueError, match="not a valid GPT-40k tokenizer"):
        CharTokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid"):
        CharTokenizer.load(tmp_path)
    with pytest.raises(TokenizerError, match="no tokenizer.json"):  # a GPT40kError, like every error here
        CharTokenizer.load(tmp_path / "missing")


def test_encoding_a_large_text_is_exact():
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz ,.\nÆΩé"))
    text = "".join(rng.choice(alphabet, 4_400_000))
    tok = CharTokenizer.from_text(text)
    ids = tok.encode_array(text).ids  # its speed is measured by bench/speed.py, not here
    assert ids.dtype == np.uint8 and len(ids) == len(text)
    assert tok.decode(ids[-1000:]) == text[-1000:]
    assert np.array_equal(ids[:5000], [tok.stoi[c] for c in text[:5000]])


PROMPT_TOK = CharTokenizer("\n !\"',-.?ETabcdehilmnoprstuvw")


def test_encode_prompt_maps_typography_and_removes_unknown_characters():
    p = PROMPT_TOK.encode_prompt("“The Emperor” — protects…", max_chars=100)
    assert p.text.startswith('"The E') and p.text.endswith("protects...") and " - " in p.text
    assert any(n.startswith("Replaced") and "'—' with '-'" in n for n in p.notes)
    p = PROMPT_TOK.encode_prompt("abc🙂\x00\u202eשלום", max_chars=100)
    assert p.text == "abc" and p.notes[0].startswith("Removed") and "U+0000" in p.notes[0]
    assert p.ids == PROMPT_TOK.encode("abc")


def test_encode_prompt_empty_and_too_long():
    p = PROMPT_TOK.encode_prompt("", max_chars=16)
    assert p.text == "\n" and "empty" in p.notes[0]
    assert PROMPT_TOK.encode_prompt(None).text == "\n"
    long = "the sea " * 12_500  # 100,000 characters
    p = PROMPT_TOK.encode_prompt(long, max_chars=16)
    assert len(p.ids) == 16 and p.text == long[-16:] and "last 16 characters" in p.notes[0]
    assert PROMPT_TOK.encode_prompt("the sea").notes == []  # nothing changed, nothing said
