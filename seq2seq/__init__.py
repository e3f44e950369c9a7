"""seq2seq: sequence-to-sequence learning for translation and captioning."""

__version__ = "0.1.0"
