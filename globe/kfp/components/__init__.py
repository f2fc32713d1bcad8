"""The KFP components: one directory each (component.py, README.md), thin over globe.kfp.steps; their
tests are tests/test_component_<name>.py. The DAG that wires them is globe/kfp/pipeline.py."""
