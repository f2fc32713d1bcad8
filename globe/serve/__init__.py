"""Serving: the KServe predictor `globe` (see model.py), its input checks, batching, server and demo page.

Kept import-light: `globe --help` imports this package's CLI module only, and the heavy parts
(kserve, torch) load when a command or `python -m globe.serve` actually runs.
"""

import sys


def import_kserve() -> None:
    """Import kserve without letting it read this process's command line.

    `kserve.model_server` runs `parser.parse_known_args()` on `sys.argv` at import time, so flags of a
    `globe` command are taken for KServe's (`globe serve --grpc` dies with "ambiguous option: --grpc
    could match --grpc_port, ..."). `python -m globe.serve` does want KServe's flags and does not use
    this; the `globe` CLI imports kserve through here first.
    """
    if "kserve.model_server" in sys.modules:
        return
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve.model_server  # noqa: F401
    finally:
        sys.argv = saved
