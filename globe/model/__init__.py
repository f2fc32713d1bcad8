"""The tiny offline VLM and the helpers every stage uses to load a model."""
