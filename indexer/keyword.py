"""A BM25 keyword index over the texts of a collection's live documents, kept beside the vectors.

Scoring is bm25s's Lucene variant (k1=1.5, b=0.75): a document's score for a query is
sum over query tokens t of idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl)), with
idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)). N, df and avgdl count live documents only, so
writes make the whole matrix stale; it is rebuilt lazily on the next search, from token ids kept
per label, which makes a batch of writes cost only its tokenisation.
"""

import io
import itertools
import logging
import threading
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import Stemmer
from numpy.typing import NDArray

_FORMAT = 1
_KEYS = ("format", "labels", "lengths", "token_ids", "vocab_utf8", "vocab_offsets")
_local = threading.local()  # a PyStemmer stemmer has internal state: one per thread


def _bm25s() -> Any:
    """bm25s, imported at its first use: it brings scipy, 0.1 s of every start otherwise (a
    collection opens from its keyword snapshot without it). It sets its logger to DEBUG on
    import and logs every index build: ours decide what is shown."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _stemmer() -> Any:
    if not hasattr(_local, "stemmer"):
        _local.stemmer = Stemmer.Stemmer("english")
    return _local.stemmer


def tokenize(texts: list[str]) -> tuple[list[list[int]], dict[str, int]]:
    """Lowercase words of 2+ unicode word characters, English stopwords out, Snowball-stemmed.

    Returns token ids per text and the vocabulary (stem -> id) of this batch.
    """
    ids, vocab = _bm25s().tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False)
    return ids, vocab


class KeywordIndex:
    """BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) over the texts of live documents, by label."""

    def __init__(self) -> None:
        self._docs: dict[int, NDArray[np.int32]] = {}  # label -> token ids into self._vocab
        self._vocab: dict[str, int] = {}  # grows with writes; compacted to live tokens at rebuild
        self._lock = threading.Lock()
        self._stale = True
        self._bm25: Any = None  # bm25s.BM25 over live docs in label order, None if no token
        self._labels: NDArray[np.int64] = np.empty(0, np.int64)  # row of the bm25s matrix -> label

    def __len__(self) -> int:
        return len(self._docs)

    def labels(self) -> NDArray[np.int64]:
        """The labels of the indexed docs (those with a text), ascending."""
        with self._lock:
            return np.array(sorted(self._docs), np.int64)

    def apply(
        self, removed: Iterable[int], added_labels: Sequence[int], added_texts: Sequence[str | None]
    ) -> None:
        """Removed labels disappear, added (label, text) appear; a None text is not indexed."""
        if len(added_labels) != len(added_texts):
            raise ValueError(f"{len(added_labels)} labels but {len(added_texts)} texts")
        pairs = [
            (int(lab), t) for lab, t in zip(added_labels, added_texts, strict=True) if t is not None
        ]
        ids, batch_vocab = tokenize([t for _, t in pairs]) if pairs else ([], {})
        with self._lock:
            for label in removed:
                self._docs.pop(int(label), None)
            for label in added_labels:  # an upsert replaces the old text; None leaves no text
                self._docs.pop(int(label), None)
            to_global = np.empty(len(batch_vocab), np.int32)
            for token, i in batch_vocab.items():
                to_global[i] = self._vocab.setdefault(token, len(self._vocab))
            for (label, _), doc in zip(pairs, ids, strict=True):
                self._docs[label] = to_global[np.asarray(doc, np.int64)]
            self._stale = True

    def _rebuild(self) -> None:
        """Index the live docs with bm25s over a vocabulary of only the tokens they use."""
        labels = np.array(sorted(self._docs), np.int64)
        docs = [self._docs[int(label)] for label in labels]
        flat = np.concatenate(docs) if docs else np.empty(0, np.int32)
        used, compact = np.unique(flat, return_inverse=True)
        words = np.empty(len(self._vocab), object)
        words[list(self._vocab.values())] = list(self._vocab)
        self._vocab = {str(w): i for i, w in enumerate(words[used])}
        bounds = np.cumsum([len(d) for d in docs])[:-1]
        parts = np.split(compact.astype(np.int32), bounds) if docs else []
        self._docs = dict(zip(labels.tolist(), parts, strict=True))
        self._bm25 = None
        if len(used):
            bm25 = _bm25s().BM25(k1=1.5, b=0.75, method="lucene")
            bm25.index(([p.tolist() for p in parts], dict(self._vocab)), show_progress=False)
            self._bm25 = bm25
        self._labels = labels
        self._stale = False

    def refresh(self) -> None:
        """Rebuild now if writes made the index stale, so that the next search need not."""
        with self._lock:
            if self._stale:
                self._rebuild()

    def search(
        self, query: str, k: int, allowed: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Labels and BM25 scores (higher is better) of the top k docs with a score > 0.

        `allowed` restricts the ranking to those labels before the top k is taken. Ties go to the
        lower label, so results are deterministic.
        """
        with self._lock:  # concurrent searches wait for one rebuild instead of each doing it
            if self._stale:
                self._rebuild()
            bm25, labels = self._bm25, self._labels
        empty = np.empty(0, np.int64), np.empty(0, np.float32)
        if bm25 is None or k <= 0:
            return empty
        ids, vocab = tokenize([query])
        words = {i: w for w, i in vocab.items()}
        tokens = [words[i] for i in ids[0] if words[i] in bm25.vocab_dict]  # query order kept
        if not tokens:
            return empty
        mask = None if allowed is None else np.isin(labels, allowed).astype(np.float32)
        scores = np.asarray(bm25.get_scores(tokens, weight_mask=mask), np.float32)  # (n_docs,)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:  # keep every doc tied with the k-th score, then break ties by label
            kth = np.partition(scores[hits], len(hits) - k)[len(hits) - k]
            hits = hits[scores[hits] >= kth]
        order = np.lexsort((labels[hits], -scores[hits]))[:k]
        return labels[hits[order]], scores[hits[order]]

    def to_bytes(self) -> bytes:
        """The tokenised corpus: labels, token ids per doc and the vocabulary, as a numpy .npz."""
        return self.snapshot()[1]

    def snapshot(self) -> tuple[NDArray[np.int64], bytes]:
        """(labels, to_bytes()) of one and the same state, whatever writes come meanwhile.
        No BM25 rebuild: the vocabulary is saved as it is, tokens of removed texts included
        (the next rebuild compacts it), so writers wait only for the copy, not for bm25s
        (about 1 s at 57k texts, three times in a 57k-document load)."""
        with self._lock:
            labels = np.array(sorted(self._docs), np.int64)
            docs = [self._docs[int(label)] for label in labels]
            # in id order: ids are handed out in insertion order, and a rebuild renumbers the
            # vocabulary in the order it rebuilds the dict
            words = [w.encode() for w in self._vocab]
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            format=np.array([_FORMAT], np.int64),
            labels=labels,
            lengths=np.array([len(d) for d in docs], np.int64),
            token_ids=np.concatenate(docs) if docs else np.empty(0, np.int32),
            vocab_utf8=np.frombuffer(b"".join(words), np.uint8),
            vocab_offsets=np.cumsum([0] + [len(w) for w in words], dtype=np.int64),
        )
        return labels, buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeywordIndex":
        """Read what to_bytes wrote; ValueError on anything malformed (nothing is unpickled)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in _KEYS}
            utf8 = arrays["vocab_utf8"].astype(np.uint8).tobytes()
            offsets = arrays["vocab_offsets"]
            words = [utf8[a:b].decode() for a, b in itertools.pairwise(offsets.tolist())]
        except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
            raise ValueError(f"not a keyword index: {e}") from e
        labels, lengths, ids = arrays["labels"], arrays["lengths"], arrays["token_ids"]
        ok = (
            arrays["format"].tolist() == [_FORMAT]
            and all(a.ndim == 1 for a in arrays.values())
            and labels.dtype == np.int64
            and bool(np.all(np.diff(labels) > 0))
            and lengths.dtype == np.int64
            and ids.dtype == np.int32
            and offsets.dtype == np.int64
            and len(lengths) == len(labels)
            and bool(np.all(lengths >= 0))
            and int(lengths.sum()) == len(ids)
            and len(offsets) >= 1
            and offsets[0] == 0
            and offsets[-1] == len(utf8)
            and bool(np.all(np.diff(offsets) > 0))
            and len(set(words)) == len(words)
            and bool(np.all((ids >= 0) & (ids < len(words))))
        )
        if not ok:
            raise ValueError("not a keyword index: inconsistent arrays")
        index = cls()
        index._vocab = {w: i for i, w in enumerate(words)}
        parts = np.split(ids, np.cumsum(lengths)[:-1]) if len(labels) else []
        index._docs = dict(zip(labels.tolist(), parts, strict=True))
        return index
