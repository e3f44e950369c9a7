"""Corpus caption metrics as the COCO caption evaluation computes them: BLEU-1..4, CIDEr-D and
METEOR, with pycocoevalcap's own scorers on already tokenised captions.

pycocoevalcap's ``PTBTokenizer`` is skipped: it needs Java and a Stanford jar, and the
captions here are tokenised already. METEOR needs Java too (it drives ``meteor-1.5.jar`` over a
pipe), so it is optional: scored when a ``java`` is on PATH, skipped with a notice otherwise.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor

log = logging.getLogger(__name__)

#: Every metric :func:`caption_scores` can report, e.g. to validate an early-stopping monitor.
CAPTION_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "cider", "meteor")
#: Kill the METEOR JVM after this long, so a hung subprocess cannot stall a validation.
METEOR_TIMEOUT_S = 600.0
_JAVA_HINT = "install a Java runtime (e.g. `apt-get install default-jre-headless`) to get it"
_java_notice_shown = False


@dataclass
class CaptionScores:
    """Corpus-level caption scores, all ×100 (BLEU-n in percent, CIDEr-D 0.943 as 94.3)."""

    bleu1: float
    bleu2: float
    bleu3: float
    bleu4: float
    cider: float
    meteor: float | None
    n_images: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Metric name (with ``prefix``, e.g. ``"val/"``) to score; METEOR left out when None."""
        scores = {name: getattr(self, name) for name in CAPTION_METRICS}
        return {prefix + name: value for name, value in scores.items() if value is not None}

    def format(self) -> str:
        """One line such as ``BLEU-1/2/3/4 70.1/52.3/38.0/27.6  CIDEr-D 88.2  (500 images)``."""
        bleus = "/".join(f"{b:.1f}" for b in (self.bleu1, self.bleu2, self.bleu3, self.bleu4))
        parts = [f"BLEU-1/2/3/4 {bleus}", f"CIDEr-D {self.cider:.1f}"]
        if self.meteor is not None:
            parts.append(f"METEOR {self.meteor:.1f}")
        return "  ".join([*parts, f"({self.n_images} images)"])


class _ClosingMeteor(Meteor):
    """pycocoevalcap's METEOR scorer with a :meth:`close` that always reaps the JVM.

    The parent's ``__del__`` takes the scorer's lock, which ``compute_score`` never releases
    when it fails half-way (a dead JVM, say): garbage collection would then hang for ever. And
    when ``Popen`` itself fails, that ``__del__`` trips over missing attributes.
    """

    def close(self) -> str:
        """Kill and reap the JVM and close its pipes (idempotent); return its stderr."""
        process = getattr(self, "meteor_p", None)
        if process is None:
            return ""
        process.kill()  # a no-op once it has exited
        process.wait()
        stderr = b""
        if process.stderr is not None and not process.stderr.closed:
            stderr = process.stderr.read()
        for pipe in (process.stdin, process.stdout, process.stderr):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # flushing stdin into a dead process: nothing left to save
                pass
        return stderr.decode(errors="replace").strip()

    def __del__(self) -> None:
        self.close()


def _want_meteor(meteor: bool | None) -> bool:
    """Whether to score METEOR: ``meteor`` None means "if Java is on PATH"."""
    global _java_notice_shown
    if meteor is False:
        return False
    if shutil.which("java") is not None:
        return True
    if meteor:
        raise RuntimeError(f"METEOR was asked for but no `java` is on PATH: {_JAVA_HINT}")
    if not _java_notice_shown:
        _java_notice_shown = True
        log.warning("METEOR skipped: no `java` on PATH; %s", _JAVA_HINT)
    return False


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float | None:
    """METEOR 1.5 of the corpus (0..1), or None with a warning when the JVM side fails."""
    scorer = None
    timed_out = threading.Event()
    timer = None
    try:
        scorer = _ClosingMeteor()
        process = scorer.meteor_p

        def expire() -> None:
            timed_out.set()
            process.kill()  # unblocks the pending readline with EOF

        timer = threading.Timer(METEOR_TIMEOUT_S, expire)
        timer.daemon = True
        timer.start()
        score, _ = scorer.compute_score(gts, res)
        return float(score)
    except Exception as err:  # whatever went wrong, a metric must never end a training run
        stderr = scorer.close() if scorer is not None else ""
        reason = f"timed out after {METEOR_TIMEOUT_S:.0f} s" if timed_out.is_set() else repr(err)
        detail = f"; java said: {stderr[-500:]}" if stderr else ""
        log.warning("METEOR skipped: the scorer failed (%s)%s", reason, detail)
        return None
    finally:
        if timer is not None:
            timer.cancel()
        if scorer is not None:
            scorer.close()


def _clean(text: str) -> str:
    """Lowercase and single-space ``text``, and drop ``|||``: METEOR reads one line per request
    with ``|||`` between fields, so a newline or a stray separator would derail it."""
    return " ".join(text.replace("|||", " ").lower().split())


def _prepare(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """pycocoevalcap's inputs: ``{i: refs}`` and ``{i: [hyp]}``, validated and cleaned."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} reference lists: they must align"
        )
    if not hypotheses:
        raise ValueError("no captions to score")
    gts: dict[int, list[str]] = {}
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(f"references[{i}] is a string; expected a list of captions")
        # An empty reference adds nothing but would pull BLEU's closest reference length to 0.
        gts[i] = [r for r in map(_clean, refs) if r]
        if not gts[i]:
            raise ValueError(f"image {i} has no (non-empty) reference caption")
    return gts, {i: [_clean(h)] for i, h in enumerate(hypotheses)}


def caption_scores(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    meteor: bool | None = None,
) -> CaptionScores:
    """Score one caption per image against all of that image's references, at corpus level.

    BLEU-n is pycocoevalcap's corpus BLEU (n-gram counts pooled over images, the closest
    reference length per image for the brevity penalty, tiny smoothing so that a corpus with
    no matching 4-gram gets a small BLEU-4 rather than 0). CIDEr-D is pycocoevalcap's ``Cider``
    (clipped tf-idf cosine, Gaussian length penalty, ×10); its idf comes from the references
    of this very corpus, so a single image always scores 0 and larger sets are needed.
    Every score is reported ×100, as papers print them: BLEU-4 27.6, CIDEr-D 94.3 for a raw
    0.943 on the COCO leaderboard, METEOR 24.0.

    Captions should be tokenised already (punctuation split off); they are lowercased and
    whitespace-normalised here. An empty hypothesis is fine (verified: it scores 0 under every
    scorer, no substitute needed); empty reference strings are ignored.

    Args:
        hypotheses: ``N`` generated captions, one per image.
        references: ``N`` lists of reference captions, at least one non-empty each.
        meteor: None scores METEOR when a ``java`` is on PATH (a one-time notice otherwise);
            True requires it; False skips it. A failing METEOR JVM (missing jar, crash,
            timeout) is logged as a warning and gives ``meteor=None``.

    Returns:
        The scores.

    Raises:
        ValueError: when the counts differ, the corpus is empty, or an image has no reference.
        RuntimeError: when ``meteor=True`` and no ``java`` is on PATH.
    """
    gts, res = _prepare(hypotheses, references)
    bleus, _ = Bleu(4).compute_score(gts, res, verbose=0)  # verbose=1 would print its counts
    cider, _ = Cider().compute_score(gts, res)
    meteor_score = _meteor(gts, res) if _want_meteor(meteor) else None
    return CaptionScores(
        bleu1=100 * bleus[0],
        bleu2=100 * bleus[1],
        bleu3=100 * bleus[2],
        bleu4=100 * bleus[3],
        cider=100 * float(cider),
        meteor=None if meteor_score is None else 100 * meteor_score,
        n_images=len(res),
    )
