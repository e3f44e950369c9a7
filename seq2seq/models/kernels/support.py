"""What a fused kernel supports, stated beside the kernel and checked by the decoder.

A decoder describes the options that shape its computation (:meth:`options` of the
decoders: the cell, the gate, where the output layer reads from...). A kernel states, for
*every* option it knows of, which values it computes exactly as the plain loop does; ``ANY``
marks an option that acts outside the kernel (the output layer, the regulariser). An option
the kernel does not name is unsupported: an option added to a decoder later runs on the plain
path until someone has checked the kernel against it and said so here. That is the point of
the statement: a kernel never silently ignores what it was not written for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

#: The option acts outside the kernel: every value is supported.
ANY: frozenset[Any] = frozenset({"<any>"})


@dataclass(frozen=True)
class KernelSupport:
    """The decoder options a kernel computes exactly as the plain path.

    Attributes:
        name: the kernel, as the log names it.
        options: for each option the kernel knows of, the supported values, or :data:`ANY`.
    """

    name: str
    options: Mapping[str, frozenset[Any]] = field(default_factory=dict)

    # A statement is a module-level constant that decoders compare by identity: copies of a
    # model (deepcopy for an averaged model, a CPU copy) keep pointing at the same one.
    def __copy__(self) -> KernelSupport:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> KernelSupport:
        return self

    def refusal(self, options: Mapping[str, Any]) -> str | None:
        """Why the kernel cannot run a decoder with ``options``; None when it can."""
        for key, value in options.items():
            allowed = self.options.get(key)
            if allowed is None:
                return f"it does not state support for option {key!r}"
            if allowed is not ANY and value not in allowed:
                return f"it supports {key}={sorted(map(repr, allowed))}, not {value!r}"
        return None


def values(*allowed: Any) -> frozenset[Any]:
    """The supported values of one option."""
    return frozenset(allowed)


class KernelChoice:
    """A decoder's choice between its kernels and the plain loop, logged once per decoder.

    Args:
        owner: the decoder's class name, for the log.
        kernels: candidate kernels, first match wins.
        options: the decoder's options.
    """

    def __init__(
        self, owner: str, kernels: Iterable[KernelSupport], options: Mapping[str, Any]
    ) -> None:
        self.kernel: KernelSupport | None = None
        reasons = []
        for kernel in kernels:
            reason = kernel.refusal(options)
            if reason is None:
                self.kernel = kernel
                break
            reasons.append(f"{kernel.name}: {reason}")
        self.owner = owner
        self.why_plain = "; ".join(reasons)
        self._logged: set[str] = set()

    def use(self, device_type: str, enabled: bool = True) -> KernelSupport | None:
        """The kernel to train with on ``device_type`` now, or None for the plain loop.

        ``enabled`` False (the decoder's ``fused: false``) takes the plain loop. The kernels
        are written for float32 outside autocast; under autocast the plain loop runs (mixed
        precision is for GPUs, where the plain loop's operations are the library's kernels).
        """
        kernel, why = self.kernel, self.why_plain
        if kernel is not None and not enabled:
            kernel, why = None, "fused: false"
        elif kernel is not None and torch.is_autocast_enabled(device_type):
            kernel, why = None, "autocast is on"
        path = f"the {kernel.name} kernel" if kernel is not None else f"the plain loop ({why})"
        if path not in self._logged:
            self._logged.add(path)
            log.info("%s trains with %s", self.owner, path)
        return kernel
