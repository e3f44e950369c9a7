"""WMT'14 English–French from the files a user downloaded from statmt.org (no downloading here).

The corpora of Bahdanau, Cho and Bengio (2015) are the WMT'14 English–French parallel data;
this builder turns the user's copies into the line-aligned files the experiments read::

    python -m seq2seq.datasets.wmt14 SOURCE_DIR data/wmt14_en_fr [--moses]

It searches ``SOURCE_DIR`` recursively for the standard file names (:data:`CORPORA`,
:data:`DEV`, :data:`TEST`), plain, gzipped or still inside the downloaded ``.tgz``/``.tar``
archives, and writes ``train``, ``dev`` (newstest2012 + newstest2013) and ``test``
(newstest2014, from its SGML files) as ``{split}.en`` / ``{split}.fr``. Every file is found,
counted and checked before anything is written, so a missing or misaligned file fails in
seconds rather than after hours of copying; corpora are then streamed line by line, never held
in memory, and every output is replaced atomically.

``--selection FILE.en FILE.fr`` replaces the full corpora with a data-selected subset (the
paper used the 348M-word selection of Axelrod et al. 2011, distributed by its authors), and
``--moses`` tokenises every side with the Moses tokenizer (``sacremoses``, the optional extra
``wmt14``) in worker processes, as the paper did.

The package, one concern per module: :mod:`~.errors` (:class:`Wmt14Error`), :mod:`~.sources`
(finding, counting and reading files), :mod:`~.sgml` (the SGML test set), :mod:`~.moses` (Moses
tokenisation) and :mod:`~.build` (the plan, the splits and the command line).
"""

from seq2seq.datasets.wmt14.build import CORPORA, DEV, TEST, Plan, main, plan, prepare, write_split
from seq2seq.datasets.wmt14.errors import Wmt14Error
from seq2seq.datasets.wmt14.moses import CHUNK_LINES, moses_tokenize, tokenized
from seq2seq.datasets.wmt14.sgml import align_sgml, read_sgml
from seq2seq.datasets.wmt14.sources import (
    Finder,
    Pair,
    Source,
    check_pair,
    count_lines,
    read_lines,
    read_pair,
)

__all__ = [
    "CHUNK_LINES",
    "CORPORA",
    "DEV",
    "TEST",
    "Finder",
    "Pair",
    "Plan",
    "Source",
    "Wmt14Error",
    "align_sgml",
    "check_pair",
    "count_lines",
    "main",
    "moses_tokenize",
    "plan",
    "prepare",
    "read_lines",
    "read_pair",
    "read_sgml",
    "tokenized",
    "write_split",
]
