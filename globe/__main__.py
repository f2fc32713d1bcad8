"""`python -m globe ...` is the `globe` command. torchrun starts it on every rank:

    torchrun --nproc-per-node 8 -m globe train grpo --preset qwen2.5-vl-7b-8gpu ...

(Kubeflow Trainer's pods run the same command as `torchrun --no-python globe train grpo`.) The CLI
is a front-end: nothing in the library imports it, so this module is its only `-m` entry point.
"""

from globe.cli import app

app(prog_name="globe")
