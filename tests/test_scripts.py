"""Text in scripts without spaces between words (Chinese, Japanese, Thai) and with their own sentence marks (Hindi,
Arabic): sentence ends, word starts, the default recipe on such text, a readable noise preview; and English text
tokenized, split and marked exactly as before they were handled."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from bart_pretrain.commands import noise_preview
from bart_pretrain.data.documents import encode_document, encode_documents, to_document
from bart_pretrain.data.noise_config import load_noise
from bart_pretrain.data.sentences import split_sentences
from bart_pretrain.tokenizer import train_tokenizer
from noising import sample_rng

CHINESE = "北京是中国的首都。它有三千多年的历史！你去过北京吗？我去年夏天去过一次。"
JAPANESE = "東京は日本の首都です。「こんにちは。」と彼は言った。人口は約１４００万人です。"
HINDI = "यह एक वाक्य है। यह दूसरा वाक्य है॥ क्या आप हिंदी बोलते हैं?"
THAI = "ภาษาไทยง่ายมาก"
ARABIC = "هل تتكلم العربية؟ نعم، أتكلم قليلا."

PARAGRAPH = (
    "The café on Rue St. Denis opened in 1999. Dr. García, its owner, said: \u201cWe serve 3.5 kinds of coffee\u2014"
    "no more.\u201d Did it work? Yes! Sales grew by 12% (see Fig. 2), e.g. in Jan. and Feb. of each year\u2026 "
    "Then the U.S. branch opened at No. 5 Main St.\n\n"
    "Install it with:\n - pip install caf\u00e9-tools\n - run setup.py --help\n"
    "A na\u00efve r\u00e9sum\u00e9 of J. R. R. Tolkien's work isn't enough. \u2018Quoted,\u2019 she wrote. "
    "Visit https://example.org/a.b?c=d for details; version v2.0.1 is out."
)
ENGLISH_TRAINING = [
    PARAGRAPH,
    "Sentence permutation needs sentences. Text infilling needs words.",
    "Ünïcödé wörds — straße, naïve, façade.",
] * 20

# What main produced before scripts without spaces were handled (recorded with the tokenizer above): English and
# Latin text keeps its tokens, sentences and word starts bit for bit.
ENGLISH_TOKENIZER_SHA256 = "f8648b4966b5765b682b8b9f2baa037acf6bb8b531d597358c6f5731b1a78684"
ENGLISH_SENTENCES = [
    "The café on Rue St. Denis opened in 1999.",
    "Dr. García, its owner, said: “We serve 3.5 kinds of coffee—no more.”",
    "Did it work?",
    "Yes!",
    "Sales grew by 12% (see Fig. 2), e.g. in Jan. and Feb. of each year…",
    "Then the U.S. branch opened at No. 5 Main St.",
    "Install it with:",
    "- pip install café-tools",
    "- run setup.py --help A naïve résumé of J. R. R. Tolkien's work isn't enough.",
    "‘Quoted,’ she wrote.",
    "Visit https://example.org/a.b?c=d for details; version v2.0.1 is out.",
]
ENGLISH_IDS = [
    0,
    346,
    332,
    262,
    81,
    284,
    88,
    72,
    325,
    17,
    283,
    260,
    301,
    331,
    275,
    309,
    292,
    28,
    17,
    283,
    85,
    17,
    224,
    340,
    296,
    259,
    68,
    15,
    289,
    86,
    262,
    90,
    381,
    15,
    265,
    355,
    29,
    288,
    254,
    348,
    265,
    271,
    281,
    224,
    22,
    17,
    24,
    224,
    371,
    267,
    290,
    287,
    384,
    270,
    263,
    246,
    379,
    224,
    377,
    72,
    337,
    255,
    283,
    299,
    289,
    327,
    34,
    224,
    349,
    4,
    285,
    350,
    278,
    224,
    364,
    359,
    312,
    92,
    309,
    21,
    8,
    224,
    11,
    394,
    310,
    367,
    17,
    224,
    21,
    335,
    313,
    17,
    74,
    17,
    275,
    311,
    276,
    17,
    224,
    276,
    71,
    310,
    357,
    17,
    290,
    313,
    353,
    224,
    92,
    360,
    263,
    103,
    286,
    366,
    224,
    396,
    224,
    56,
    17,
    54,
    17,
    312,
    391,
    295,
    331,
    224,
    352,
    224,
    343,
    17,
    224,
    24,
    224,
    342,
    279,
    325,
    17,
    224,
    341,
    329,
    289,
    266,
    302,
    75,
    29,
    282,
    315,
    368,
    275,
    329,
    332,
    16,
    398,
    303,
    282,
    316,
    88,
    81,
    265,
    358,
    88,
    83,
    17,
    387,
    282,
    16,
    272,
    374,
    224,
    36,
    323,
    316,
    268,
    393,
    378,
    290,
    311,
    17,
    284,
    17,
    284,
    17,
    286,
    385,
    333,
    327,
    319,
    81,
    334,
    224,
    260,
    383,
    363,
    17,
    288,
    250,
    344,
    304,
    277,
    336,
    251,
    265,
    272,
    266,
    392,
    72,
    17,
    224,
    347,
    302,
    224,
    365,
    87,
    386,
    339,
    298,
    351,
    388,
    17,
    264,
    74,
    18,
    68,
    17,
    69,
    34,
    70,
    32,
    71,
    314,
    264,
    224,
    297,
    273,
    370,
    30,
    317,
    271,
    395,
    317,
    21,
    17,
    19,
    17,
    20,
    319,
    262,
    88,
    87,
    17,
    2,
]
ENGLISH_WORD_STARTS = (
    "0111010010100111000100100000101000100100100100010011000001000010110100100100101001001001001000110010"
    "0100110100001010100001001101001010010100110001101010001100100000100010110001101010100110010000100000"
    "010100010010000000000000000001010000100100000110000"
)
ENGLISH_SENTENCE_STARTS = [1, 19, 62, 67, 70, 112, 137, 145, 154, 194, 207]
ENGLISH_24_TOKEN_CHUNKS_SHA256 = "b8ddd944c9a916f185f8fdeead01c1367b254962a57bc1caf2d45d10771bc8e2"  # 13 chunks


@pytest.fixture(scope="module")
def english_tok():
    """Trained on English only, like the default tokenizer: every CJK, Devanagari, Thai character is 2-3 byte tokens."""
    return train_tokenizer(ENGLISH_TRAINING, 400)


@pytest.fixture(scope="module")
def cjk_tok():
    """Trained on the Chinese and Japanese texts too: tokens holding whole characters, some holding several."""
    return train_tokenizer([*ENGLISH_TRAINING, *[CHINESE, JAPANESE] * 20], 600)


def words(chunk: dict, tok) -> list[str]:
    """The chunk's words as text: the tokens from each word start to the next, their bytes decoded together (which
    fails if a word boundary cuts a character)."""
    groups: list[list[int]] = []
    for token, start in zip(chunk["input_ids"][1:-1], chunk["word_starts"][1:-1], strict=True):
        if start or not groups:
            groups.append([])
        groups[-1].append(token)
    return [b"".join(tok.token_bytes(t) for t in group).decode("utf-8") for group in groups]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CHINESE, ["北京是中国的首都。", "它有三千多年的历史！", "你去过北京吗？", "我去年夏天去过一次。"]),
        (JAPANESE, ["東京は日本の首都です。", "「こんにちは。」と彼は言った。", "人口は約１４００万人です。"]),
        ("円周率は３．１４です。次の文．最後の文", ["円周率は３．１４です。", "次の文．", "最後の文"]),
        ("他说：“好。”然后走了。", ["他说：“好。”", "然后走了。"]),
        ("北京是中国\n的首都。\n它很大。\n\n新段落。", ["北京是中国的首都。", "它很大。", "新段落。"]),
        (HINDI, ["यह एक वाक्य है।", "यह दूसरा वाक्य है॥", "क्या आप हिंदी बोलते हैं?"]),
        (ARABIC, ["هل تتكلم العربية؟", "نعم، أتكلم قليلا."]),
        ("Mixed: 你好。 Then English. 再见！", ["Mixed: 你好。", "Then English.", "再见！"]),
    ],
    ids=["chinese", "japanese", "fullwidth-full-stop", "closing-quote", "wrapped-lines", "hindi", "arabic", "mixed"],
)
def test_sentence_ends_of_chinese_japanese_hindi_and_arabic(text, expected):
    assert split_sentences(text) == expected


def test_chinese_words_are_characters_and_sentences_follow_each_other_without_spaces(english_tok):
    (chunk,) = encode_document(CHINESE, english_tok, 512)
    assert words(chunk, english_tok) == [
        *"北京是中国的首", "都。", *"它有三千多年的历", "史！", *"你去过北京", "吗？", *"我去年夏天去过一", "次。"
    ]  # fmt: skip
    assert len(chunk["sentence_starts"]) == 4
    # The sentences are glued as in the text: no space token was added between them.
    assert b"".join(english_tok.token_bytes(t) for t in chunk["input_ids"][1:-1]).decode() == CHINESE


def test_japanese_words_are_characters_with_digits_and_punctuation_joined(english_tok):
    (chunk,) = encode_document(JAPANESE, english_tok, 512)
    assert words(chunk, english_tok) == [
        *"東京は日本の首都で", "す。", "「", *"こんにち", "は。」", *"と彼は言っ", "た。", *"人口は約", "１４００",
        *"万人で", "す。",
    ]  # fmt: skip
    assert len(chunk["sentence_starts"]) == 3


def test_hindi_and_arabic_words_stay_space_delimited(english_tok):
    (hindi,) = encode_document(HINDI, english_tok, 512)
    assert words(hindi, english_tok) == ["यह", " एक", " वाक्य", " है।", " यह", " दूसरा", " वाक्य", " है॥", " क्या", " आप",
                                         " हिंदी", " बोलते", " हैं?"]  # fmt: skip
    assert len(hindi["sentence_starts"]) == 3
    (arabic,) = encode_document(ARABIC, english_tok, 512)
    assert words(arabic, english_tok) == ["هل", " تتكلم", " العربية؟", " نعم،", " أتكلم", " قليلا."]
    assert len(arabic["sentence_starts"]) == 2


def test_thai_words_are_characters_with_following_vowels_and_marks_joined(english_tok):
    (chunk,) = encode_document(THAI, english_tok, 512)
    assert words(chunk, english_tok) == ["ภา", "ษา", "ไ", "ท", "ย", "ง่า", "ย", "มา", "ก"]


def test_a_token_holding_several_characters_is_one_word_and_a_latin_word_after_cjk_starts_one(cjk_tok):
    (chunk,) = encode_document(CHINESE, cjk_tok, 512)
    tokens = [cjk_tok.token_bytes(t) for t in chunk["input_ids"][1:-1]]
    assert tokens[0] == "北京".encode() + "是".encode()[:2]  # a merge across a character boundary
    # A word begins at a token that begins a character: 是 began in the token of 北京, so 北京是... is one word.
    assert words(chunk, cjk_tok) == [
        "北京是中国的", "首都。", "它", "有三千多年", "的历史！", "你", "去过北京", "吗？", "我去", "年夏天去过",
        "一次。",
    ]  # fmt: skip
    (mixed,) = encode_document("我用Python写代码。", cjk_tok, 64)
    assert words(mixed, cjk_tok) == ["我", "用", "Python", "写", "代", "码。"]


def test_an_english_sentence_quoting_a_few_cjk_characters_keeps_them_one_word(english_tok):
    text = 'Aozora Bunko (青空文庫, literally the "Blue Sky Library") is a digital library.'
    (chunk,) = encode_document(text, english_tok, 128)
    assert " (青空文庫," in words(chunk, english_tok)
    assert sum(chunk["word_starts"]) == len(text.split())


def test_the_default_recipe_no_longer_masks_a_whole_chinese_chunk(english_tok):
    pipe = load_noise("configs/noise/bart_large.yaml")
    ctx = english_tok.noise_context(512)
    (chunk,) = encode_document(CHINESE, english_tok, 512)
    doc = to_document(chunk)
    whole = [english_tok.bos_id, english_tok.mask_id, english_tok.eos_id]
    kept = []
    for seed in range(50):
        out = pipe(doc, sample_rng(seed, 0, 0), ctx).tokens.tolist()
        assert out != whole and len(out) > 3
        kept.append(sum(t in set(doc.tokens.tolist()) for t in out[1:-1]) / (len(doc) - 2))
    # 30% of the characters are masked, spans of Poisson(3.5) characters each replaced by one <mask>.
    assert 0.55 < min(kept) and max(kept) < 0.85


def test_the_preview_prints_chinese_and_hindi_readably(english_tok, tmp_path, capsys):
    english_tok.save(tmp_path / "tok.json")
    argv = ["--noise", "configs/noise/bart_large.yaml", "--tokenizer_path", str(tmp_path / "tok.json")]
    assert noise_preview.main([*argv, "--color", "never", "--text", CHINESE, "--text+", HINDI]) == 0
    out = capsys.readouterr().out
    # Every character whole; only a random token replacing a span ([?...?]) may be a lone byte.
    assert "\ufffd" not in re.sub(r"\[\?.*?\?\]", "", out)
    befores = [line.removeprefix("  before: ") for line in out.splitlines() if line.startswith("  before: ")]
    for marker in ("[[", "]]", "[~", "~]"):
        befores = [b.replace(marker, "") for b in befores]
    assert befores == [f"<s>{CHINESE}</s>", f"<s>{HINDI}</s>"]


def test_a_byte_order_mark_opening_a_document_is_not_text(english_tok):
    assert encode_document("\ufeffHello world. Bye.", english_tok, 64) == encode_document(
        "Hello world. Bye.", english_tok, 64
    )


def test_english_text_is_tokenized_split_and_marked_as_before(english_tok):
    assert hashlib.sha256(english_tok.to_str().encode()).hexdigest() == ENGLISH_TOKENIZER_SHA256
    assert split_sentences(PARAGRAPH) == ENGLISH_SENTENCES
    (chunk,) = encode_document(PARAGRAPH, english_tok, 512)
    assert chunk["input_ids"] == ENGLISH_IDS
    assert "".join(map(str, chunk["word_starts"])) == ENGLISH_WORD_STARTS
    assert chunk["sentence_starts"] == ENGLISH_SENTENCE_STARTS
    chunks = encode_documents([PARAGRAPH], english_tok, 24)[0]
    digest = json.dumps([[c["input_ids"], c["word_starts"], c["sentence_starts"]] for c in chunks]).encode()
    assert len(chunks) == 13 and hashlib.sha256(digest).hexdigest() == ENGLISH_24_TOKEN_CHUNKS_SHA256
