"""The KFP pipeline: the checked-in YAML matches the source, GPU steps carry their accelerator and
placement settings, parameters mirror params.yaml, side effects are never cached, no component
installs anything at run time, no secret value is compiled in, and the step helpers behave."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from globe.config import ConfigError, load_params
from globe.k8s.manifests import kustomize_build, load_yaml_documents, secret_leaks
from globe.pipeline import settings, steps
from globe.pipeline.build import PipelineError, compile_pipeline, resolved_groups

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "pipelines" / "globe_pipeline.yaml"
GPU_EXECUTORS = ("exec-sft", "exec-reward-model", "exec-evaluate")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    return compile_pipeline(load_params(ROOT / "params.yaml"), tmp_path_factory.mktemp("kfp") / "globe_pipeline.yaml")


@pytest.fixture(scope="module")
def ir(compiled) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all(compiled.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_checked_in_pipeline_matches_the_source(compiled):
    assert CHECKED_IN.read_text() == compiled.read_text(), (
        "pipelines/globe_pipeline.yaml is stale: run `globe pipeline compile --out pipelines/globe_pipeline.yaml`"
    )


def test_gpu_tasks_carry_accelerator_and_placement(ir):
    spec, k8s = ir
    executors = spec["deploymentSpec"]["executors"]
    for name in GPU_EXECUTORS:
        accelerator = executors[name]["container"]["resources"]["accelerator"]
        assert accelerator["resourceType"].endswith("pipelinechannel--gpu_resource']}}"), name
        assert accelerator["resourceCount"].endswith("pipelinechannel--gpus_per_node']}}"), name
        assert executors[name]["container"]["image"] == settings.TRAIN_IMAGE
        pod = k8s[name]
        assert pod["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"] == "gpu_node_selector"
        assert pod["tolerations"][0]["tolerationJson"]["componentInputParameter"] == "gpu_tolerations"
        assert {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": settings.SHM_SIZE, "volumeName": "dshm"} in pod["emptyDirMounts"]
        assert pod["pvcMount"][0]["constant"] == settings.WORKSPACE_PVC and pod["pvcMount"][0]["mountPath"] == "/workspace"
        assert pod["secretAsEnv"][0]["secretName"] == settings.S3_SECRET
        assert {e["envVar"] for e in pod["secretAsEnv"][0]["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert "MLFLOW_TRACKING_URI" in {e["envVar"] for e in pod["configMapAsEnv"][0]["keyToEnv"]}
        assert int(pod["activeDeadlineSeconds"]) == settings.GPU_STEP_TIMEOUT_S
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["gpu_node_selector"]["defaultValue"] == settings.GPU_NODE_SELECTOR
    assert defaults["gpu_tolerations"]["defaultValue"] == settings.GPU_TOLERATIONS
    assert defaults["gpu_resource"]["defaultValue"] == "nvidia.com/gpu"


def test_grpo_runs_as_a_trainjob_that_receives_the_gpu_settings(ir):
    spec, k8s = ir
    task = spec["root"]["dag"]["tasks"]["grpo-trainjob"]
    forwarded = task["inputs"]["parameters"]
    for name, source in {"gpus_per_node": "gpus_per_node", "gpu_resource": "gpu_resource", "gpu_node_selector": "gpu_node_selector",
                         "gpu_tolerations": "gpu_tolerations", "num_nodes": "grpo_num_nodes", "timeout_s": "trainjob_timeout_s"}.items():
        assert forwarded[name]["componentInputParameter"] == source, name
    assert k8s["exec-grpo-trainjob"]["pvcMount"][0]["constant"] == settings.WORKSPACE_PVC
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-grpo-trainjob"]["container"].get("resources", {})


def test_distillation_fans_out_over_shards(ir):
    spec, _ = ir
    loop = spec["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("shard-plan-Output")
    merge = spec["root"]["dag"]["tasks"]["merge-shards"]
    assert merge["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == "for-loop-1"


def test_parameters_mirror_params_groups(ir):
    spec, _ = ir
    params = spec["root"]["inputDefinitions"]["parameters"]
    groups = resolved_groups(load_params(ROOT / "params.yaml"))
    for group in settings.PIPELINE_GROUPS:
        assert params[group]["parameterType"] == "STRUCT", group
        assert json.loads(json.dumps(params[group]["defaultValue"])) == json.loads(json.dumps(groups[group], default=float)), group


def test_side_effects_are_never_cached_and_deploy_is_conditional(ir):
    spec, _ = ir
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["register"]["cachingOptions"] == {}
    assert tasks["synth"]["cachingOptions"] == {"enableCache": True}
    condition = tasks["condition-2"]
    assert "pipelinechannel--deploy" in condition["triggerPolicy"]["condition"]
    deploy = spec["components"]["comp-condition-2"]["dag"]["tasks"]["deploy"]
    assert deploy["cachingOptions"] == {}
    assert deploy["inputs"]["parameters"]["storage_uri"]["componentInputParameter"].endswith("champion_storage_uri")


def test_components_install_nothing_at_run_time(ir):
    spec, _ = ir
    for name, executor in spec["deploymentSpec"]["executors"].items():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command and "pip3 install" not in command, name
        assert executor["container"]["image"] in {settings.CPU_IMAGE, settings.TRAIN_IMAGE}, name


def test_no_secret_values_in_compiled_pipeline(compiled):
    docs = list(yaml.safe_load_all(compiled.read_text()))
    assert secret_leaks(docs) == []
    assert secret_leaks(list(yaml.safe_load_all(CHECKED_IN.read_text()))) == []


def test_pipeline_names_exist_in_the_manifests():
    docs = kustomize_build(ROOT / "manifests" / "overlays" / "prod")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ConfigMap", settings.CONFIG_MAP) in names
    assert ("PersistentVolumeClaim", settings.WORKSPACE_PVC) in names
    assert ("TrainingRuntime", settings.TRAINING_RUNTIME) in names
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    pipeline_module = (ROOT / "pipelines" / "globe_pipeline.py").read_text()
    for key in config["data"]:
        if key.startswith(("AWS_", "MLFLOW_")):
            assert key in pipeline_module, f"ConfigMap key {key} is not passed to pipeline steps"
    secret = next(d for d in load_yaml_documents(ROOT / "manifests/templates/secrets.yaml") if d["metadata"]["name"] == settings.S3_SECRET)
    assert set(settings.S3_SECRET_ENV) == set(secret["stringData"])


def test_every_component_directory_has_a_component_and_readme():
    dirs = sorted(p for p in (ROOT / "components").iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert len(dirs) >= 9
    for d in dirs:
        assert (d / "component.py").is_file() and (d / "README.md").is_file(), d.name
        text = (d / "component.py").read_text()
        assert "install_kfp_package=False" in text and "from globe.pipeline import steps" in text, d.name


def _dataset(root: Path, ids: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    lines = []
    for rid in ids:
        (root / "images" / f"{rid}.png").write_bytes(rid.encode())
        lines.append(json.dumps({"id": rid, "image": f"images/{rid}.png"}))
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    (root / "world.json").write_text("{}")
    return root


def test_shards_partition_and_merge_restores_the_dataset(tmp_path):
    ids = [f"r{i:02d}" for i in range(7)]
    src = _dataset(tmp_path / "src", ids)
    counts = [steps.shard_dataset(src, tmp_path / f"s{k}", k, 3) for k in range(3)]
    assert counts == [3, 2, 2]
    assert sorted((tmp_path / "s1" / "images").iterdir())[0].name == "r01.png"
    assert (tmp_path / "s2" / "world.json").is_file()
    assert steps.merge_datasets([tmp_path / f"s{k}" for k in (2, 0, 1)], tmp_path / "merged") == 7
    merged = [json.loads(line)["id"] for line in (tmp_path / "merged" / "records.jsonl").read_text().splitlines()]
    assert merged == ids
    assert len(list((tmp_path / "merged" / "images").iterdir())) == 7
    with pytest.raises(steps.StepError, match="more than one shard"):
        steps.merge_datasets([tmp_path / "s0", tmp_path / "s0"], tmp_path / "dup")
    with pytest.raises(steps.StepError, match="shard 3 is outside"):
        steps.shard_dataset(src, tmp_path / "bad", 3, 3)
    with pytest.raises(steps.StepError, match="no records.jsonl"):
        steps.shard_dataset(tmp_path / "s9", tmp_path / "bad", 0, 1)


def test_step_params_are_validated_and_preset_free(tmp_path):
    groups = resolved_groups(load_params(ROOT / "params.yaml"))
    path = steps.write_params({"base": groups["base"], "synth": groups["synth"]}, tmp_path / "p.yaml")
    assert yaml.safe_load(path.read_text())["base"]["preset"] is None
    assert load_params(path).synth.n == groups["synth"]["n"]
    with pytest.raises(ConfigError, match="synth.n"):
        steps.write_params({"synth": {"n": "many"}}, tmp_path / "bad.yaml")


def test_submit_to_an_unreachable_host_is_a_clear_error():
    from globe.pipeline.submit import submit

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(PipelineError, match=f"127.0.0.1:{port}"):
        submit(load_params(ROOT / "params.yaml"), f"http://127.0.0.1:{port}")


def test_training_stages_on_the_workspace_only_where_it_is_mounted(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOBE_WORKSPACE", str(tmp_path / "not-mounted"))
    assert steps.staging_dir("sft", tmp_path / "out", "run-1") == (tmp_path / "out", False)
    assert not (tmp_path / "not-mounted").exists()  # kfp.local passes the env var too: never create it
    (tmp_path / "pvc").mkdir()
    monkeypatch.setenv("GLOBE_WORKSPACE", str(tmp_path / "pvc"))
    assert steps.staging_dir("sft", tmp_path / "out", "run-1") == (tmp_path / "pvc" / "runs" / "run-1" / "sft", True)
    assert steps.staging_dir("sft", tmp_path / "out", None) == (tmp_path / "out", False)
