"""Long texts -> passages that fit the model: whole sentences packed up to a token budget.

all-MiniLM-L6-v2 sees at most 254 word pieces of a text (256 with [CLS]/[SEP]) and silently drops
the rest, so a long document is split before it is embedded. Tokens are counted by the model's own
tokenizer, given as `tokenize(text) -> [(start, end), ...]`: the character span of each token,
special tokens excluded (a fast tokenizer's offset mapping).

Every cut falls between two tokens, so a passage never splits a character, a combining sequence or
an emoji (each lies inside one token's span). Characters the tokenizer skips (whitespace, control
characters) stay with the passage before them, except whitespace at either end of a passage.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

Spans = list[tuple[int, int]]
Tokenize = Callable[[str], Spans]

# a sentence ends after . ! ? … (and closing quotes or brackets) followed by whitespace, after
# CJK / Arabic / Devanagari full stops with or without whitespace, and at a blank line
_SENTENCE_END = re.compile(
    r"[.!?…]+[\"'”’»)\]]*\s+"
    r"|[。！？؟۔।]+[」』”’）\"']*\s*"
    r"|\n[^\S\n]*\n\s*"
)


@dataclass(frozen=True)
class Passage:
    text: str  # exactly text[start:end] of the original
    start: int  # character offsets into the original text (Python str indices)
    end: int
    tokens: int  # model tokens of `text` tokenised on its own (without special tokens)


def sentence_starts(text: str) -> list[int]:
    """Character offsets where a sentence begins (0 first), by punctuation and blank lines.

    >>> sentence_starts("One. Two!  Three\\n\\nFour")
    [0, 5, 11, 18]
    """
    starts = [0]
    for m in _SENTENCE_END.finditer(text):
        if starts[-1] < m.end() < len(text):
            starts.append(m.end())
    return starts


def split_passages(text: str, tokenize: Tokenize, max_tokens: int, overlap: int) -> list[Passage]:
    """`text` as passages of at most `max_tokens` tokens, consecutive ones sharing up to `overlap`.

    - A text with no tokens (empty, whitespace) gives no passage; one that fits gives one passage,
      the whole text, surrounding whitespace included.
    - Otherwise whole sentences are packed greedily; a sentence longer than the budget is cut
      between tokens, at a space when one lies in the second half of the window. A passage then
      runs from its first token to its last (no surrounding whitespace).
    - The next passage starts with the trailing whole sentences of the previous one that fit in
      `overlap` tokens, or else its last `overlap` tokens (moved forward to a word start).
    - Each passage is tokenised again on its own and shrunk until it fits: a cut inside a word can
      tokenise differently from the same characters in context.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"overlap must be in [0, max_tokens), got {overlap}")
    spans = [(a, b) for a, b in tokenize(text) if b > a]
    n = len(spans)
    if n == 0:
        return []
    if n <= max_tokens:
        return [Passage(text, 0, len(text), n)]

    starts = [a for a, _ in spans]
    # token index where each sentence starts; n closes the last one
    bounds = sorted({bisect_left(starts, c) for c in sentence_starts(text)} | {0, n})

    def word_start(k: int) -> bool:  # whitespace (or skipped characters) before token k
        return k == 0 or k == n or spans[k - 1][1] < spans[k][0]

    def end_from(s: int) -> int:
        """Greedy end (exclusive token index) of a passage starting at token s."""
        limit = min(s + max_tokens, n)
        i = bisect_left(bounds, limit + 1) - 1  # last sentence boundary <= limit
        if bounds[i] > s:
            return bounds[i]
        for k in range(limit, s + max(1, max_tokens // 2), -1):  # a long sentence: cut at a space
            if word_start(k):
                return k
        return limit

    def passage(s: int, e: int) -> Passage:
        a = spans[s][0] if s else len(text) - len(text.lstrip())
        b, stop = spans[e - 1][1], spans[e][0] if e < n else len(text)
        while b < stop and not text[b].isspace():
            b += 1  # skipped non-space characters stay with the token before them
        chunk = text[a:b]
        return Passage(chunk, a, b, len([1 for x, y in tokenize(chunk) if y > x]))

    out: list[Passage] = []
    s = prev_e = 0
    while True:
        e = end_from(s)
        p = passage(s, e)
        while p.tokens > max_tokens and e - s > 1:
            e = max(s + 1, e - (p.tokens - max_tokens))
            p = passage(s, e)
        if e <= prev_e and s < prev_e:
            s = prev_e  # the overlap left no room for anything new: start afresh
            continue
        out.append(p)
        if e >= n:
            return out
        prev_e, s = e, _next_start(s, e, bounds, overlap, word_start)


def _next_start(
    s: int, e: int, bounds: list[int], overlap: int, word_start: Callable[[int], bool]
) -> int:
    """Where the passage after tokens [s, e) starts: e minus about `overlap` tokens."""
    if overlap == 0:
        return e
    if bounds[bisect_left(bounds, e)] == e:  # on a sentence end: repeat whole sentences that fit
        i = bisect_left(bounds, e - overlap)
        if bounds[i] < e and bounds[i] > s:
            return bounds[i]
    k = max(e - overlap, s + 1)
    while k < e and not word_start(k):
        k += 1
    return k if k < e else max(e - overlap, s + 1)
