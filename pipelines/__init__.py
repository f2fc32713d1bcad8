"""The KFP front-end: globe_pipeline.py (the pipeline for KFP's tools, built by globe.kfp.build) and
its compiled IR YAML (globe_pipeline.yaml). The DAG itself is globe/kfp/pipeline.py."""
