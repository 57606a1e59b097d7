"""Load the engines named in the settings: one backend per distinct model file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.models.catalog import find
from codespark.models.provision import Progress, resolve

ROUTES = ("spark", "codex")


@dataclass
class Engines:
    """The engines a server or CLI command uses, by route name, plus aliases."""

    routes: dict[str, Engine]
    aliases: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.routes)

    def lookup(self, model: str) -> tuple[str, Engine] | None:
        """The ``(route, engine)`` a request's ``model`` field names, or None."""
        key = model.strip().lower()
        key = key.removesuffix(":latest")  # Ollama clients tag a bare name ":latest"
        route = key if key in self.routes else self.aliases.get(key)
        if route is None:
            return None
        return route, self.routes[route]

    def close(self) -> None:
        for engine in {id(e): e for e in self.routes.values()}.values():
            engine.close()


def aliases_for(model_id: str) -> list[str]:
    names = [model_id.lower()]
    spec = find(model_id)
    if spec is not None:
        names += [a.lower() for a in spec.aliases]
    return names


def load_engines(settings: Settings, progress: Progress | None = None, only: tuple[str, ...] = ROUTES) -> Engines:
    """Resolve, provision and load the engines in ``only`` (default: spark and codex)."""
    from codespark.engine.llama import LlamaBackend, LlamaOptions
    from codespark.engine.speculative import Drafter, ModelDrafter, NgramDrafter

    options = LlamaOptions(
        n_ctx=settings.n_ctx,
        n_batch=settings.n_batch,
        n_threads=settings.n_threads,
        flash_attn=settings.flash_attn,
        repack=settings.repack,
        reuse_min_run=settings.cache_reuse,
    )
    refs = {"spark": settings.spark_model, "codex": settings.codex_model}
    by_path: dict[Path, Engine] = {}
    engines = Engines(routes={})
    for route in only:
        ref = refs[route]
        if ref.strip().lower() in ("", "none"):
            continue
        model_id, path = resolve(ref, settings.models_dir, settings.auto_provision, progress)
        if path not in by_path:
            drafter: Drafter | None = NgramDrafter() if settings.spec_ngram else None
            draft_ref = settings.codex_draft_model.strip()
            if route == "codex" and draft_ref.lower() not in ("", "none"):
                draft_id, draft_path = resolve(draft_ref, settings.models_dir, settings.auto_provision, progress)
                drafter = ModelDrafter(LlamaBackend(draft_path, draft_id, options))
            backend = LlamaBackend(path, model_id, options, drafter)
            by_path[path] = Engine(backend, settings.session_cache_mb * 2**20, settings.max_queue)
        engines.routes[route] = by_path[path]
        for alias in aliases_for(model_id):
            engines.aliases.setdefault(alias, route)
    return engines
