"""One validated configuration for every stage.

`params.yaml` follows iterative's example-get-started: a `base:` group plus one group per stage.
Presets (`tiny-cpu`, `qwen2.5-vl-7b-8gpu`, ...) are named partial configs under `presets:`, data,
not code. One precedence decides every value, lowest first:

    built-in defaults  <  preset  <  params.yaml  <  --set KEY=VALUE

`preset` is `base.preset` (what params.yaml names): it fills only what params.yaml leaves unset,
so a value written in params.yaml (what `dvc exp run -S grpo.learning_rate=3e-4` writes) is the
value that runs. A preset chosen on the command line (`--preset NAME`, or `--set base.preset=NAME`)
is a command-line choice like `--set`: it takes the place of base.preset and sits above
params.yaml, below `--set`. `--set` values are parsed as YAML, so `--set grpo.lr=1e-5` is a float
and `--set distill.teachers='[{name: t1, kind: openai}]'` a list. `resolve_params` also says where
each value came from (`globe config show`).

Every group model forbids unknown keys: a typo in params.yaml is an error that names the file
and the field, not a silently ignored setting; `<stage>.extra` may not shadow a modelled field.

YAML anchors and aliases are allowed (presets share blocks), but a file is refused before it is
built into Python objects when its aliases would expand it beyond `MAX_YAML_NODES` nodes (a
"billion laughs" of a few hundred bytes otherwise runs out of memory in validation) or refer to
themselves. Error messages quote at most a short excerpt of a wrong value.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from globe.engines.base import MAX_NEW_TOKENS
from globe.engines.kinds import ENGINE_KINDS, EVAL_KINDS
from globe.images import MAX_SIDE

# The kinds come from the one table of engines (globe/engines/kinds.py), not from a copy here.
EngineKind = Literal[tuple(ENGINE_KINDS)]  # type: ignore[valid-type]
EvalKind = Literal[EVAL_KINDS]  # type: ignore[valid-type]  # the engines, plus a served globe predictor


MAX_YAML_NODES = 100_000  # nodes after alias expansion; params.yaml has ~1,000
MAX_YAML_ALIASES = 1_000
EXCERPT_CHARS = 120  # of a wrong value, in an error message


class BoundedYAMLLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a document whose aliases expand it beyond `MAX_YAML_NODES`
    nodes, that uses more than `MAX_YAML_ALIASES` aliases, or whose aliases refer to themselves.

    The check walks the composed node graph once (sizes memoised per node), before any object is
    constructed, so a bomb is refused in milliseconds whatever it would expand to.
    """

    def compose_node(self, parent, index):  # noqa: ANN001
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (*name) in one document; refused")
        return super().compose_node(parent, index)

    def get_single_node(self):  # noqa: ANN201
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in `root` with every alias expanded, or YAMLError beyond MAX_YAML_NODES / on a cycle."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_YAML_NODES:
                raise yaml.YAMLError(f"aliases expand this document beyond {MAX_YAML_NODES} nodes; refused (a YAML bomb?)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise yaml.YAMLError("an alias refers to a node that contains it (a recursive structure); refused")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def safe_load(text: str) -> Any:
    """yaml.safe_load with the alias bounds of `BoundedYAMLLoader`; a value PyYAML cannot build (a
    date such as 2001-13-45) or nesting too deep for its recursive parser is a YAMLError too."""
    try:
        return yaml.load(text, Loader=BoundedYAMLLoader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply (thousands of levels); refused") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise yaml.YAMLError(f"a value cannot be read ({type(exc).__name__}: {excerpt(str(exc))})") from None


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """repr(value), cut to about `limit` characters with the full length said."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class BaseGroup(Group):
    seed: int = 42
    data_dir: str = "data"
    results_dir: str = "results"
    preset: str | None = Field(None, description="the preset (under `presets:`) that fills what params.yaml leaves unset")


class RenderingGroup(Group):
    """How GeoScenes photographs a scene (`globe.tiny.geoscenes.Rendering` documents each knob)."""

    colour_cast: float = Field(0.0, ge=0.0, lt=1.0, description="per-channel colour gain drawn in [1-c, 1+c] per image")
    flag_occlusion: float = Field(0.0, ge=0.0, le=1.0, description="share of scenes with one flag stripe hidden by foliage")
    landmark_shift: float = Field(0.04, ge=0.0, le=0.2, description="landmark horizontal jitter, fraction of the side")
    brightness: float = Field(0.06, ge=0.0, lt=1.0, description="global brightness jitter")
    noise_sigma: float = Field(6.0, ge=0.0, description="pixel noise standard deviation (0-255)")
    clutter: tuple[int, int] = Field((2, 6), description="clutter boxes per scene: [low, high) ")

    def look(self):
        from globe.tiny.geoscenes import Rendering

        return Rendering(**self.model_dump())


class SynthGroup(Group):
    n: int = Field(480, ge=1, description="number of GeoScenes images")
    seed: int = 0
    image_size: int = Field(112, ge=28)
    non_localizable_share: float = Field(0.1, ge=0.0, le=1.0)
    countries: list[str] | None = Field(None, description="ISO alpha-2 codes to draw from; None = the built-in tiny world")
    test_share: float = Field(0.2, ge=0.0, le=1.0, description="share of images in the test split (1.0 = a held-out set)")
    cities_per_country: int = Field(3, ge=1, le=6, description="largest cities per country; one landmark shape each")
    rendering: "RenderingGroup" = Field(default_factory=lambda: RenderingGroup())


class HeldoutGroup(Group):
    """The test sets every model is scored on (`globe data heldout`): GeoScenes drawn from a seed that
    training never sees, all localizable (the filters clean training data, not the test set), in
    the training world's rendering and in a shifted one (renderings training never saw)."""

    n: int = Field(400, ge=1, description="images in the in-domain held-out set")
    seed: int = Field(1000, description="must differ from synth.seed")
    shifted_n: int = Field(400, ge=1, description="images in the shifted set")
    shifted: RenderingGroup = Field(
        default_factory=lambda: RenderingGroup(), description="rendering of the shifted set (merged over synth.rendering)"
    )


IMPORT_FORMATS = ("im2gps3k", "yfcc4k", "mp16", "osv5m", "exif-folder")
ImportFormat = Literal["im2gps3k", "yfcc4k", "mp16", "osv5m", "exif-folder"]


def _check_photo_spec(group: str, fmt: str | None, csv: str | None, images: str | None) -> None:
    """Which of csv/images a format needs: a CSV layout needs both, an EXIF folder only images,
    and `geoscenes`/none neither (a value there would be silently ignored, so it is an error)."""
    if fmt in (None, "geoscenes"):
        given = [name for name, value in (("csv", csv), ("images", images)) if value]
        if given:
            raise ValueError(f"{group}.format is {fmt or 'unset'}: {' and '.join(given)} would be ignored; "
                             f"set {group}.format to one of {', '.join(IMPORT_FORMATS)} or remove them")
        return
    if not images:
        raise ValueError(f"{group}.format {fmt} needs {group}.images (a folder or s3:// prefix of the photos)")
    if fmt == "exif-folder" and csv:
        raise ValueError(f"{group}.format exif-folder reads GPS from the photos' EXIF: remove {group}.csv")
    if fmt != "exif-folder" and not csv:
        raise ValueError(f"{group}.format {fmt} needs {group}.csv (the ground-truth CSV, a path or s3:// URI)")


class SourceGroup(Group):
    """Where the training photos come from: the tiny world, or geotagged photos to import.

    `geoscenes` synthesizes them (the `synth` group). Any other format imports a ground-truth CSV
    plus an image folder (or EXIF-GPS photos), each a local path or an `s3://` URI, through
    `globe.data.ingest`; the import splits the records train/test by a hash of their id."""

    format: Literal["geoscenes", "im2gps3k", "yfcc4k", "mp16", "osv5m", "exif-folder"] = Field(
        "geoscenes", description="geoscenes (the tiny world) or an import format"
    )
    csv: str | None = Field(None, description="ground-truth CSV: a local path or s3://bucket/key")
    images: str | None = Field(None, description="image folder: a local path or s3://bucket/prefix/")
    max_side: int = Field(1024, ge=28, description="imported images are stored with at most this long side (px)")
    test_share: float = Field(0.2, ge=0.0, lt=1.0, description="imports only: share of records in the test split")

    @model_validator(mode="after")
    def _spec(self) -> "SourceGroup":
        _check_photo_spec("source", self.format, self.csv, self.images)
        return self


class BenchmarkGroup(Group):
    """An optional benchmark the trained model is evaluated on besides the verified test split:
    imported like a source (every record in the test split); `format: null` = none."""

    format: ImportFormat | None = Field(None, description="benchmark format; null = no benchmark")
    csv: str | None = Field(None, description="ground-truth CSV: a local path or s3://bucket/key")
    images: str | None = Field(None, description="image folder: a local path or s3://bucket/prefix/")
    max_side: int = Field(1024, ge=28)

    @model_validator(mode="after")
    def _spec(self) -> "BenchmarkGroup":
        _check_photo_spec("benchmark", self.format, self.csv, self.images)
        return self


class TeacherConfig(Group):
    name: str
    kind: EngineKind = "openai"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_tokens: int = 512
    temperature: float = 0.7
    noise: float = Field(0.0, ge=0.0, le=1.0, description="scene-reader teachers only: share of misread cues")
    city_bias: float = Field(
        0.0, ge=0.0, le=1.0,
        description="scene-reader teachers only: share of images whose city is concluded as the country's "
        "best-known one (a popularity prior shared by all teachers; the cues are still read right)",
    )
    omit_landmark: float = Field(
        0.0, ge=0.0, le=1.0,
        description="scene-reader teachers only: share of reasonings that leave the decisive cue (the landmark, "
        "which names the city) out while the answer still names the city",
    )
    closer_look: float = Field(
        0.0, ge=0.0, le=1.0,
        description="scene-reader teachers only: share of images with leaves over most of a flag stripe whose "
        "flag is read where the leaves end, and the reasoning says so (the same images for every teacher); "
        "the others read the leaves",
    )


class DistillGroup(Group):
    teachers: list[TeacherConfig] = Field(default_factory=list)
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0)


class VerifyGroup(Group):
    max_km: float = Field(750.0, gt=0, description="a teacher's place must lie within this of the ground truth")
    min_teacher_agreement: float = Field(
        0.5, ge=0.0, le=1.0, description="share of the other teachers that must agree with the chosen one"
    )
    grounding_min_share: float = Field(
        1.0, ge=0.0, le=1.0, description="share of the entities named in the reasoning that must be in the image"
    )
    grounding_judge: TeacherConfig | None = Field(
        None, description="engine asked yes/no per entity for real photos (GeoScenes are checked exactly)"
    )


REWARD_NAMES = ("accuracy", "format", "grounding", "localizability", "geodesic", "consistency", "reasoning_accuracy",
                "supported_accuracy", "coherence")  # globe.rewards.recipe


class RewardsGroup(Group):
    weights: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 1.0, "localizability": 0.5, "grounding": 0.2, "format": 1.0},
        description=f"reward -> weight; rewards: {', '.join(REWARD_NAMES)}",
    )
    max_failure_share: float = Field(0.2, ge=0.0, le=1.0, description="abort when more judge calls than this fail")
    min_judge_calls: int = Field(32, ge=1, description="judge calls before max_failure_share may abort the run")
    geodesic_scale_km: float = Field(750.0, gt=0, description="geodesic reward = exp(-error_km / geodesic_scale_km)")

    @field_validator("weights")
    @classmethod
    def _known_rewards(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = [name for name in weights if name not in REWARD_NAMES]
        if unknown:
            raise ValueError(f"unknown reward {unknown[0]!r} (known: {', '.join(REWARD_NAMES)})")
        return weights


class TrainGroup(Group):
    """Shared by sft, reward_model and grpo; each stage has its own instance.

    The names follow transformers' TrainingArguments so that `globe train ... --dry-run` output maps
    one-to-one onto the TRL config; anything not modelled here goes through `extra`.
    """

    model: str | None = Field(None, description="model directory or hub id; --model overrides it")
    learning_rate: float = Field(1e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    per_device_train_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_processes: int | None = Field(
        None, ge=1,
        description="the world size (GPUs x nodes) this config is planned for: --dry-run validates against it, and a "
        "run whose launch (WORLD_SIZE) differs stops before loading weights; None = whatever the launch gives",
    )
    dist_timeout_s: int = Field(
        900, ge=10,
        description="timeout of the process group's collectives (gloo/NCCL, DeepSpeed's too): a rank that died or "
        "hangs makes the others fail after at most this, instead of transformers' 30 minutes (on GPUs rank 0 writing "
        "a 7B checkpoint keeps the others waiting for minutes, so not much less)",
    )
    warmup_steps: float = Field(0.0, ge=0, description="steps, or a share of all steps when < 1")
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(100, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    bf16: bool = False
    use_cpu: bool = True
    gradient_checkpointing: bool = False
    freeze_vision: bool = Field(False, description="freeze the vision tower (the paper's freeze_vit)")
    deepspeed: str | None = Field(None, description="zero2 | zero3 | zero3_offload (shipped JSONs) or a JSON path")
    lora: bool = False
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_target_modules: str | list[str] = "all-linear"
    max_length: int | None = Field(512, ge=16)
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch; the tiny model trains ~5x faster on 1 (its matrices are too small to split)"
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="passed through to the TRL config")


class SFTGroup(TrainGroup):
    counterfactual_traces: float = Field(
        0.0, ge=0.0, le=1.0,
        description="share of extra traces whose reasoning names another city of the same country and whose answer "
        "follows it, trained on the answer only, so that the answer learns to read the reasoning "
        "(globe/train/counterfactual.py); 0 = the paper's SFT",
    )
    counterfactual_scope: Literal["country", "world"] = Field(
        "country",
        description="where a counterfactual trace's city comes from: another city of the same country, or a city "
        "of another country with the rest of the reasoning left as it was (an incoherent reasoning, as a misread "
        "landmark gives; the answer follows the city); needs counterfactual_traces > 0",
    )
    follows_target: float = Field(
        0.0, ge=0.0, le=1.0,
        description="end SFT once the answer follows a forced counterfactual reasoning at least this often on the "
        "data's test split, probed every follows_every steps from follows_min_steps, with a decay of "
        "follows_decay_steps (globe/train/follows.py); max_steps is then the ceiling. 0 = train max_steps (the paper)",
    )
    follows_every: int = Field(300, ge=1, description="optimizer steps between two probes of the follows gate")
    follows_min_steps: int = Field(0, ge=0, description="the follows gate probes from this step on")
    follows_decay_steps: int = Field(
        300, ge=0, description="once the follows gate is met, the learning rate falls linearly to 0 over this many "
        "steps before SFT stops (0 = stop at once, with the schedule where it was)",
    )

    @model_validator(mode="after")
    def _scope_needs_traces(self) -> "SFTGroup":
        if self.counterfactual_scope != "country" and self.counterfactual_traces <= 0:
            raise ValueError(f"counterfactual_scope {self.counterfactual_scope!r} draws the city of counterfactual "
                             "traces, and counterfactual_traces is 0 (none are made): set both, or leave the scope")
        return self


class GRPOGroup(TrainGroup):
    num_generations: int = Field(4, ge=2)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.001, ge=0)
    max_completion_length: int = Field(64, ge=1)
    reward_model: str | None = Field(None, description="localizability judge checkpoint; --reward-model overrides")
    skip_flat_groups: str | None = Field(
        None, description="a reward (e.g. accuracy): groups in which it is the same for every completion get zero "
        "advantage, so the other rewards' small differences there cannot steer the policy (DAPO's dynamic sampling, "
        "as a mask); None = every group trains (the paper)",
    )
    split_advantage: bool = Field(
        False, description="credit the reasoning's tokens with the rewards that read the reasoning and the answer's "
        "tokens with those that read the answer (globe/train/split_advantage.py); False = one advantage per "
        "completion (the paper)",
    )
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    vllm_tensor_parallel_size: int = Field(1, ge=1)
    vllm_max_model_length: int | None = Field(None, ge=1)
    vllm_enable_sleep_mode: bool = False
    vllm_server_base_url: str | None = Field(None, description="server mode: e.g. http://vllm:8000 (from config)")


# Consensus decoding (globe/consensus.py): one default for evaluation and serving alike. 0.5, below
# the 1.0 of GRPO rollouts: each sample must stay nearly as good as greedy (a plurality of worse
# samples is worse), yet the samples must still disagree where the model is unsure, or the
# confidence cannot rank. On a dev split (400 held-out GeoScenes of seed 3000, not the test set;
# docs/eval.md, "Consensus") the tiny GRPO model's consensus of 8 lost 0.8 / 1.8 / 3.3 / 5.2 pt
# acc_25km to greedy at T = 0.3 / 0.5 / 0.7 / 1.0 while the SFT model's went -1.0 / -0.8 / +1.0 /
# +2.5; the most confident half was +8 / +13 / +16 / +16 pt (GRPO) and +7 / +15 / +12 / +11 (SFT)
# above all answers. 0.5 is the compromise: neither model's delta is significant there, both rank.
SAMPLE_TEMPERATURE = 0.5
SAMPLE_TOP_P = 1.0  # a nucleus cut would drop the minority answers that the confidence counts
MAX_SAMPLES = 64  # the most samples any setting may ask for (cost grows linearly in N)
# The consensus settings evaluation and serving share (EvalGroup, ServeGroup): one definition each.
SampleTemperature = Annotated[float, Field(gt=0.0, le=2.0, description="temperature of consensus samples")]
SampleTopP = Annotated[float, Field(gt=0.0, le=1.0, description="nucleus (top-p) of consensus samples")]
CalibrationPath = Annotated[str | None, Field(description="calibration.json from `globe eval calibrate` (a consensus run "
                                              "on a labelled dev split, never the test set); None = confidence is the raw agreement")]


class EvalGroup(Group):
    benchmark: str = Field("geoscenes", description="im2gps3k | yfcc4k | mp16 | osv5m | geoscenes")
    engine: EvalKind = Field(
        "local", description="local model dir, OpenAI-compatible endpoint, a served globe predictor (V1), "
        "or the GeoScenes cue reader (a reference ceiling in the tiny world)"
    )
    base_url: str | None = Field(None, description="endpoint of the openai / globe-predictor engines")
    concurrency: int = Field(8, ge=1, description="requests in flight for the HTTP engines")
    limit: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(
        MAX_NEW_TOKENS, ge=1, description="for the engines; a served globe predictor decodes with its own serve group "
        "(run.json records what it reports)",
    )
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy, as in the paper's evaluation")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0 = none)")
    gallery_size: int = Field(24, ge=0, description="images shown in report.html")
    samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="reasonings sampled per image; 1 = one answer at "
                         "`temperature` (greedy), N > 1 = consensus of N at `sample_temperature` with a confidence")
    sample_temperature: SampleTemperature = SAMPLE_TEMPERATURE
    sample_top_p: SampleTopP = SAMPLE_TOP_P
    calibration: CalibrationPath = None
    grounding_judge: TeacherConfig | None = Field(
        None, description="a judge Engine (as verify.grounding_judge) that scores the cue precision of real photos' "
        "reasonings; GeoScenes rows are scored exactly without one",
    )


class RegisterGroup(Group):
    model_name: str = "globe"
    metric: str = Field("acc_25km", description="evaluation metric that gates promotion")
    higher_is_better: bool = True
    min_improvement: float = Field(0.0, ge=0.0, description="challenger must beat champion by more than this")
    min_value: float | None = Field(
        None, allow_inf_nan=False,
        description="promotion floor: a challenger whose metric is below it (above it when lower is better) "
        "is never promoted, first model or not; None = no floor",
    )
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; None = $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = "globe"
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"


    @model_validator(mode="after")
    def _floor_in_the_metric_range(self) -> "RegisterGroup":
        """A share metric (acc_25km, country_acc, ...) lies in [0, 1]: a floor outside it would
        either promote everything or nothing, which is never what was meant."""
        share = self.metric.startswith("acc_") or self.metric.endswith(("_acc", "_acc_string", "_acc_alias"))
        if share and self.min_value is not None and not 0.0 <= self.min_value <= 1.0:
            raise ValueError(f"min_value {self.min_value:g} is outside [0, 1], the range of metric {self.metric!r}")
        return self


class ServeGroup(Group):
    engine: Literal["local", "openai"] = "local"
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint for engine=openai (vLLM, KServe HF runtime)")
    model: str | None = Field(None, description="checkpoint dir, s3:// URI or models:/NAME@ALIAS; for engine=openai the served model name")
    device: str = "auto"
    torch_threads: int | None = Field(
        None, ge=1, description="intra-op CPU threads for engine=local; set to the pod's CPU limit (None = torch default)"
    )
    seed: int = 0
    judge: str | None = Field(None, description="localizability judge: a model URI, 'self' for the served model, None = off")
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(3, ge=0)
    max_batch_size: int = Field(8, ge=1)
    max_latency_ms: float = Field(10.0, ge=0)
    max_instances: int = Field(64, ge=1, description="images in one request")
    max_image_pixels: int = Field(40_000_000, ge=1, description="width x height of one image, read from its header")
    max_request_pixels: int = Field(
        256_000_000, ge=1, description="width x height of all images of one request together (HTTP 413 above)"
    )
    image_max_side: int = Field(
        MAX_SIDE, ge=28, description="long side images are reduced to before the model sees them (as `globe data import` stores them)"
    )
    decode_threads: int = Field(2, ge=1, description="images decoded at once across all requests (each holds one full-size image)")
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="request body, and each fetched image_url (HTTP 413 above)")
    url_allowlist: list[str] = Field(default_factory=list, description="URL prefixes image_url may point to; empty = URLs off")
    url_timeout_s: float = Field(10.0, gt=0, description="deadline for one whole image_url fetch")
    header_timeout_s: float = Field(10.0, gt=0, description="a connection must send its request headers within this (then 408)")
    body_timeout_s: float = Field(30.0, gt=0, description="the whole request body must arrive within this (then 408)")
    write_timeout_s: float = Field(30.0, gt=0, description="a client that stops reading its response for this long is disconnected")
    max_connections: int = Field(128, ge=1, description="open connections at once; requests beyond get HTTP 503")
    model_management: bool = Field(False, description="expose KServe's V2 repository API (model load/unload); "
                                   "then only with the bearer token in $management_token_env")
    management_token_env: str = Field("GLOBE_MANAGEMENT_TOKEN", description="environment variable holding the model-management token")
    max_new_tokens: int = Field(MAX_NEW_TOKENS, ge=1, description="every answer (greedy, and each consensus sample) is decoded up to this")
    max_samples: int = Field(8, ge=1, le=MAX_SAMPLES, description="largest `samples` a request may ask for "
                             "(consensus answers; 1 = off); a batch of B images costs up to B x max_samples sequences")
    sample_temperature: SampleTemperature = SAMPLE_TEMPERATURE
    sample_top_p: SampleTopP = SAMPLE_TOP_P
    calibration: CalibrationPath = None
    demo: bool = Field(True, description="serve the demo page at /demo (a browser at / is sent there): a photo in, the "
                       "reasoning, answer, candidates and map out, through the public V1 API and its limits; false = 404")


# TRL argument names the training plan (globe/train/plan.py) fills from a modelled setting, or from
# the command line, under another name: `extra` may not set them either.
TRL_NAMES = {
    "num_train_epochs": "{stage}.epochs",
    "activation_checkpointing": "{stage}.gradient_checkpointing",
    "seed": "base.seed",
    "data_seed": "base.seed",
    "output_dir": "the command's --out",
    "run_name": "nothing (globe names the run after the stage)",
}


def _modelled_name(group: type[BaseModel], key: str, stage: str) -> str | None:
    """The setting to use instead of `<stage>.extra.<key>`, or None when `key` is not modelled."""
    if key in group.model_fields and key != "extra":
        return f"{stage}.{key}"
    if key in TRL_NAMES:
        return TRL_NAMES[key].format(stage=stage)
    return None


warnings.filterwarnings("ignore", message='Field name "register" in "Params" shadows', category=UserWarning)


class Params(Group):
    base: BaseGroup = Field(default_factory=BaseGroup)
    source: SourceGroup = Field(default_factory=SourceGroup)
    synth: SynthGroup = Field(default_factory=SynthGroup)
    heldout: HeldoutGroup = Field(default_factory=HeldoutGroup)
    distill: DistillGroup = Field(default_factory=DistillGroup)
    verify: VerifyGroup = Field(default_factory=VerifyGroup)
    rewards: RewardsGroup = Field(default_factory=RewardsGroup)
    sft: SFTGroup = Field(default_factory=SFTGroup)
    reward_model: TrainGroup = Field(default_factory=lambda: TrainGroup(lora=True))
    grpo: GRPOGroup = Field(default_factory=GRPOGroup)
    eval: EvalGroup = Field(default_factory=EvalGroup)
    benchmark: BenchmarkGroup = Field(default_factory=BenchmarkGroup)
    register: RegisterGroup = Field(default_factory=RegisterGroup)
    serve: ServeGroup = Field(default_factory=ServeGroup)
    presets: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _extra_shadows_nothing(self) -> "Params":
        """`<stage>.extra` passes keys to the TRL config that the group does not model; a key the group
        does model (or one the plan sets from a modelled field) would silently win over it."""
        for stage in ("sft", "reward_model", "grpo"):
            group = getattr(self, stage)
            for key in group.extra:
                instead = _modelled_name(type(group), key, stage)
                if instead:
                    raise ValueError(f"{stage}.extra.{key} shadows a modelled setting: set {instead} instead "
                                     f"(and remove {stage}.extra.{key})")
        return self

    @model_validator(mode="after")
    def _heldout_is_unseen(self) -> "Params":
        if self.synth.seed in (self.heldout.seed, self.heldout.seed + 1):  # +1: the shifted set
            raise ValueError(
                f"heldout.seed ({self.heldout.seed}, and {self.heldout.seed + 1} for the shifted set) must differ from "
                f"synth.seed ({self.synth.seed}): the held-out images come from a seed that training never sees"
            )
        return self


class ConfigError(ValueError):
    """A params file or override that does not validate; the message names file and field."""


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `over` merged in; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> dict[str, Any]:
    """`a.b.c=VALUE` -> {"a": {"b": {"c": yaml(VALUE)}}}."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. grpo.learning_rate=1e-5")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {excerpt(item)}: value is not valid YAML: {exc}") from exc
    node: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        node = {part: node}
    return node


def _format_validation(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if not loc:  # a check across groups: the message names the fields, the input is the whole file
            lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
            continue
        loc = loc if len(loc) <= EXCERPT_CHARS else f"{loc[:EXCERPT_CHARS]}..."
        lines.append(f"  {loc}: {err['msg']} (got {excerpt(err.get('input'))})")
    return "\n".join(lines)


def _read_params_file(path: str | Path | None) -> tuple[dict[str, Any], str]:
    """The file's tree (empty when `path` is None or absent) and the name to cite in errors."""
    if path is None or not Path(path).exists():
        return {}, "defaults"
    try:
        loaded = safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of groups at the top level, got {type(loaded).__name__}")
    return loaded, str(path)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists and scalars are leaves, so is an empty mapping."""
    if not isinstance(tree, dict) or (not tree and prefix):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _without_presets(tree: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in tree.items() if key != "presets"}


DEFAULT_SOURCE = "default"

# The settings each job resolves (groups or dotted leaves), named as the dvc.yaml stages are: the
# `config` stage writes each job's resolved values to results/config/<stage>.yaml, and that stage
# depends on its file, so a change that alters what a stage runs with reruns it and nothing else.
# `globe config show --stage NAME` prints the same selection.
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "data": ("base.seed", "source", "synth"),
    "distill": ("distill",),
    "verify": ("verify",),
    "heldout": ("source", "synth", "heldout"),  # globe.data.heldout: the source says which sets there are
    "base-model": ("base.seed",),
    "sft": ("base.seed", "sft"),
    "reward-model": ("base.seed", "reward_model"),
    "grpo": ("base.seed", "grpo", "rewards"),
    "evaluate": ("source.format", "eval"),  # source.format: which held-out splits are scored
    "register": ("register",),
    "serve": ("serve",),
}


@dataclass
class Resolved:
    """Validated params and where each value came from: `sources["grpo.learning_rate"]` is one of
    "default", "preset NAME", the params file ("params.yaml"), "--preset NAME" or "--set"."""

    params: "Params"
    sources: dict[str, str] = dc_field(default_factory=dict)

    def source(self, key: str) -> str:
        """The layer that set `key` (a dotted leaf); a key no layer names is a built-in default."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):  # a list value is one leaf: its items share its source
            found = self.sources.get(".".join(parts[:end]))
            if found:
                return found
        return DEFAULT_SOURCE

    def values(self, keys: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """Resolved values as a tree, all groups or only `keys` (groups or dotted leaves, e.g.
        `("base.seed", "grpo")`); `presets:` is never part of it."""
        dumped = self.params.model_dump(mode="json", exclude={"presets"})
        if keys is None:
            return dumped
        out: dict[str, Any] = {}
        for key in keys:
            node: Any = dumped
            for part in key.split("."):
                node = node[part]
            out = deep_merge(out, parse_tree(key, node))
        return out

    def table(self, keys: list[str] | tuple[str, ...] | None = None) -> list[tuple[str, Any, str]]:
        """(dotted key, value, source) for every resolved leaf (of `keys`, when given)."""
        return [(key, value, self.source(key)) for key, value in _leaves(self.values(keys)).items()]


RESOLVED_CONFIG = "resolved_config.yaml"  # what a training or evaluation run saves beside its outputs


def resolved_document(resolved: Resolved, keys: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """The values a run used (all groups, or `keys`) and the source of each."""
    return {
        "precedence": "default < preset < params.yaml < --preset < --set",
        "values": resolved.values(keys),
        "sources": {key: source for key, _, source in resolved.table(keys)},
    }


def write_resolved(resolved: Resolved, folder: str | Path, keys: tuple[str, ...] | list[str] | None = None) -> Path:
    """Save `folder/resolved_config.yaml` (`resolved_document`), so a result can be traced to the
    settings that made it."""
    from globe.io import atomic_write_text

    path = Path(folder) / RESOLVED_CONFIG
    atomic_write_text(path, yaml.safe_dump(resolved_document(resolved, keys), sort_keys=False, allow_unicode=True))
    return path


def parse_tree(key: str, value: Any) -> dict[str, Any]:
    """`("a.b", 1)` -> `{"a": {"b": 1}}`."""
    node: Any = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return node


def resolve_params(
    path: str | Path | None = "params.yaml",
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Resolved:
    """Read params.yaml (defaults when it is absent), layer it with its preset and the command
    line, validate, and record each value's source. The precedence, lowest first: built-in
    defaults < preset (base.preset) < params.yaml < --preset NAME < --set (module docstring)."""
    raw, source = _read_params_file(path)
    override_tree: dict[str, Any] = {}
    for item in overrides:
        override_tree = deep_merge(override_tree, parse_override(item))
    presets = deep_merge(raw.get("presets") or {}, override_tree.get("presets") or {})
    if not isinstance(presets, dict):
        raise ConfigError(f"{source}: presets must be a mapping of names to groups")
    command_line = preset or (override_tree.get("base") or {}).get("preset")
    name = command_line or (raw.get("base") or {}).get("preset")
    if name and name not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise ConfigError(f"{source}: unknown preset {name!r} (known: {known})")
    preset_tree = _without_presets(presets.get(name) or {}) if name else {}
    file_label = Path(path).name if source != "defaults" else source
    if command_line:
        layers = [(file_label, _without_presets(raw)), (f"--preset {name}", preset_tree)]
    else:
        layers = [(f"preset {name}", preset_tree), (file_label, _without_presets(raw))]
    layers.append(("--set", _without_presets(override_tree)))
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for label, tree in layers:
        merged = deep_merge(merged, tree)
        sources.update({key: label for key in _leaves(tree) if key})
    merged["presets"] = presets
    merged.setdefault("base", {})["preset"] = name or None
    if name:
        sources["base.preset"] = f"--preset {name}" if command_line else sources.get("base.preset", file_label)
    return Resolved(validate_params(merged, source), sources)


def load_params(
    path: str | Path | None = "params.yaml",
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Params:
    """Read params.yaml (defaults when it is absent) with its preset and `--set` overrides, in the
    one precedence of `resolve_params`: defaults < preset < params.yaml < --preset < --set."""
    return resolve_params(path, preset, overrides).params


def validate_params(tree: dict[str, Any], source: str = "parameters") -> Params:
    """Validate a tree of groups (a preset already applied) into Params, or a ConfigError naming
    `source` and each wrong field. KFP steps receive their groups this way, not as a file."""
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from exc


def params_from_groups(groups: dict[str, Any], source: str = "pipeline parameters") -> Params:
    """Params from resolved groups (what a KFP step is given): `base.preset` is cleared, because
    the preset was applied when the pipeline was compiled and re-applying it would override values
    the user set in the run's parameters."""
    tree = {name: dict(value or {}) for name, value in groups.items()}
    tree.setdefault("base", {})["preset"] = None
    return validate_params(tree, source)
