"""``python -m seq2seq.datasets.wmt14 SOURCE_DIR OUT_DIR [options]``: see :func:`.build.main`."""

from __future__ import annotations

import sys

from seq2seq.datasets.wmt14.build import main

if __name__ == "__main__":
    sys.exit(main())
