"""The sentence splitter: rule-based (a regex pass with an abbreviation list, in the spirit of Punkt/pysbd's rules,
~50x faster than pysbd), applied to TEXT so sentence permutation works with any tokenizer; and the script test behind
word starts in text written without spaces (Chinese, Japanese, Thai ...): :func:`spaceless_word_starts`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A line that starts a list item starts a new sentence even without a full stop before it.
_LIST_ITEM = re.compile(r"\n[ \t]*(?=(?:[-*+\u2022o]|\d{1,3}[.)]|\([0-9a-zA-Z]{1,3}\))[ \t]+\S)")
# Sentence-final punctuation, optional closing quotes/brackets, whitespace, and (captured) the next character.
_BOUNDARY = re.compile(r"([.!?\u2026]+)([\"'\u201d\u2019)\]]*)\s+(?=(\S))")
_DOTTED_INITIALS = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g, i.e, u.s, a.k.a
# Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt vs viz cf approx resp esp incl excl ca al dept univ assoc gen gov
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun inc ltd corp co bros""".split()
)
# Abbreviations that are only abbreviations before a number ("No. 5", "Fig. 3"; but "said no. Then").
_NUMBER_ABBREVIATIONS = frozenset("no nos vol vols fig figs eq eqs sec secs ch chap art ref refs p pp pt ver".split())
_OPENERS = "\"'\u201c\u2018([{"


def _ends_sentence(segment: str, match: re.Match) -> bool:
    punct, closers, nxt = match.group(1), match.group(2), match.group(3)
    if nxt.islower():
        return False  # "the tool. it ..." and "e.g. foo" are one sentence
    if punct != "." or closers:
        return True
    start = segment.rfind(" ", 0, match.start(1)) + 1
    word = segment[start : match.start(1)].lstrip(_OPENERS)
    lower = word.lower()
    if lower in _ABBREVIATIONS or _DOTTED_INITIALS.fullmatch(lower):
        return False
    if lower in _NUMBER_ABBREVIATIONS and nxt.isdigit():
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien"
    return True


def _split_spaced(segment: str) -> list[str]:
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(segment):
        if _ends_sentence(segment, match):
            end = match.end(2)
            sentences.append(segment[start:end])
            start = match.end()
    if start < len(segment):
        sentences.append(segment[start:])
    return sentences


# Sentence ends that need neither a space nor a capital after them: the ideographic and fullwidth full stops,
# exclamation and question marks of Chinese and Japanese (。｡．！？), the Devanagari danda and double danda (। ॥),
# the Arabic question mark (؟) and the Urdu full stop (۔); none of them abbreviates anything. Closing quotes and
# brackets after them belong to the sentence.
_CLOSED_END = re.compile(
    "([\u3002\uff61\uff0e\uff01\uff1f\u0964\u0965\u061f\u06d4]+)"
    "([\"'\u201d\u2019)\\]\u300d\u300f\uff09\u3011\u3015\u300b\u3009]*)\\s*"
)
_QUOTATIVE = "\u3068\u3063"  # と, っ(て): 「…。」と言った goes on after the quote


def _closed_end_ends_sentence(segment: str, match: re.Match) -> bool:
    if match.end() == len(segment):
        return False  # nothing follows
    punct, closers, nxt = match.group(1), match.group(2), segment[match.end()]
    if closers and not match.group(0)[len(punct) + len(closers) :] and nxt in _QUOTATIVE:
        return False
    before = segment[match.start() - 1] if match.start() else ""
    return not (punct == "\uff0e" and before.isdigit() and nxt.isdigit())  # a fullwidth decimal point: ３．１４


def _split_segment(segment: str) -> list[tuple[str, bool]]:
    """(sentence, True if it follows the one before without a space) per sentence of ``segment``."""
    if segment.isascii() or _CLOSED_END.search(segment) is None:  # the common case (text in a Latin script)
        return [(sentence, False) for sentence in _split_spaced(segment)]
    sentences, start, glued = [], 0, False
    for match in _CLOSED_END.finditer(segment):
        if _closed_end_ends_sentence(segment, match):
            pieces = _split_spaced(segment[start : match.end(2)])
            sentences.extend((piece, glued and k == 0) for k, piece in enumerate(pieces))
            start, glued = match.end(), match.end() == match.end(2)
    pieces = _split_spaced(segment[start:])
    sentences.extend((piece, glued and k == 0) for k, piece in enumerate(pieces))
    return sentences


# A line break between two CJK characters (ideographs, kana, CJK or fullwidth punctuation) wraps a line of text written
# without spaces: it joins the lines without adding one.
_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_WRAP = re.compile(f"(?<=[{_CJK}])[ \t\r]*\n[ \t\r]*(?=[{_CJK}])")


def split_sentences_glued(text: str) -> list[tuple[str, bool]]:
    """:func:`split_sentences` with, per sentence, whether it follows the one before without a space
    (我喜欢猫。他喜欢狗！)."""
    sentences = []
    for block in _BLANK_LINES.split(text):
        for segment in _LIST_ITEM.split(block):
            if "\n" in segment and not segment.isascii() and _SPACELESS.search(segment):
                segment = _CJK_WRAP.sub("", segment)
            segment = " ".join(segment.split())
            if segment:
                sentences.extend(_split_segment(segment))
    return sentences


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, each with its whitespace collapsed to single spaces.

    A sentence ends at ``.``/``!``/``?``/``…`` (plus closing quotes or brackets) followed by whitespace and a
    character that is not a lowercase letter, except after an abbreviation ("e.g.", "Dr.", "Fig. 3") or an
    initial ("J. Smith"). Decimals ("3.14"), versions and file names ("setup.py") never split: no space
    follows their dot. It also ends, with or without a space after, at the full stops, exclamation and question
    marks of Chinese and Japanese (``。｡．！？``; not 「…。」と, where the quote goes on, nor a fullwidth decimal
    point), at the Devanagari danda ``।``/``॥``, the Arabic ``؟`` and the Urdu ``۔``. Blank lines (paragraph
    breaks) and list items ("- item", "1. item") always start a new sentence; a line break between two CJK characters
    joins the lines without a space. Empty or whitespace-only text gives ``[]``.
    """
    return [sentence for sentence, _ in split_sentences_glued(text)]


# Letters of the scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, hiragana and katakana
# (with the halfwidth forms), CJK ideographs (extensions and compatibility forms included). Only category Lo counts:
# combining vowel and tone marks, the prolonged-sound mark and punctuation join the character before them.
_SPACELESS = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)
_OTHER_WORD = re.compile(r"[^\W\d_]+")  # a run of letters (what is left once the spaceless ones are blanked)
# Thai and Lao vowels written after their consonant (ะ า ำ, ະ າ ຳ): letters that join the character before them.
_JOINING = frozenset("\u0e30\u0e32\u0e33\u0e45\u0eb0\u0eb2\u0eb3")


@lru_cache(maxsize=65536)
def _in_script(ch: str) -> bool:
    return _SPACELESS.match(ch) is not None


@lru_cache(maxsize=65536)
def _spaceless_letter(ch: str) -> bool:
    return _in_script(ch) and unicodedata.category(ch) == "Lo"


def written_without_spaces(sentence: str) -> bool:
    """Is ``sentence`` mostly in a script without spaces between words? True when half its letters of such scripts
    (Chinese and Japanese words are about two characters long) outnumber its words in other scripts: 我用Python写代码
    is, an English sentence quoting 青空文庫 is not (the quote stays one word, like any foreign word)."""
    if sentence.isascii() or _SPACELESS.search(sentence) is None:
        return False
    spaceless = sum(map(_spaceless_letter, sentence))
    if not spaceless:
        return False
    blanked = "".join(" " if _spaceless_letter(ch) else ch for ch in sentence)
    return spaceless > 2 * len(_OTHER_WORD.findall(blanked))


def spaceless_word_starts(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Positions of the tokens that begin a word in ``text`` written without spaces (given each token's character
    ``offsets`` in ``text``): whole-word masking there means per character, as no word segmenter runs. A token begins
    a word when it is the first token of a letter of such a script (a character split into several byte-level
    tokens is one word; a token holding several characters is one word, tokens cannot be split), or of a letter or
    digit right after one (用|Python); not after a token of only whitespace (that token already begins the word).
    Combining marks, Thai/Lao vowels written after their consonant and punctuation join the character before."""
    starts, end, after_space, n = [], 0, False, len(text)
    for i, (a, b) in enumerate(offsets):
        # a < end: the token begins inside a character that the token before already began
        if a >= end and a < n and not after_space:
            ch = text[a]
            if _in_script(ch):
                if _spaceless_letter(ch) and ch not in _JOINING:
                    starts.append(i)
            elif a and ch.isalnum() and _spaceless_letter(text[a - 1]):
                starts.append(i)
        after_space, end = b > a and text[a:b].isspace(), b
    return starts
