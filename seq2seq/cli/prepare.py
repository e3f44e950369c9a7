"""``seq2seq-prepare [OVERRIDES]``: prepare an experiment's corpus before training it.

It takes ``seq2seq-train``'s config and overrides (``experiment=wmt14_rnnsearch50
data.dir=...``) and does what the first training run would do before its first step: check
every split, train the tokenizers, encode every pair into the memory-mapped corpus store
(docs/data_store.md). Training runs, resumes and other experiments on the same files and
settings then open that store in a moment. A store that exists already is reused, so running
it twice costs nothing. For captioning experiments it reads and checks the annotations and
images and builds the tokenizer (the feature cache needs the model and is built by training).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq.cli.common import fail
from seq2seq.cli.train import USER_ERRORS, error_message
from seq2seq.config import compose_train_config
from seq2seq.translation.prepare import SPLITS

log = logging.getLogger("seq2seq.prepare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seq2seq-prepare",
        description=__doc__.split("\n")[0],
        epilog="example: seq2seq-prepare experiment=bible_bahdanau data.prepare_workers=2",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides, as for seq2seq-train (experiment=..., data.dir=...)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the store's manifest summary as JSON"
    )
    return parser


def summary(datamodule: Any) -> dict[str, Any]:
    """What was prepared: the store folder and its counts (translation), or the splits'
    sizes (captioning)."""
    store = getattr(datamodule, "store", None)
    if store is None:
        return {"splits": {split: len(datamodule.references(split)) for split in SPLITS}}
    manifest = store.manifest
    return {
        "store": str(store.folder),
        "created": manifest["created"],
        "seconds": manifest["seconds"],
        "tokenizers": manifest["tokenizers"],
        "splits": {
            split: {k: entry[k] for k in ("pairs", "lines", "dropped_empty", "replaced_lines")}
            | {"src_tokens": entry["src"]["values"], "tgt_tokens": entry["tgt"]["values"]}
            for split, entry in sorted(
                manifest["splits"].items(), key=lambda item: SPLITS.index(item[0])
            )
        },
    }


def prepare(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate ``cfg.data`` and prepare it; returns :func:`summary`."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare()
    return summary(datamodule)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", stream=sys.stderr
    )
    try:
        cfg = compose_train_config(args.overrides)
    except HydraException as err:
        fail(str(err))
    started = time.monotonic()
    try:
        result = prepare(cfg)
    except USER_ERRORS as err:
        fail(error_message(err), code=1)
    except KeyboardInterrupt:
        fail("interrupted (nothing half-done is kept)", code=130)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "store" in result:
        print(f"corpus store: {result['store']} (prepared {result['created']})")
        for split, counts in result["splits"].items():
            print(
                f"  {split}: {counts['pairs']:,} pairs ({counts['dropped_empty']:,} empty "
                f"dropped), {counts['src_tokens']:,} + {counts['tgt_tokens']:,} tokens"
            )
    else:
        for split, count in result["splits"].items():
            print(f"  {split}: {count:,} examples")
    print(f"ready in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
