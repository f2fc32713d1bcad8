"""Training: SFT warm start, the localizability reward model (LoRA SFT) and GRPO, all on TRL.

Every stage goes through the same path: `plan.make_plan` turns a params group into the exact
TRL config kwargs plus a DeepSpeed JSON and checks them against each other before any weight is
loaded (`globe train ... --dry-run` prints that plan); `datasets.py` turns `records.jsonl` into
the conversational columns TRL expects; `run.py` holds what every trainer shares (model loading,
resume, the clean checkpoint, `metrics.json`). `sft.py`, `reward_model.py` and `grpo.py` are the
thin stage recipes. Heavy imports (torch, transformers, trl) happen inside functions so that the
CLI stays fast.
"""
