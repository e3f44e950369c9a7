"""Command-line options the benchmark scripts share."""

from __future__ import annotations

import argparse


def add_override_option(parser: argparse.ArgumentParser) -> None:
    """``--override KEY=VALUE`` (repeatable): a Hydra override for every run the script makes."""
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Hydra override for every run (repeatable)",
    )
