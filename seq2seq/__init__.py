"""seq2seq: sequence-to-sequence learning for translation and captioning.

The Python API in one line: ``Translator.from_checkpoint(path).translate([...])``, or for
images ``Captioner.from_checkpoint(path).caption(["photo.jpg"])``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Captioner", "Translator", "load_checkpoint", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import seq2seq.core` does not pull in Lightning and Hydra.
    if name == "Translator":
        from seq2seq.translation.translator import Translator

        return Translator
    if name == "Captioner":
        from seq2seq.captioning.captioner import Captioner

        return Captioner
    if name == "load_checkpoint":
        from seq2seq.checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
