"""Greedy and beam search over any decoder that keeps the contract of :mod:`seq2seq.core`."""

from seq2seq.search.beam import beam_search
from seq2seq.search.greedy import greedy_search
from seq2seq.search.hypothesis import Hypothesis, max_lengths

__all__ = ["Hypothesis", "beam_search", "greedy_search", "max_lengths"]
