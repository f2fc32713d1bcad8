"""The KFP pipeline definition (globe_pipeline.py) and its compiled IR YAML (globe_pipeline.yaml)."""
