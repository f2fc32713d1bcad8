"""On CPU, let TRL's fused LM head score only the positions that carry a label.

TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`, used by SFTTrainer and GRPOTrainer)
computes each position's log-prob, entropy and top-1 in tiles. Where Triton runs (CUDA, XPU) it
first keeps the positions with a label (`compact`); everywhere else it scores every position and
masks the prompt afterwards, because on Neuron a varying number of labelled positions would change
the tile shapes and recompile them on every batch. On CPU nothing is compiled, and the work thrown
away is most of it: a tiny-world SFT row is ~230 positions (system prompt, question, image tokens)
of which ~76 are the completion, and a GRPO row ~150 prompt positions before ~78 completion ones.

`labelled_positions_only` makes TRL take its compact path on CPU for the length of a run. The
values at the labelled positions are the same computation either way, so the loss and the
gradients do not change (tests/test_train_lm_head.py); the head's share of a step shrinks with the
share of positions it no longer scores (`python benchmarks/lm_head_positions.py`). It swaps only
the name TRL's forward reads to choose `compact`; the tile kernels keep their own check, so CPU
still runs the torch tiles. TRL is pinned (constraints.txt); if a release moves the hook, the run
goes on at the old speed with a warning, and the test names what moved.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

HOOK = "_use_triton"  # trl.trainer.utils: `compact = _use_triton(hidden_states.device)` in the fused forward


@contextmanager
def labelled_positions_only(enabled: bool = True) -> Iterator[bool]:
    """Within the block, TRL's fused LM head scores only labelled positions on CPU too.

    Yields whether the switch is in effect (False when disabled, or when this TRL has no such hook)."""
    if not enabled:
        yield False
        return
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, HOOK, None)
    if original is None:
        log.warning("trl.trainer.utils.%s not found: the fused LM head scores every position on CPU", HOOK)
        yield False
        return

    def compact_on_cpu(device) -> bool:
        return device.type == "cpu" or original(device)

    setattr(trl_utils, HOOK, compact_on_cpu)
    try:
        yield True
    finally:
        setattr(trl_utils, HOOK, original)
