"""Sentence-level chrF and BLEU as rewards for sequence-level training of translation.

sacrebleu's sentence scorers, each sampled translation against its one reference, divided by
100 so that a reward lies in [0, 1] (of the order of CIDEr-D's for captions, so that the
stage's learning rate means much the same for both tasks). Sentence BLEU uses sacrebleu's
``effective_order``: a short sentence without any matching 4-gram is not scored 0 outright,
which would give most samples the same reward and the gradient nothing to compare.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

#: The rewards ``seqlevel.reward`` may name for translation.
TRANSLATION_REWARDS = ("chrf", "bleu")


class SentenceReward:
    """Score hypotheses one by one against their references.

    Args:
        metric: ``chrf`` or ``bleu``.
        bleu_tokenize: sacrebleu's BLEU tokenizer (``data.bleu_tokenize``), as validation uses.
    """

    def __init__(self, metric: str, bleu_tokenize: str = "13a") -> None:
        if metric not in TRANSLATION_REWARDS:
            raise ValueError(f"metric must be one of {TRANSLATION_REWARDS}, got {metric!r}")
        self.metric = metric
        self._scorer = (
            CHRF() if metric == "chrf" else BLEU(tokenize=bleu_tokenize, effective_order=True)
        )

    def __call__(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
        """The reward in [0, 1] of each hypothesis against its reference."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        # A trained model often draws the same sentence several times for an input: each
        # distinct pair is scored once (a call costs 0.3-0.8 ms).
        pairs = list(zip(hypotheses, references, strict=True))
        scores = {
            pair: self._scorer.sentence_score(pair[0], [pair[1]]).score for pair in set(pairs)
        }
        return [scores[pair] / 100.0 for pair in pairs]
