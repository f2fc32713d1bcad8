"""TRL's fused LM head scores only labelled positions on CPU inside `labelled_positions_only`, and
the loss and gradients of a real SFT batch are the same as when it scores every position."""

from __future__ import annotations

import torch

from globe.train.lm_head import HOOK, labelled_positions_only


def _sft_trainer(model_dir, data, out):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from globe.train.datasets import sft_dataset

    torch.manual_seed(0)
    config = SFTConfig(output_dir=str(out), use_cpu=True, report_to=[], per_device_train_batch_size=4, max_steps=1)
    return SFTTrainer(
        model=AutoModelForImageTextToText.from_pretrained(model_dir),
        args=config,
        train_dataset=sft_dataset(data),
        processing_class=AutoProcessor.from_pretrained(model_dir),
    )


def _loss_grads_rows(trainer, batch, compact: bool):
    """Loss, gradients, and the number of positions the LM head scored, for one batch."""
    import trl.trainer.utils as trl_utils

    rows = []
    kernel = trl_utils._ChunkedLogProbFunction

    class Counting:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    trainer.model.zero_grad()
    trl_utils._ChunkedLogProbFunction = Counting
    try:
        with labelled_positions_only(compact):
            loss = trainer.compute_loss(trainer.model, dict(batch))
            loss.backward()
    finally:
        trl_utils._ChunkedLogProbFunction = kernel
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.item(), grads, sum(rows)


def test_cpu_scores_only_labelled_positions_with_the_same_loss_and_gradients(tiny_model_dir, geoscenes_data, tmp_path):
    trainer = _sft_trainer(tiny_model_dir, geoscenes_data, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    every = batch["labels"][:, 1:].numel()
    assert labelled < every / 2  # the prompt (system, question, image tokens) outweighs the completion

    loss_all, grads_all, rows_all = _loss_grads_rows(trainer, batch, compact=False)
    loss_compact, grads_compact, rows_compact = _loss_grads_rows(trainer, batch, compact=True)

    assert rows_all == every and rows_compact == labelled
    assert abs(loss_all - loss_compact) < 1e-5
    assert grads_all.keys() == grads_compact.keys() and grads_all
    for name, grad in grads_all.items():
        torch.testing.assert_close(grads_compact[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_switch_is_scoped_and_leaves_other_devices_to_trl():
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, HOOK)  # the pinned TRL has the hook; an upgrade that moves it fails here
    cpu = torch.device("cpu")
    assert original(cpu) is False
    with labelled_positions_only() as active:
        assert active and getattr(trl_utils, HOOK)(cpu) is True
        assert getattr(trl_utils, HOOK)(torch.device("meta")) is original(torch.device("meta"))
    assert getattr(trl_utils, HOOK) is original
    with labelled_positions_only(enabled=False) as active:
        assert not active and getattr(trl_utils, HOOK) is original
