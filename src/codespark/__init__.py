"""codespark: a self-hosted coding assistant engine (spark FIM + codex chat)."""

__version__ = "0.1.0"
