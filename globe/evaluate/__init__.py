"""Evaluation: benchmark loaders (`benchmarks`), metrics (`metrics`), plots (`plots`).

Import the submodules directly; this package stays empty so that importing one of them does not
pull in the others' dependencies (matplotlib, the gazetteer).
"""
