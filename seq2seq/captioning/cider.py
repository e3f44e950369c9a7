"""CIDEr-D of many captions against a fixed corpus of references: the self-critical reward.

CIDEr-D (Vedantam et al., 2015, as the COCO caption evaluation's ``pycocoevalcap.cider``
computes it) compares the tf-idf vectors of a caption's 1..4-grams with those of each
reference of its image: per n-gram order, the dot product of the two vectors with the
caption's weights clipped at the reference's, divided by both norms, times a Gaussian
penalty on the length difference (``sigma = 6``); the orders are averaged, the references
averaged, and the result multiplied by 10. An n-gram's weight is its count times
``log(N) - log(max(1, df))``, over the ``N`` images of the corpus, ``df`` counting the images
whose references contain it.

pycocoevalcap recounts every reference at every call and takes its document frequencies from
the evaluated set. A reward is needed for hundreds of sampled captions per training step
against the training set, so :class:`CiderD` counts the training references once, at
construction, into flat arrays; a batch of captions is then scored with a fixed number of
numpy operations: their n-grams are looked up in sorted tables and matched against the
reference n-grams of their images with one ``searchsorted``, and no Python loop runs over
n-grams or references.

Two details of pycocoevalcap are kept so that the scores equal its own: the length in the
penalty is a sentence's number of *bigrams* (``max(len - 1, 0)``), and an order where either
vector is all zeros is left unnormalised (its dot product is then 0 anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

#: An unknown word or n-gram, or no n-gram starting at a position.
MISSING = -1


def _lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each of ``keys`` in the sorted ``table``, :data:`MISSING` where absent."""
    if table.size == 0:
        return np.full(keys.shape, MISSING, dtype=np.int64)
    at = np.minimum(np.searchsorted(table, keys), table.size - 1)
    return np.where(table[at] == keys, at, MISSING)


def _unique(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``keys``: by sorting, which for millions of int64 keys
    is many times faster than the hash table ``np.unique`` uses without other outputs."""
    ordered = np.sort(keys)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if keys.size else ordered


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, s + c)`` over pairs ``(s, c)``, without a loop."""
    firsts = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return firsts + np.arange(int(counts.sum()), dtype=np.int64)


def _ngram_ids(
    ids: np.ndarray,
    lengths: np.ndarray,
    n: int,
    base: int,
    tables: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The id of the k-gram (``k = 1..n``) that starts at each position of many sentences.

    A k-gram's key is the id of its first ``k - 1`` words times ``base`` plus its last word
    id, so every order's keys come from the order below (no tuples are built), and a k-gram
    whose prefix or last word is unknown is unknown too. Ids are indices into each order's
    sorted table of keys.

    Args:
        ids: ``(P,)`` int64 word ids of all sentences, one after another (:data:`MISSING` for
            a word outside the vocabulary); every id below ``base``.
        lengths: ``(S,)`` words of each sentence.
        n: highest order.
        base: the vocabulary size.
        tables: each order's sorted keys to look ids up in; None builds them from ``ids``.

    Returns:
        The tables, and per order ``(P,)`` int64 ids (:data:`MISSING` where no k-gram
        starts, or where it is not in the table).
    """
    sentence = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    offset = np.arange(ids.size, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    room = lengths[sentence] - offset  # words from each position to its sentence's end
    built: list[np.ndarray] = []
    per_order: list[np.ndarray] = []
    prev = ids
    for k in range(1, n + 1):
        where = (room >= k).nonzero()[0]
        if k == 1:
            keys = ids[where]
            known = keys != MISSING
        else:
            prefix, last = prev[where], ids[where + k - 1]
            known = (prefix != MISSING) & (last != MISSING)
            keys = prefix * base + last
        table = _unique(keys[known]) if tables is None else tables[k - 1]
        current = np.full(ids.shape, MISSING, dtype=np.int64)
        current[where[known]] = _lookup(table, keys[known])
        built.append(table)
        per_order.append(current)
        prev = current
    return built, per_order


class _Grams(NamedTuple):
    """The distinct n-grams of ``H`` captions, ``G'`` in all.

    Attributes:
        hyp: ``(G',)`` the caption of each.
        order: ``(G',)`` its order minus one (0 for unigrams).
        gram: ``(G',)`` its global corpus id, :data:`MISSING` when no reference has it.
        weight: ``(G',)`` its tf-idf weight in its caption.
        norms: ``(H, n)`` each caption's vector norm per order.
        bigrams: ``(H,)`` each caption's length as pycocoevalcap counts it.
    """

    hyp: np.ndarray
    order: np.ndarray
    gram: np.ndarray
    weight: np.ndarray
    norms: np.ndarray
    bigrams: np.ndarray


def _compact(values: np.ndarray) -> np.ndarray:
    """``values`` (non-negative) as int32 when they fit, else as they are."""
    return values.astype(np.int32) if values.size and values.max() < 2**31 else values


def _bigrams(lengths: np.ndarray, n: int) -> np.ndarray:
    """pycocoevalcap's sentence length: its number of bigrams (0 when ``n`` < 2)."""
    return np.maximum(lengths - 1, 0) if n >= 2 else np.zeros_like(lengths)


class CiderD:
    """CIDEr-D against a fixed corpus: document frequencies and reference vectors computed
    once from ``references``, then :meth:`scores` for any number of captions.

    Sentences are split on whitespace, as pycocoevalcap does: pass them tokenised and
    lowercased as the evaluation sees them. Memory is about 12 bytes per distinct n-gram of
    every reference (some 250 MB for COCO's training set).

    Args:
        references: the reference captions of each image of the corpus (an image may have
            none: its captions then score 0).
        n: highest n-gram order (4 for CIDEr-D).
        sigma: standard deviation of the length penalty.
    """

    def __init__(self, references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0) -> None:
        if not references:
            raise ValueError("CIDEr-D needs a corpus of at least one image")
        self.n, self.sigma = n, sigma
        self.words: dict[str, int] = {}
        tokens = [[ref.split() for ref in refs] for refs in references]
        flat = [
            self.words.setdefault(w, len(self.words)) for refs in tokens for r in refs for w in r
        ]
        ids = np.array(flat, dtype=np.int64)
        ref_lengths = np.array([len(r) for refs in tokens for r in refs], dtype=np.int64)
        counts = np.array([len(refs) for refs in tokens], dtype=np.int64)
        #: ``(I + 1,)`` the first reference of each image (references stored image by image).
        self.image_refs = np.concatenate([[0], np.cumsum(counts)])
        ref_image = np.repeat(np.arange(len(tokens), dtype=np.int64), counts)
        ref_of = np.repeat(np.arange(ref_lengths.size, dtype=np.int64), ref_lengths)

        self.tables, per_order = _ngram_ids(ids, ref_lengths, n, len(self.words))
        sizes = np.array([t.size for t in self.tables], dtype=np.int64)
        #: First global id of each order's n-grams; ``G`` global ids in all.
        self.order_start = np.concatenate([[0], np.cumsum(sizes)])
        grams = int(self.order_start[-1])
        self.gram_order = np.repeat(np.arange(n, dtype=np.int64), sizes)  # (G,)
        refs = np.concatenate([ref_of[o != MISSING] for o in per_order])
        gids = np.concatenate(
            [o[o != MISSING] + self.order_start[k] for k, o in enumerate(per_order)]
        )

        # Each (reference, n-gram) once, with its count: sorted by reference, then n-gram.
        pairs, tf = np.unique(refs * grams + gids, return_counts=True)
        entry_ref, entry_gram = pairs // max(grams, 1), pairs % max(grams, 1)
        in_images = _unique(ref_image[entry_ref] * grams + entry_gram) % max(grams, 1)
        df = np.bincount(in_images, minlength=grams)
        self.log_n = float(np.log(float(len(tokens))))
        self.idf = self.log_n - np.log(np.maximum(1.0, df))  # (G,)
        weights = tf * self.idf[entry_gram]
        squares = np.bincount(
            entry_ref * n + self.gram_order[entry_gram],
            weights=weights**2,
            minlength=ref_lengths.size * n,
        )
        self.ref_norms = np.sqrt(squares).reshape(-1, n)  # (R, n)
        self.ref_bigrams = _bigrams(ref_lengths, n)  # (R,)
        #: ``(R + 1,)`` the first entry of each reference.
        self.ref_entries = np.searchsorted(entry_ref, np.arange(ref_lengths.size + 1))
        # The largest arrays, one value per (reference, distinct n-gram): 32-bit where it fits.
        self.entry_ref, self.entry_gram, self.entry_tf = map(_compact, (entry_ref, entry_gram, tf))

    @property
    def num_images(self) -> int:
        return self.image_refs.size - 1

    def scores(self, hypotheses: Sequence[str], images: Sequence[int] | np.ndarray) -> np.ndarray:
        """CIDEr-D (not ×100) of each hypothesis against the references of its image.

        Args:
            hypotheses: ``H`` captions; an image may appear any number of times.
            images: ``(H,)`` the corpus image of each hypothesis.

        Returns:
            ``(H,)`` float64 scores, equal to pycocoevalcap's for the same document
            frequencies.
        """
        images = np.asarray(images, dtype=np.int64).reshape(-1)
        if images.size != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {images.size} images")
        if images.size and not (images.min() >= 0 and images.max() < self.num_images):
            raise ValueError(f"image indices must be in 0..{self.num_images - 1}")
        grams = self._caption_grams(hypotheses)
        first = self.image_refs[images]  # (H,) each caption's first reference
        counts = self.image_refs[images + 1] - first  # (H,) and how many it has
        most = int(counts.max()) if images.size else 0
        dot = self._clipped_dots(grams, images, first, most)  # (H, M, n)

        slots = np.arange(most)
        present = slots[None, :] < counts[:, None]  # (H, M)
        ref = np.where(present, first[:, None] + slots[None, :], 0)
        norms = grams.norms[:, None, :] * self.ref_norms[ref]  # (H, M, n)
        cosine = np.where(norms != 0, dot / np.where(norms != 0, norms, 1.0), dot)
        delta = (grams.bigrams[:, None] - self.ref_bigrams[ref]).astype(np.float64)
        penalty = np.exp(-(delta**2) / (2 * self.sigma**2))  # (H, M)
        per_ref = cosine.mean(axis=2) * penalty * present
        return 10.0 * per_ref.sum(axis=1) / np.maximum(counts, 1)

    def _caption_grams(self, hypotheses: Sequence[str]) -> _Grams:
        """Each caption's distinct n-grams with their weights, and its norms and length."""
        tokens = [h.split() for h in hypotheses]
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        words, base = self.words, len(self.words)
        # Words the corpus lacks still count towards a caption's own norm: each distinct one
        # gets an id of its own after the corpus's, to group equal n-grams.
        extra: dict[str, int] = {}
        flat = [w for t in tokens for w in t]
        own = [words.get(w, MISSING) for w in flat]
        corpus_ids = np.array(own, dtype=np.int64)
        for i, word_id in enumerate(own):
            if word_id == MISSING:
                own[i] = base + extra.setdefault(flat[i], len(extra))
        _, in_corpus = _ngram_ids(corpus_ids, lengths, self.n, base, self.tables)
        tables, in_batch = _ngram_ids(
            np.array(own, dtype=np.int64), lengths, self.n, base + len(extra)
        )
        batch_start = np.cumsum([0] + [t.size for t in tables])
        sentence = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)

        hyp, gram, order, corpus = [], [], [], []
        for k, (mine, theirs) in enumerate(zip(in_batch, in_corpus, strict=True)):
            at = mine != MISSING  # a k-gram starts here
            hyp.append(sentence[at])
            gram.append(mine[at] + batch_start[k])
            order.append(np.full(int(at.sum()), k, dtype=np.int64))
            corpus.append(
                np.where(theirs[at] != MISSING, theirs[at] + self.order_start[k], MISSING)
            )
        hyp_of, gram_of = np.concatenate(hyp), np.concatenate(gram)
        span = max(int(batch_start[-1]), 1)
        _, first, tf = np.unique(hyp_of * span + gram_of, return_index=True, return_counts=True)
        g_hyp, g_order, g_gram = (
            hyp_of[first],
            np.concatenate(order)[first],
            np.concatenate(corpus)[first],
        )
        known = g_gram != MISSING
        # An n-gram no reference has: df 0, taken as 1, so its idf is log(N).
        weight = tf * np.where(known, self.idf[np.where(known, g_gram, 0)], self.log_n)
        squares = np.bincount(
            g_hyp * self.n + g_order, weights=weight**2, minlength=lengths.size * self.n
        )
        return _Grams(
            g_hyp,
            g_order,
            g_gram,
            weight,
            np.sqrt(squares).reshape(-1, self.n),
            _bigrams(lengths, self.n),
        )

    def _clipped_dots(
        self, grams: _Grams, images: np.ndarray, first: np.ndarray, most: int
    ) -> np.ndarray:
        """``(H, M, n)`` per caption, reference slot and order: the sum over the caption's
        n-grams of ``min(w_caption, w_ref) * w_ref`` (0 past an image's references)."""
        n, h_count = self.n, images.size
        # Every reference n-gram of the batch's images, keyed by (image of the batch, n-gram).
        unique, local = np.unique(images, return_inverse=True)
        starts = self.ref_entries[self.image_refs[unique]]
        sizes = self.ref_entries[self.image_refs[unique + 1]] - starts
        entries = _ranges(starts, sizes)
        span = max(int(self.order_start[-1]), 1)
        keys = (
            np.repeat(np.arange(unique.size, dtype=np.int64), sizes) * span
            + self.entry_gram[entries]
        )
        by_key = np.argsort(keys, kind="stable")
        keys = keys[by_key]

        queries = (grams.gram != MISSING).nonzero()[0]
        wanted = local[grams.hyp[queries]] * span + grams.gram[queries]
        low = np.searchsorted(keys, wanted, side="left")
        found = np.searchsorted(keys, wanted, side="right") - low
        matched = np.repeat(queries, found)  # one row per (caption n-gram, reference having it)
        entry = entries[by_key[_ranges(low, found)]]
        ref_weight = self.entry_tf[entry] * self.idf[self.entry_gram[entry]]
        clipped = np.minimum(grams.weight[matched], ref_weight) * ref_weight
        hyp = grams.hyp[matched]
        slot = self.entry_ref[entry] - first[hyp]  # which of its image's references
        dot = np.bincount(
            (hyp * most + slot) * n + grams.order[matched],
            weights=clipped,
            minlength=h_count * most * n,
        )
        return dot.reshape(h_count, most, n)
