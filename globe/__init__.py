"""GLOBE: recognition through reasoning, as a platform.

The library holds all logic; the CLI, dvc stages, KFP components and the KServe entrypoint are
thin front-ends over it. Keep this module import-light: `globe --help` must start in under a second.
"""

__version__ = "0.1.0"
