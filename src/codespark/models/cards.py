"""The models a server has, described as model registries list them (Ollama's ``/api/tags`` and
``/api/show`` cards): the Ollama-style name, the file's size, digest and date, parameter size and
quantization."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codespark.engine.engine import Engine
from codespark.engine.loader import Engines
from codespark.models.catalog import find


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def ollama_name(model_id: str, route: str) -> str:
    """The Ollama-style name of a model (``qwen2.5-coder:1.5b``), from the catalog; else the route name."""
    spec = find(model_id)
    names = [a for a in spec.aliases if ":" in a] if spec is not None else []
    return names[0] if names else route


def details(engine: Engine) -> dict[str, Any]:
    info = engine.backend.info
    size = re.search(r"(\d+(?:\.\d+)?)b", info.model_id.lower())
    quant = re.search(r"(q\d(?:_[a-z0-9]+)*|f16|bf16|f32)\.gguf$", Path(info.path).name.lower())
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen2" if "qwen" in info.model_id.lower() else info.model_id.split("-")[0],
        "families": ["qwen2"] if "qwen" in info.model_id.lower() else [],
        "parameter_size": f"{size.group(1)}B" if size else "",
        "quantization_level": quant.group(1).upper() if quant else "",
    }


def file_info(engine: Engine) -> tuple[int, str]:
    path = Path(engine.backend.info.path)
    try:
        stat = path.stat()
    except OSError:
        return 0, _now()
    return stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC).isoformat().replace("+00:00", "Z")


def digest(engine: Engine) -> str:
    spec = find(engine.backend.info.model_id)
    return spec.sha256 if spec is not None else ""


def listed(engines: Engines) -> list[tuple[str, str, Engine]]:
    """(name, route, engine): each engine by its Ollama-style name and by its route name."""
    out: list[tuple[str, str, Engine]] = []
    for route, engine in engines.routes.items():
        name = ollama_name(engine.backend.info.model_id, route)
        out += [(name, route, engine)] + ([(route, route, engine)] if name != route else [])
    return out


def card(name: str, engine: Engine) -> dict[str, Any]:
    size, modified = file_info(engine)
    return {"name": name, "model": name, "modified_at": modified, "size": size, "digest": digest(engine),
            "details": details(engine)}  # fmt: skip
