"""Inference engines: backends (llama.cpp, fake), prompts and the generation loop."""
