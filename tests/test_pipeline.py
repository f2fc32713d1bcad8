"""The KFP pipeline: the checked-in YAML matches the source, GPU steps carry their accelerator and
placement settings, parameters mirror params.yaml, the source check gates every step, side effects
are never cached, no component installs anything at run time or re-enters the CLI, no secret value
is compiled in, and the step helpers behave."""

from __future__ import annotations

import ast
import json
import re
import socket
from pathlib import Path

import pytest
import yaml

from globe.config import ConfigError, load_params
from globe.k8s.manifests import kustomize_build, load_yaml_documents, secret_leaks
from globe.data.shards import ShardError, merge_datasets, shard_dataset
from globe.kfp import settings, steps
from globe.kfp.build import PipelineError, compile_pipeline
from globe.kfp.steps import resolved_groups

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "pipelines" / "globe_pipeline.yaml"
GPU_EXECUTORS = ("exec-sft", "exec-reward-model", "exec-evaluate", "exec-evaluate-benchmark")


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
        # inside a dsl.If branch (the benchmark's evaluate) the parameter arrives as pipelinechannel--NAME
        assert pod["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"].endswith("gpu_node_selector")
        assert pod["tolerations"][0]["tolerationJson"]["componentInputParameter"].endswith("gpu_tolerations")
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


def test_import_and_distillation_fan_out_over_shards(ir):
    spec, _ = ir
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["for-loop-1"]["parameterIterator"]["items"]["inputParameter"].endswith("check-sources-Output")
    assert tasks["merge-imports"]["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == "for-loop-1"
    assert tasks["for-loop-2"]["parameterIterator"]["items"]["inputParameter"].endswith("shard-plan-Output")
    assert tasks["merge-shards"]["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == "for-loop-2"


def test_the_source_check_runs_before_any_other_step(ir):
    spec, _ = ir
    tasks = spec["root"]["dag"]["tasks"]
    roots = [name for name, task in tasks.items() if not task.get("dependentTasks")]
    assert roots == ["check-sources"]
    assert tasks["check-sources"]["cachingOptions"] == {}  # buckets and credentials change: always re-checked


def test_datasets_are_versioned_and_their_dvc_files_feed_the_lineage(ir):
    spec, _ = ir
    tasks = spec["root"]["dag"]["tasks"]
    produced = {tasks[t]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]["producerTask"]: t
                for t in ("version-dataset", "version-dataset-2", "version-dataset-3", "version-dataset-4")}
    assert set(produced) == {"merge-imports", "merge-shards", "verify", "heldout"}  # heldout: the gate's test set
    lineage = tasks["lineage"]["inputs"]
    assert {a["taskOutputArtifact"]["producerTask"] for a in lineage["artifacts"].values()} == set(produced.values())
    assert lineage["parameters"]["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert lineage["parameters"]["grpo_image"]["componentInputParameter"] == "grpo_image"
    for name in ("evaluate", "register"):
        assert tasks[name]["inputs"]["artifacts"]["lineage"]["taskOutputArtifact"]["producerTask"] == "lineage"
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["dvc_remote"]["defaultValue"] == settings.DVC_REMOTE
    assert settings.DVC_REMOTE in (ROOT / ".dvc" / "config").read_text()  # the repository's own remote


def test_the_benchmark_branch_is_conditional_and_attaches_to_the_registered_version(ir):
    spec, _ = ir
    tasks = spec["root"]["dag"]["tasks"]
    branch = next(t for t in tasks.values() if "benchmark-given-Output" in t.get("triggerPolicy", {}).get("condition", ""))
    inner = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"import-benchmark", "version-dataset-5", "evaluate-benchmark", "attach-benchmark"}
    assert inner["attach-benchmark"]["inputs"]["parameters"]["version"]["componentInputParameter"].endswith("register-version")
    assert inner["attach-benchmark"]["cachingOptions"] == {}


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
    assert tasks["verify"]["cachingOptions"] == {"enableCache": True}
    condition = next(t for t in tasks.values() if "pipelinechannel--deploy" in t.get("triggerPolicy", {}).get("condition", ""))
    deploy = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]["deploy"]
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
    pipeline_module = (ROOT / "globe" / "kfp" / "pipeline.py").read_text()
    for key in config["data"]:
        if key.startswith(("AWS_", "MLFLOW_")):
            assert key in pipeline_module, f"ConfigMap key {key} is not passed to pipeline steps"
    secret = next(d for d in load_yaml_documents(ROOT / "manifests/templates/secrets.yaml") if d["metadata"]["name"] == settings.S3_SECRET)
    assert set(settings.S3_SECRET_ENV) == set(secret["stringData"])


def test_every_component_directory_has_a_component_and_readme():
    dirs = sorted(p for p in (ROOT / "globe" / "kfp" / "components").iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert len(dirs) >= 11
    for d in dirs:
        assert (d / "component.py").is_file() and (d / "README.md").is_file() and (d / "__init__.py").is_file(), d.name
        text = (d / "component.py").read_text()
        assert "install_kfp_package=False" in text and "from globe.kfp import steps" in text, d.name


def test_steps_call_the_library_in_process():
    """No subprocess, no CLI re-entry, no stdout parsing, no sys.path edits between KFP and globe."""
    sources = [ROOT / "globe" / "kfp" / "steps.py", ROOT / "globe" / "kfp" / "pipeline.py", ROOT / "globe" / "kfp" / "build.py",
               ROOT / "pipelines" / "globe_pipeline.py"]
    sources += sorted((ROOT / "globe" / "kfp" / "components").glob("*/component.py"))
    banned = {"subprocess", "globe.cli", "globe.commands", "importlib.util"}
    for path in sources:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                used = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                used = {node.module or ""}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                used = {f"{node.value.id}.{node.attr}"} & {"sys.path", "sys.stdout"}
            else:
                continue
            assert not used & (banned | {"sys.path", "sys.stdout"}), f"{path.relative_to(ROOT)}:{node.lineno} uses {used}"
    import globe.kfp.components.import_data.component as imported
    import globe.kfp.pipeline as definition
    import pipelines.globe_pipeline as front_end

    assert definition.check_sources is imported.check_sources  # plain packages, imported as such
    assert front_end.globe_pipeline.name == "globe"  # the front-end builds the library's DAG


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
    counts = [shard_dataset(src, tmp_path / f"s{k}", k, 3) for k in range(3)]
    assert counts == [3, 2, 2]
    assert sorted((tmp_path / "s1" / "images").iterdir())[0].name == "r01.png"
    assert (tmp_path / "s2" / "world.json").is_file()
    assert merge_datasets([tmp_path / f"s{k}" for k in (2, 0, 1)], tmp_path / "merged") == 7
    merged = [json.loads(line)["id"] for line in (tmp_path / "merged" / "records.jsonl").read_text().splitlines()]
    assert merged == ids
    assert len(list((tmp_path / "merged" / "images").iterdir())) == 7
    with pytest.raises(ShardError, match="more than one shard"):
        merge_datasets([tmp_path / "s0", tmp_path / "s0"], tmp_path / "dup")
    with pytest.raises(ShardError, match="shard 3 is outside"):
        shard_dataset(src, tmp_path / "bad", 3, 3)
    with pytest.raises(ShardError, match="no records.jsonl"):
        shard_dataset(tmp_path / "s9", tmp_path / "bad", 0, 1)


def test_step_params_are_validated_and_preset_free(tmp_path):
    groups = resolved_groups(load_params(ROOT / "params.yaml"))
    path = steps.write_params({"base": groups["base"], "synth": groups["synth"]}, tmp_path / "p.yaml")
    assert yaml.safe_load(path.read_text())["base"]["preset"] is None
    assert load_params(path).synth.n == groups["synth"]["n"]
    with pytest.raises(ConfigError, match="synth.n"):
        steps.write_params({"synth": {"n": "many"}}, tmp_path / "bad.yaml")
    assert steps.params_of({"base": groups["base"], "synth": groups["synth"]}).synth.n == groups["synth"]["n"]
    with pytest.raises(ConfigError, match="pipeline parameters: invalid configuration\n  source.format"):
        steps.params_of({"source": {"format": "flickr"}})


def test_submit_to_an_unreachable_host_is_a_clear_error():
    from globe.kfp.submit import submit

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


def _dvc_cmd_options(cmd: str) -> dict[str, list[str]]:
    """`--model a=b --split c=d ...` of a dvc.yaml command as {option: [values]}."""
    words = cmd.split()
    found: dict[str, list[str]] = {}
    for flag, value in zip(words, words[1:]):
        if flag.startswith("--") and not value.startswith("--"):
            found.setdefault(flag[2:], []).append(value)
    return found


def test_kfp_and_dvc_mean_the_same_evaluation_and_gate(ir):
    """One DAG meaning: `dvc repro` and the KFP pipeline both score the base, SFT and GRPO models on
    the same unverified held-out sets (made by one rule, globe.data.heldout, through `globe data
    heldout` and globe.kfp.steps.heldout_sets, from the source as imported: an imported source's test
    split, or GeoScenes in the tiny world; never the verified training data),
    with the same paired comparison, and gate promotion on register.metric of the same run
    (in_domain/grpo). Each side is read from what it runs (dvc.yaml's commands, the compiled IR) and
    mapped to the stage that makes each input, so a change to either DAG alone fails here."""
    from globe.evaluate.suite import COMPARISON, GATED, MODELS

    spec, _ = ir
    tasks = spec["root"]["dag"]["tasks"]

    def producer(task: str, artifact: str) -> tuple[str, str]:
        ref = tasks[task]["inputs"]["artifacts"][artifact]["taskOutputArtifact"]
        return ref["producerTask"], ref["outputArtifactKey"]

    def constant(task: str, name: str) -> str:
        return tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constant"]

    # --- DVC: each evaluated path -> the stage (and command) that writes it
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    written_by = {}
    for name, stage in stages.items():
        cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
        for out in stage.get("outs", []):
            path = next(iter(out)) if isinstance(out, dict) else out
            written_by[path] = (name, next((c for c in cmds if f"--out {path}" in c), cmds[0]))
    evaluate_opts = _dvc_cmd_options(stages["evaluate"]["cmd"])
    dvc_models = {n: written_by[p][0] for n, p in (m.split("=", 1) for m in evaluate_opts["model"])}
    dvc_splits = {n: written_by[p] for n, p in (m.split("=", 1) for m in evaluate_opts["split"])}
    register_opts = _dvc_cmd_options(" ".join(stages["register"]["cmd"]))
    suite_out = evaluate_opts["out"][0]
    gated_metrics = register_opts["metrics"][0]
    assert gated_metrics.startswith(suite_out + "/") and gated_metrics.endswith("/metrics.json")
    dvc_gated = tuple(gated_metrics[len(suite_out) + 1:-len("/metrics.json")].split("/"))
    dvc_registered = written_by[register_opts["model"][0]][0]
    assert "globe promote" in " ".join(stages["register"]["cmd"])
    assert not {"data/verified", "data/distilled"} & set(stages["heldout"]["deps"])

    # --- KFP: each input of the evaluate task -> the task that makes it
    kfp_models = {name.removesuffix("_model"): producer("evaluate", name)[0]
                  for name in tasks["evaluate"]["inputs"]["artifacts"] if name.endswith("_model")}
    kfp_splits = {"in_domain": producer("evaluate", "in_domain"), "shifted": producer("evaluate", "shifted")}
    kfp_gated = tuple(constant("register", "gated").split("/"))

    # the same models, each made by the same stage (the base model is what SFT and the reward model start from)
    assert list(dvc_models) == list(MODELS) and sorted(kfp_models) == sorted(MODELS)
    assert dvc_models == {"base": "base-model", "sft": "sft", "grpo": "grpo"}
    assert {n: t.removesuffix("-trainjob") for n, t in kfp_models.items()} == dvc_models
    assert producer("sft", "init_model")[0] == kfp_models["base"] and "--model models/base" in stages["sft"]["cmd"]
    # the same held-out splits: the heldout stage/step, the training rendering and the shifted one, not verified
    assert set(dvc_splits) == set(kfp_splits) == {"in_domain", "shifted"}
    assert {n: stage for n, (stage, _) in dvc_splits.items()} == {n: task for n, (task, _) in kfp_splits.items()} == \
        {"in_domain": "heldout", "shifted": "heldout"}
    assert "--shifted" in dvc_splits["shifted"][1] and "--shifted" not in dvc_splits["in_domain"][1]
    assert kfp_splits == {"in_domain": ("heldout", "test_set"), "shifted": ("heldout", "shifted")}
    assert producer("heldout", "dataset")[0] == "merge-imports"  # the source as imported, not verify's output
    # ... and dvc's heldout stage reads the same source (the data stage's import), settled by the same
    # settings: both commands get --data data/source, the stage depends on it and on the source group
    from globe.config import STAGE_SETTINGS
    from globe.data import heldout as rule

    heldout_data = {_dvc_cmd_options(c)["data"][0] for c in stages["heldout"]["cmd"]}
    assert len(heldout_data) == 1 and written_by[next(iter(heldout_data))][0] == "data"
    assert next(iter(heldout_data)) in stages["heldout"]["deps"] and "source" in STAGE_SETTINGS["heldout"]
    assert tasks["heldout"]["inputs"]["parameters"]["source"]["componentInputParameter"] == "source"
    assert steps.heldout_splits is rule.heldout_splits and steps.NO_SHIFTED_SET == rule.NO_SHIFTED_SET
    assert "source.format" in STAGE_SETTINGS["evaluate"]  # which splits evaluate scores depends on it
    # the same paired comparison (candidate:baseline)
    assert evaluate_opts["compare"] == [COMPARISON] == [constant("evaluate", "compare")]
    # the same gate: the GRPO model registered with the metrics of the same run, promoted by register.metric
    assert dvc_gated == kfp_gated == GATED
    assert dvc_registered == "grpo" and producer("register", "model")[0].startswith("grpo")
    assert producer("register", "evaluation") == ("evaluate", "evaluation")
    assert "register" in spec["root"]["inputDefinitions"]["parameters"]
    assert tasks["register"]["inputs"]["parameters"]["register"]["componentInputParameter"] == "register"


def test_the_evaluate_and_register_steps_run_the_suite_and_gate_on_its_run(tmp_path):
    """The KFP steps behind the DAG above, for real on the tiny world: `steps.heldout_sets` makes
    both splits, `steps.evaluate` writes results/evaluate/'s layout through evaluate_suite, and the
    gate reads the flat metrics of in_domain/grpo; wrong inputs fail with the missing piece named."""
    from globe.evaluate.suite import GATED, MODELS
    from globe.mlflow_registry import RegistryError, read_gate_metrics
    from globe.tiny.model import build_tiny

    groups = {"heldout": {"n": 4, "shifted_n": 4}, "synth": {"image_size": 56}, "eval": {"bootstrap": 20, "gallery_size": 2}}
    made = steps.heldout_sets(groups, tmp_path / "none", tmp_path / "in_domain", tmp_path / "shifted")
    assert made["in_domain"]["n"] == made["shifted"]["n"] == 4
    model = build_tiny(tmp_path / "tiny", seed=0)
    models = dict.fromkeys(MODELS, str(model))
    splits = {"in_domain": tmp_path / "in_domain", "shifted": tmp_path / "shifted"}
    out = tmp_path / "evaluation"
    metrics = steps.evaluate(groups, models, splits, out, compare="grpo:sft")
    assert set(metrics) == {"in_domain", "shifted"}
    assert set(metrics["in_domain"]) == {*MODELS, "grpo_vs_sft"} and "acc_25km" in metrics["in_domain"]["grpo_vs_sft"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert {"comparisons.json", "summary.md", "report.html"} <= {p.name for p in out.iterdir()}
    run = steps.gated_run(out, "/".join(GATED))
    assert run == out / "in_domain" / "grpo" and read_gate_metrics(run / "metrics.json", "acc_25km")["n"] == 4
    with pytest.raises(RegistryError, match="no top-level number 'acc_25km'.*in_domain/grpo/metrics.json"):
        read_gate_metrics(out / "metrics.json", "acc_25km")  # the nested headline is not what the gate reads
    with pytest.raises(steps.StepError, match="no run shifted/champion"):
        steps.gated_run(out, "shifted/champion")
    with pytest.raises(steps.StepError, match="no dataset for the held-out split.*shifted"):
        steps.evaluate(groups, models, {"in_domain": splits["in_domain"]}, tmp_path / "e2")
    with pytest.raises(steps.StepError, match="comparison 'grpo:rl'"):
        steps.evaluate(groups, models, splits, tmp_path / "e3", compare="grpo:rl")

    # an imported source: its test split only, and an empty shifted artifact that says why
    from globe.tiny.geoscenes import synthesize

    imported = tmp_path / "imported"
    synthesize(imported, n=8, seed=5, image_size=56, test_share=0.5)
    photo_groups = {"source": {"format": "exif-folder", "images": "s3://b/photos/"}}
    made = steps.heldout_sets(photo_groups, imported, tmp_path / "p_in", tmp_path / "p_shifted")
    assert set(made) == {"in_domain"} and (tmp_path / "p_shifted" / steps.NO_SHIFTED_SET).is_file()
    assert steps.heldout_splits(steps.params_of(photo_groups)) == ("in_domain",)


def test_the_heldout_step_draws_unseen_geoscenes_or_keeps_an_imports_test_split(tmp_path):
    from globe.data import read_records
    from globe.tiny.geoscenes import synthesize
    from globe.kfp import steps

    tiny = steps.heldout({"heldout": {"n": 6, "shifted_n": 6}, "synth": {"image_size": 56}}, tmp_path / "none", tmp_path / "h")
    assert tiny["n"] == 6 and {r.split for r in read_records(tmp_path / "h")} == {"test"}
    imported = tmp_path / "imported"
    synthesize(imported, n=12, seed=5, image_size=56, test_share=0.5)
    groups = {"source": {"format": "exif-folder", "images": "s3://b/photos/"}}
    kept = steps.heldout(groups, imported, tmp_path / "t")
    test_ids = {r.id for r in read_records(imported) if r.split == "test"}
    assert kept["n"] == len(test_ids) > 0 and {r.id for r in read_records(tmp_path / "t")} == test_ids
    assert all((tmp_path / "t" / r.image).is_file() for r in read_records(tmp_path / "t"))


def test_every_parameter_is_described_and_the_7b_preset_plans_its_gpus(ir, tmp_path):
    spec, _ = ir
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert all(p.get("description") for p in params.values()), [k for k, p in params.items() if not p.get("description")]
    assert params["gpus_per_node"]["defaultValue"] == 1  # the tiny world: one process
    out = compile_pipeline(load_params(ROOT / "params.yaml", preset="qwen2.5-vl-7b-8gpu"), tmp_path / "7b.yaml")
    spec7b = next(yaml.safe_load_all(out.read_text()))
    params7b = spec7b["root"]["inputDefinitions"]["parameters"]
    assert params7b["gpus_per_node"]["defaultValue"] == 8 and params7b["grpo_num_nodes"]["defaultValue"] == 1
    assert params7b["eval"]["defaultValue"]["max_new_tokens"] == params7b["serve"]["defaultValue"]["max_new_tokens"] == 1024
    # the serve group reaches the lineage, whose params the register step saves into the model (globe_serve.yaml)
    assert spec["root"]["dag"]["tasks"]["lineage"]["inputs"]["parameters"]["serve"]["componentInputParameter"] == "serve"
    assert all(t["kind"] == "openai" for t in params7b["distill"]["defaultValue"]["teachers"])


def test_the_image_registry_is_a_compile_option(tmp_path):
    from typer.testing import CliRunner

    from globe.cli import app

    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["pipeline", "compile", "--out", str(out), "--registry", "registry.example.com/ml/",
                                      "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert settings.REGISTRY not in text
    images = re.findall(r"^ +image: (\S+)$", text, flags=re.M)
    assert images and all(i.startswith("registry.example.com/ml/globe-") for i in images)
    bad = CliRunner().invoke(app, ["pipeline", "compile", "--out", str(out), "--registry", "a b"])
    assert bad.exit_code == 2 and "--registry" in bad.stderr
