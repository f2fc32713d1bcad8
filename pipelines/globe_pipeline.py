"""The KFP front-end: the GLOBE pipeline built from this checkout's params.yaml, for KFP's own tools.

The DAG and its components are library code (globe/kfp/pipeline.py, globe/kfp/components/); this
module only builds them with params.yaml's groups as the parameter defaults (its preset applied), as
`globe pipeline compile` does:

    globe pipeline compile --out pipelines/globe_pipeline.yaml     # the checked-in YAML (drift-tested)
    kfp dsl compile --py pipelines/globe_pipeline.py --function globe_pipeline --output globe.yaml
    python -m pipelines.globe_pipeline                              # = the first line
"""

from pathlib import Path

from globe.config import load_params
from globe.kfp.build import build, compile_pipeline

ROOT = Path(__file__).resolve().parents[1]
globe_pipeline = build(load_params(ROOT / "params.yaml"))

if __name__ == "__main__":
    print(compile_pipeline(load_params(ROOT / "params.yaml"), ROOT / "pipelines" / "globe_pipeline.yaml"))
