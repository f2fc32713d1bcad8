"""The tiny world: everything the offline miniature of GLOBE is made of, in one package.

- `world.py`: the world (gazetteer cities with a flag, a landmark and a climate each; `world.json`);
- `geoscenes.py`: the GeoScenes renderer (`globe data synth`): images, records, reference reasonings;
- `scene_reader.py`: the cue reader, an Engine that reads a GeoScenes image (teachers, judge, ceiling);
- `model.py`, `tokenizer.py`, `chat_template.py`: the tiny Qwen2.5-VL and its tokenizer (`globe model init-tiny`);
- `teacher_server.py`: an OpenAI-compatible teacher in front of the scene reader, with a fault plan
  (`python -m globe.tiny.teacher_server`), for tests, benchmarks and offline demos.

It sits above `globe.data.records` and `globe.engines.base` and below the stages that use it
(data import, distillation, training, evaluation); `model/` and `engines/` do not import it (the
engine kind table names the scene reader by string). docs/architecture.md, "Layers".
"""
