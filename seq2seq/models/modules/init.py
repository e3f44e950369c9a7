"""Parameter initialisation of Bahdanau et al. (2015), Appendix B.1 (and Cho et al. 2014):

- recurrent matrices (``U``, ``U_z``, ``U_r`` and the encoder GRUs' ``weight_hh``): random
  orthogonal, one square block per gate;
- ``W_a`` and ``U_a`` of the alignment model: N(0, 0.001²); ``v_a``: zero (so attention
  starts uniform);
- every bias: zero;
- every other matrix and the embeddings: N(0, 0.01²).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.models.modules.attention import AdditiveAttention
from seq2seq.models.modules.cells import ContextCell


@torch.no_grad()
def orthogonal_blocks_(weight: Tensor) -> None:
    """Fill ``weight`` ``(G*H, H)`` with ``G`` independent random orthogonal ``H × H`` blocks."""
    for block in weight.split(weight.size(1), dim=0):
        nn.init.orthogonal_(block)


@torch.no_grad()
def init_bahdanau_(model: nn.Module) -> nn.Module:
    """Initialise ``model`` in place as in the paper's Appendix B; returns it."""
    for name, param in model.named_parameters():
        if name.endswith("bias") or ".bias_" in name or name.startswith("bias_"):
            param.zero_()
        else:
            param.normal_(0.0, 0.01)
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            for name, param in module.named_parameters():
                if name.startswith("weight_hh"):
                    orthogonal_blocks_(param)
        elif isinstance(module, ContextCell):
            for name in module.orthogonal:
                orthogonal_blocks_(module.get_parameter(name))
        elif isinstance(module, AdditiveAttention):
            module.query.weight.normal_(0.0, 0.001)
            module.key.weight.normal_(0.0, 0.001)
            module.v.weight.zero_()
        elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
    return model


INITIALISERS = {"bahdanau": init_bahdanau_, "pytorch": lambda model: model}


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Apply the named initialisation scheme (``bahdanau`` or ``pytorch``'s defaults), then
    each module's own ``after_init_`` (settings a config asked for, such as a forget-gate
    bias, that the scheme must not wipe out)."""
    if scheme not in INITIALISERS:
        raise ValueError(f"model.init must be one of {sorted(INITIALISERS)}, got {scheme!r}")
    model = INITIALISERS[scheme](model)
    for module in model.modules():
        hook = getattr(module, "after_init_", None)
        if callable(hook):
            hook()
    return model
