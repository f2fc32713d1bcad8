"""Stand-ins for outside services, for tests, benchmarks and offline demos.

`teacher_server` is an OpenAI-compatible endpoint with a fault plan (HTTP 500/429, hangs,
garbage) in front of the tiny world's scene reader. Nothing in the library imports this package:
it ships only so that `python -m globe.testing.teacher_server` works wherever globe is installed.
"""
