"""Records -> the conversational datasets TRL's trainers expect, one builder per stage.

Every builder emits prompts as plain-string chat messages plus an `image` column: TRL inserts the
image in front of the first user message itself (`prepare_multimodal_messages`), which is also
where `LocalEngine` puts it, so the policy is trained on exactly the prompt it is evaluated and
served with. Images stay on disk until a batch needs them (the `datasets.Image` feature decodes
lazily); `s3://` images are fetched once, while the dataset is built.

- SFT: prompt (system + GEO_PROMPT) -> completion = the record's reference reasoning in GLOBE
  format; records without a reasoning, and non-localizable ones, teach nothing and are skipped.
- reward model: prompt = `localizability_prompt(reasoning)` -> completion "yes" / "no" from the
  record's `localizable` label (for imported photos: the teachers' judgment); non-localizable photos are also shown with a confident reasoning
  borrowed from another sample, so that the judge has to look at the image (see
  `reward_model_dataset`).
- GRPO: prompt + the columns the rewards read (country, city, lat, lon, entities, country_code).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from globe.data.records import Record, RecordsError, image_file, load_image, read_records, records_path
from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

JUDGE_CHOICES = ("yes", "no")


class TrainDataError(ValueError):
    """A dataset that cannot feed the requested stage; the message names the file and what is missing."""


def geo_messages() -> list[dict[str, str]]:
    """The policy prompt as chat messages (the image is added by TRL / the engine)."""
    return [{"role": "system", "content": GEO_SYSTEM}, {"role": "user", "content": GEO_PROMPT}]


def judge_messages(reasoning: str | None) -> list[dict[str, str]]:
    """The localizability judge's prompt as chat messages (no system prompt, like the engine's judge)."""
    return [{"role": "user", "content": localizability_prompt(reasoning)}]


def load_split(data_dir: str | Path, split: str | None = "train") -> list[Record]:
    """Records of one split (None = all); a missing or unreadable file is a TrainDataError."""
    try:
        records = read_records(data_dir)
    except RecordsError as exc:
        raise TrainDataError(str(exc)) from exc
    return [r for r in records if split is None or r.split == split]


def reference_completion(record: Record) -> str | None:
    """The SFT target: the reasoning as written when it carries its answer, else wrapped in GLOBE format."""
    from globe.answer import format_answer

    text = (record.reasoning or "").strip()
    if not text:
        return None
    if "<answer>" in text:
        return text
    think = text.removeprefix("<think>").split("</think>")[0]
    return format_answer(think, record.country, record.city, record.lat, record.lon)


def _image_cell(data_dir: Path, record: Record) -> dict[str, Any]:
    if record.image.startswith("s3://"):
        import io

        buf = io.BytesIO()
        load_image(data_dir, record).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}
    path = image_file(data_dir, record)
    if not path.is_file():
        raise TrainDataError(f"{records_path(data_dir)}: record {record.id}: image {path} does not exist")
    return {"bytes": None, "path": str(path)}


def _to_dataset(rows: list[dict[str, Any]]):
    import datasets

    dataset = datasets.Dataset.from_list(rows)
    return dataset.cast_column("image", datasets.Image(mode="RGB"))


def _require(rows: list, data_dir: str | Path, stage: str, need: str) -> None:
    if not rows:
        raise TrainDataError(f"{records_path(data_dir)}: no train-split record usable for {stage}: {need}")


def sft_targets(data_dir: str | Path, split: str | None = "train") -> list[tuple[Record, str]]:
    """(record, reference completion) for every record SFT learns from: it has a reasoning and is
    not labelled non-localizable. The one definition SFT's rows and the follows gate's probe share."""
    out = []
    for record in load_split(data_dir, split):
        target = reference_completion(record)
        if target is not None and record.localizable is not False:
            out.append((record, target))
    return out


def sft_dataset(data_dir: str | Path, split: str = "train", counterfactual: float = 0.0, seed: int = 0,
                scope: str = "country"):
    """prompt / completion / image rows for SFT (see module docstring).

    `counterfactual` > 0 repeats about that share of the rows flagged `answer_only`: the collator
    (`globe.train.counterfactual.AnswerOnlyCollator`) rewrites them into counterfactual traces, a
    fresh city each time, of the same country or (`scope` "world") of another. The column exists
    only then."""
    from globe.answer import parse

    data_dir = Path(data_dir)
    rows, thinks = [], []
    for record, target in sft_targets(data_dir, split):
        rows.append(
            {
                "prompt": geo_messages(),
                "completion": [{"role": "assistant", "content": target}],
                "image": _image_cell(data_dir, record),
            }
        )
        thinks.append(parse(target).think or "")
    _require(rows, data_dir, "sft", "each needs a `reasoning` and must not be localizable=false")
    if counterfactual > 0:
        from globe.train.counterfactual import counterfactual_rows

        extra = [dict(rows[i], answer_only=True) for i in counterfactual_rows(thinks, counterfactual, seed, scope)]
        rows = [dict(row, answer_only=False) for row in rows] + extra
    return _to_dataset(rows)


def reward_model_dataset(
    data_dir: str | Path,
    split: str = "train",
    seed: int = 0,
    answers: tuple[str, str] = JUDGE_CHOICES,
    balance: bool = True,
):
    """prompt / completion (answers[0] = yes, answers[1] = no) / image rows for the localizability judge.

    Each labelled record is shown with its own reasoning (the reference one, else a teacher's). A
    non-localizable photo is shown a second time with a confident reasoning borrowed from a
    localizable sample: the judge must answer "no" because of the pixels, not because the text
    admits it is guessing — otherwise a policy could buy the reward with confident prose. With
    `balance`, the rarer answer's rows are repeated until both answers are equally frequent
    (non-localizable photos are a small minority, and a judge trained 9:1 says "yes" to everything,
    which as a reward is a constant).
    """
    data_dir = Path(data_dir)
    labelled = judge_records(data_dir, split)
    confident = [t for r in labelled if r.localizable and (t := own_reasoning(r))]
    rng = random.Random(seed)
    rows = []
    for record in labelled:
        own = own_reasoning(record)
        shown = [own] if own else []
        if confident and (not own or not record.localizable):
            shown.append(rng.choice(confident))
        answer = answers[0 if record.localizable else 1]
        for reasoning in shown or [None]:
            rows.append(
                {
                    "prompt": judge_messages(reasoning),
                    "completion": [{"role": "assistant", "content": answer}],
                    "image": _image_cell(data_dir, record),
                }
            )
    if balance:
        rows = _balanced(rows, rng)
    return _to_dataset(rows)


def _balanced(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    by_answer: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_answer.setdefault(row["completion"][0]["content"], []).append(row)
    target = max(len(group) for group in by_answer.values())
    out = []
    for group in by_answer.values():
        out += group + [rng.choice(group) for _ in range(target - len(group))]
    rng.shuffle(out)
    return out


def localizable_label(record: Record) -> bool | None:
    """Whether a photo can be placed: its own label (GeoScenes knows it), else the teachers'
    judgment (mean P(yes) >= 0.5, the first filter of `globe verify`), else None (unknown)."""
    from globe.data.verify import teachers_p_localizable

    if record.localizable is not None:
        return record.localizable
    p_yes = teachers_p_localizable(record)
    return None if p_yes is None else p_yes >= 0.5


def judge_records(data_dir: str | Path, split: str = "train") -> list[Record]:
    """The records with a localizable label; both labels must occur, or the judge learns a constant.

    The label is the record's own (GeoScenes knows it), else the teachers' judgment: imported photos
    carry none, and the distilled data holds what the teachers said (mean P(yes) >= 0.5)."""
    from globe.data.verify import teachers_p_localizable

    labelled = []
    for r in load_split(data_dir, split):
        label = localizable_label(r)
        if label is not None:
            labelled.append(r if r.localizable is not None else r.model_copy(update={"localizable": label}))
    labels = {r.localizable for r in labelled}
    if labels != {True, False}:
        raise TrainDataError(
            f"{records_path(data_dir)}: the reward model needs {split} records with localizable=true and with "
            f"localizable=false; found only {sorted(labels) or 'none'}"
        )
    return labelled


def own_reasoning(record: Record) -> str | None:
    """The reasoning part of a record's reference completion, else of its first teacher that wrote one."""
    if record.reasoning:
        from globe.answer import parse

        return parse(record.reasoning).think or record.reasoning
    return next((t.think for t in record.teachers if t.think), None)


def grpo_dataset(data_dir: str | Path, split: str = "train"):
    """prompt / image + the reward columns (country, city, lat, lon, entities, country_code).

    GRPO needs a photo's labels, not a reasoning trace: it can train on the *distilled* data, every
    localizable labelled photo, including those whose traces the verification filters dropped (the
    photos the teachers misread or could not read at all). Verified data works too.
    """
    data_dir = Path(data_dir)
    rows = []
    for record in load_split(data_dir, split):
        if localizable_label(record) is False or not (record.country or record.country_code):
            continue
        rows.append(
            {
                "prompt": geo_messages(),
                "image": _image_cell(data_dir, record),
                "country": record.country or "",
                "country_code": record.country_code or "",
                "city": record.city or "",
                "lat": record.lat,
                "lon": record.lon,
                "entities": list(record.entities),
            }
        )
    _require(rows, data_dir, "grpo", "each needs a country label and must not be localizable=false")
    return _to_dataset(rows)
