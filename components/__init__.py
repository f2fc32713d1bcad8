"""The KFP components: one directory each (component.py, README.md, tests/), thin over globe.kfp.steps."""
