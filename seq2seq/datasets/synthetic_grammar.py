"""Lexicon, grammar and invented target language of the synthetic translation task.

The design rationale lives in :mod:`seq2seq.datasets.synthetic`. This module holds the pieces:
the source lexicon, the target lexicon (drawn once from a fixed seed), the parse trees, a
random :class:`Sampler` of trees, the two renderers (tree -> source, tree -> target) and a
deterministic parser, so that :func:`translate` maps any source sentence to its one reference.

The grammar is built to be unambiguous, so that the parse (and hence the translation) is a
function of the source string; the parser decides every step from the next token alone:

- a noun-attached PP uses only :data:`NP_PREPS` and always follows its head noun directly;
  a clause-level PP uses only :data:`VP_PREPS` and exists in main clauses only;
- noun phrases inside a PP take no relative clause, so "that" after a PP belongs to the
  noun phrase that owns the PP;
- adverbs stand right before their verb, so they can never be read as closing another clause;
- "and"/"but" only join main clauses, and the target keeps their order, so how nested
  coordinations are bracketed cannot change the translation.
"""

from __future__ import annotations

import random
from collections.abc import Container
from typing import NamedTuple


# --- Source lexicon (197 word types in all) ------------------------------------------------
def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _forms(text: str) -> dict[str, tuple[str, ...]]:
    """``"see sees saw, run runs ran"`` -> ``{"see": ("sees", "saw"), "run": ("runs", "ran")}``."""
    return {first: tuple(rest) for first, *rest in (item.split() for item in text.split(","))}


#: Determiner -> (allowed with singular nouns, allowed with plural nouns).
DETERMINERS: dict[str, tuple[bool, bool]] = {
    "the": (True, True),
    "no": (True, True),
    "a": (True, False),
    "every": (True, False),
    "some": (False, True),
    "many": (False, True),
}
ADJECTIVES = _words(
    "big small old young red green happy sad quick slow tall brave clever quiet angry hungry "
    "tired lazy gentle proud"
)
#: Singular -> plural; irregular plurals make number a property of the word, not a suffix.
NOUNS: dict[str, str] = {
    **{n: n + "s" for n in _words("cat dog bird horse goat lion bear frog owl monkey rabbit")},
    **{n: n + "s" for n in _words("farmer teacher king queen doctor baker sailor girl boy")},
    **{n: n + "s" for n in _words("tree house river bridge garden tower boat village")},
    **{s: p for s, (p,) in _forms("fox foxes, wolf wolves, mouse mice, child children").items()},
    **{s: p for s, (p,) in _forms("man men, woman women").items()},
}
#: Base (= present plural) -> (present singular, past). Past forms show no number.
TRANS_VERBS = _forms(
    "see sees saw, chase chases chased, follow follows followed, help helps helped, "
    "watch watches watched, like likes liked, find finds found, love loves loved, "
    "know knows knew, meet meets met, hear hears heard, greet greets greeted, "
    "carry carries carried, push pushes pushed, visit visits visited, feed feeds fed, "
    "catch catches caught, teach teaches taught"
)
INTRANS_VERBS = _forms(
    "run runs ran, sleep sleeps slept, sing sings sang, dance dances danced, "
    "laugh laughs laughed, swim swims swam, wait waits waited, smile smiles smiled, "
    "fall falls fell, shout shouts shouted"
)
ADVERBS: tuple[str, ...] = ("quickly", "slowly", "often", "always", "suddenly")
NP_PREPS: tuple[str, ...] = ("near", "with", "under", "behind", "beside", "above")
VP_PREPS: tuple[str, ...] = ("in", "at", "after", "before")
CONJUNCTIONS: tuple[str, ...] = ("and", "but")

# --- Target lexicon ---------------------------------------------------------------------
# Fixed forever and independent of any data seed: changing it changes the language, which the
# golden tests catch (bump the corpus format version in synthetic.py if you do it on purpose).
_TARGET_SEED = 20240611
NOM, ACC, OBL = 0, 1, 2
#: Noun suffix by [plural][case]: number, then case (accusative objects, oblique in PPs).
_NOUN_SUFFIX = (("", "ak", "um"), ("en", "enak", "enum"))
#: Adjective and determiner agreement suffix by [gender][plural].
_AGREE_SUFFIX = (("o", "os"), ("e", "es"))
#: Verb suffix by [past][plural]: tense and the number of the subject.
_VERB_SUFFIX = (("at", "ant"), ("it", "int"))


def _build_target_lexicon() -> tuple[dict[str, str], dict[str, int]]:
    """Draw a stem for every source lemma and a gender (0 or 1) for every noun."""
    rng = random.Random(_TARGET_SEED)
    used: set[str] = set()

    def word(shape: str) -> str:
        while True:
            w = "".join(rng.choice("bdgklmnprstvz" if c == "C" else "aeiou") for c in shape)
            if w not in used:
                used.add(w)
                return w

    # Every inflecting stem has the same length (CVCVC), so stem + suffix is never equal to
    # another stem + suffix: every target form names exactly one lemma and feature bundle.
    stems = {w: word("CVCVC") for w in [*DETERMINERS, *ADJECTIVES, *NOUNS, *TRANS_VERBS]}
    stems.update({w: word("CVCVC") for w in [*INTRANS_VERBS, *ADVERBS]})
    # Function words are shorter (CVCV), so they cannot collide with inflected forms either.
    stems.update({w: word("CVCV") for w in [*NP_PREPS, *VP_PREPS, *CONJUNCTIONS]})
    stems["that:subj"], stems["that:obj"] = word("CVCV"), word("CVCV")
    genders = {n: rng.randrange(2) for n in NOUNS}
    return stems, genders


#: Source lemma (and "that:subj"/"that:obj" for the two relativisers) -> target stem.
TARGET_STEMS, NOUN_GENDERS = _build_target_lexicon()


# --- Parse trees ------------------------------------------------------------------------
class NP(NamedTuple):
    """Det Adj* Noun [PP] [Rel]; ``noun`` is the singular lemma."""

    det: str
    adjs: tuple[str, ...]
    noun: str
    plural: bool
    pp: PP | None = None
    rel: Rel | None = None


class PP(NamedTuple):
    """Preposition and its noun phrase."""

    prep: str
    np: NP


class VP(NamedTuple):
    """[Adv] Verb [Obj] [PP]; ``obj`` is None for intransitives and object-relative gaps."""

    verb: str
    past: bool
    obj: NP | None = None
    adv: str | None = None
    pp: PP | None = None


class Rel(NamedTuple):
    """Relative clause: "that" VP (subject relative, ``subj`` None) or "that" NP Verb."""

    vp: VP
    subj: NP | None = None


class Clause(NamedTuple):
    """Subject and verb phrase of a main clause."""

    subj: NP
    vp: VP


class Sentence(NamedTuple):
    """Main clauses joined by ``conjs`` (one fewer than clauses)."""

    clauses: tuple[Clause, ...]
    conjs: tuple[str, ...] = ()


# --- Rendering ----------------------------------------------------------------------------
def _src_np(np: NP, out: list[str]) -> None:
    out.append(np.det)
    out.extend(np.adjs)
    out.append(NOUNS[np.noun] if np.plural else np.noun)
    if np.pp is not None:
        out.append(np.pp.prep)
        _src_np(np.pp.np, out)
    if np.rel is not None:
        out.append("that")
        if np.rel.subj is None:
            _src_vp(np.rel.vp, np.plural, out)
        else:
            _src_np(np.rel.subj, out)
            _src_vp(np.rel.vp, np.rel.subj.plural, out)


def _src_vp(vp: VP, plural: bool, out: list[str]) -> None:
    if vp.adv is not None:
        out.append(vp.adv)
    singular, past = TRANS_VERBS.get(vp.verb) or INTRANS_VERBS[vp.verb]
    out.append(past if vp.past else vp.verb if plural else singular)
    if vp.obj is not None:
        _src_np(vp.obj, out)
    if vp.pp is not None:
        out.append(vp.pp.prep)
        _src_np(vp.pp.np, out)


def _tgt_np(np: NP, case: int, out: list[str]) -> None:
    # N Adj* Det: the English order mirrored; adjectives and determiner agree with the noun.
    agree = _AGREE_SUFFIX[NOUN_GENDERS[np.noun]][np.plural]
    out.append(TARGET_STEMS[np.noun] + _NOUN_SUFFIX[np.plural][case])
    out.extend(TARGET_STEMS[a] + agree for a in reversed(np.adjs))
    out.append(TARGET_STEMS[np.det] + agree)
    if np.pp is not None:
        _tgt_pp(np.pp, out)
    if np.rel is not None:
        if np.rel.subj is None:  # the verb agrees with the head noun, maybe far to the left
            out.append(TARGET_STEMS["that:subj"])
            _tgt_vp(np.rel.vp, np.plural, out)
        else:
            out.append(TARGET_STEMS["that:obj"])
            _tgt_np(np.rel.subj, NOM, out)
            _tgt_vp(np.rel.vp, np.rel.subj.plural, out)


def _tgt_pp(pp: PP, out: list[str]) -> None:
    _tgt_np(pp.np, OBL, out)  # postposition
    out.append(TARGET_STEMS[pp.prep])


def _tgt_vp(vp: VP, plural: bool, out: list[str]) -> None:
    # Verb-final: Object [PP] [Adverb] Verb.
    if vp.obj is not None:
        _tgt_np(vp.obj, ACC, out)
    if vp.pp is not None:
        _tgt_pp(vp.pp, out)
    if vp.adv is not None:
        out.append(TARGET_STEMS[vp.adv])
    out.append(TARGET_STEMS[vp.verb] + _VERB_SUFFIX[vp.past][plural])


def render_source(tree: Sentence) -> list[str]:
    """The English-like tokens of ``tree``, ending with "."."""
    out: list[str] = []
    for i, clause in enumerate(tree.clauses):
        if i:
            out.append(tree.conjs[i - 1])
        _src_np(clause.subj, out)
        _src_vp(clause.vp, clause.subj.plural, out)
    out.append(".")
    return out


def render_target(tree: Sentence) -> list[str]:
    """The target-language tokens of ``tree``, ending with "."."""
    out: list[str] = []
    for i, clause in enumerate(tree.clauses):
        if i:
            out.append(TARGET_STEMS[tree.conjs[i - 1]])
        _tgt_np(clause.subj, NOM, out)
        _tgt_vp(clause.vp, clause.subj.plural, out)
    out.append(".")
    return out


# --- Parsing ------------------------------------------------------------------------------
_NOUN_FORMS = {**{n: (n, False) for n in NOUNS}, **{p: (n, True) for n, p in NOUNS.items()}}
#: Verb form -> (lemma, past). Present-tense agreement is not checked: the target verb takes
#: its number from the subject either way, as it must for past forms, which show none.
_VERB_FORMS = {
    form: (lemma, form == forms[1])
    for table in (TRANS_VERBS, INTRANS_VERBS)
    for lemma, forms in table.items()
    for form in (lemma, *forms)
}


class _Parser:
    """Recursive descent over the grammar; every choice is made from the next token."""

    def __init__(self, tokens: list[str]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self) -> str:
        return self.toks[self.i] if self.i < len(self.toks) else "<end>"

    def take(self, allowed: Container[str], what: str) -> str:
        tok = self.peek()
        if tok not in allowed:
            raise ValueError(f"expected {what} at token {self.i}, got {tok!r}: {self.toks}")
        self.i += 1
        return tok

    def sentence(self) -> Sentence:
        clauses, conjs = [self.clause()], []
        while self.peek() in CONJUNCTIONS:
            conjs.append(self.take(CONJUNCTIONS, "conjunction"))
            clauses.append(self.clause())
        self.take({"."}, "'.' or conjunction")
        if self.i != len(self.toks):
            raise ValueError(f"tokens after '.': {self.toks}")
        return Sentence(tuple(clauses), tuple(conjs))

    def clause(self) -> Clause:
        return Clause(self.np(allow_rel=True), self.vp(main=True, gap=False))

    def np(self, allow_rel: bool) -> NP:
        det = self.take(DETERMINERS, "determiner")
        adjs = []
        while self.peek() in ADJECTIVES:
            adjs.append(self.take(ADJECTIVES, "adjective"))
        noun, plural = _NOUN_FORMS[self.take(_NOUN_FORMS, "noun")]
        pp = None
        if self.peek() in NP_PREPS:
            pp = PP(self.take(NP_PREPS, "preposition"), self.np(allow_rel=False))
        rel = None
        if allow_rel and self.peek() == "that":
            self.i += 1
            if self.peek() in DETERMINERS:  # object relative: "that the dog saw"
                subj = self.np(allow_rel=True)
                rel = Rel(self.vp(main=False, gap=True), subj)
            else:
                rel = Rel(self.vp(main=False, gap=False))
        return NP(det, tuple(adjs), noun, plural, pp, rel)

    def vp(self, main: bool, gap: bool) -> VP:
        adv = self.take(ADVERBS, "adverb") if self.peek() in ADVERBS else None
        verb, past = _VERB_FORMS[self.take(_VERB_FORMS, "verb")]
        if gap and verb not in TRANS_VERBS:
            raise ValueError(f"object relative needs a transitive verb: {self.toks}")
        obj = self.np(allow_rel=True) if verb in TRANS_VERBS and not gap else None
        pp = None
        if main and self.peek() in VP_PREPS:
            pp = PP(self.take(VP_PREPS, "preposition"), self.np(allow_rel=False))
        return VP(verb, past, obj, adv, pp)


def parse(source: str) -> Sentence:
    """Parse a whitespace-tokenised source sentence; raises ValueError if it is not one."""
    return _Parser(source.split()).sentence()


def translate(source: str) -> str:
    """The one reference translation of a source sentence."""
    return " ".join(render_target(parse(source)))


# --- Sampling -----------------------------------------------------------------------------
_DETS_BY_NUMBER = tuple(tuple(d for d, ok in DETERMINERS.items() if ok[pl]) for pl in (0, 1))
_NOUN_LIST, _TV_LIST, _IV_LIST = tuple(NOUNS), tuple(TRANS_VERBS), tuple(INTRANS_VERBS)


class TooLong(Exception):
    """Raised by :class:`Sampler` as soon as a sentence outgrows its token budget."""


class Sampler:
    """Draws random parse trees; ``complexity`` (0 to about 1.5) scales how much they branch."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.p_pp = self.p_rel = self.p_vp_pp = self.p_clause = 0.0
        self.budget = 0

    def _pick(self, items: tuple[str, ...]) -> str:
        # Several times faster than rng.choice, which matters: sampling is the hot loop.
        return items[int(self.rng.random() * len(items))]

    def _spend(self, n_tokens: int) -> None:
        # Counting source tokens while sampling lets a too-long draw stop early instead of
        # building (and rendering) a huge tree only to reject it.
        self.budget -= n_tokens
        if self.budget < 0:
            raise TooLong

    def sentence(self, complexity: float, max_len: int = 10**9) -> Sentence:
        """One sentence of at most ``max_len`` source tokens, else raises :class:`TooLong`.

        More complexity means more clauses, PPs and relative clauses.
        """
        c, self.budget = complexity, max_len - 1  # the final "."
        self.p_pp, self.p_rel = 0.05 + 0.5 * c, 0.03 + 0.5 * c
        self.p_vp_pp, self.p_clause = 0.05 + 0.4 * c, 0.05 + 0.5 * c
        n = 1
        while n < 5 and self.rng.random() < self.p_clause:
            n += 1
        self._spend(n - 1)  # conjunctions
        clauses = tuple(Clause(self.np(0, 0, True), self.vp(0, True)) for _ in range(n))
        return Sentence(clauses, tuple(self._pick(CONJUNCTIONS) for _ in range(n - 1)))

    def np(self, pp_depth: int, rel_depth: int, allow_rel: bool) -> NP:
        """Det Adj{0,2} Noun [PP] [Rel]; PPs nest 2 deep, relative clauses 2 deep."""
        r, pick = self.rng, self._pick
        plural = r.random() < 0.4
        x = r.random()
        adjs: tuple[str, ...] = ()
        if x >= 0.5:
            adjs = (pick(ADJECTIVES),)
            while x >= 0.85 and len(adjs) < 2:  # two different adjectives
                adjs = tuple(dict.fromkeys((*adjs, pick(ADJECTIVES))))
        det, noun = pick(_DETS_BY_NUMBER[plural]), pick(_NOUN_LIST)
        self._spend(2 + len(adjs))
        pp = rel = None
        # Probabilities halve with depth so that chains stay short but can happen.
        if pp_depth < 2 and r.random() < self.p_pp / 2**pp_depth:
            self._spend(1)
            pp = PP(pick(NP_PREPS), self.np(pp_depth + 1, rel_depth, False))
        if allow_rel and rel_depth < 2 and r.random() < self.p_rel / 2**rel_depth:
            self._spend(1)
            if r.random() < 0.6:
                rel = Rel(self.vp(rel_depth + 1, False))
            else:  # object relative: its verb is transitive, its object is the gap
                subj = self.np(0, rel_depth + 1, True)
                adv = pick(ADVERBS) if r.random() < 0.15 else None
                self._spend(1 + (adv is not None))
                rel = Rel(VP(pick(_TV_LIST), r.random() < 0.5, None, adv), subj)
        return NP(det, adjs, noun, plural, pp, rel)

    def vp(self, rel_depth: int, main: bool) -> VP:
        """[Adv] Verb [NP]; main clauses may add a clause-level PP."""
        r, pick = self.rng, self._pick
        past = r.random() < 0.5
        adv = pick(ADVERBS) if r.random() < 0.15 else None
        self._spend(1 + (adv is not None))
        if r.random() < 0.7:
            verb, obj = pick(_TV_LIST), self.np(0, rel_depth, True)
        else:
            verb, obj = pick(_IV_LIST), None
        pp = None
        if main and r.random() < self.p_vp_pp:
            self._spend(1)
            pp = PP(pick(VP_PREPS), self.np(1, rel_depth, False))
        return VP(verb, past, obj, adv, pp)
