"""Guards against the AMX crash coming back (see README, "Build").

llama.cpp's AMX kernels segfault in ``ggml_backend_amx_mul_mat`` on our CPUs.
We build without them.  These tests load the real model in a child process and
run multi-batch prefill plus decode with the exact production options; a
crash shows up as a signal exit instead of taking pytest down with it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from codespark.engine.llama import system_info

pytestmark = pytest.mark.integration

CHILD = r"""
import sys
from pathlib import Path
from codespark.config import Settings
from codespark.engine.loader import load_engines
from codespark.engine.engine import GenerationRequest
from codespark.engine.backend import SamplingParams
import asyncio

engines = load_engines(Settings(), only=("spark",))
engine = engines.routes["spark"]
text = Path(sys.argv[1]).read_text()[:6000]
result = asyncio.run(engine.run(GenerationRequest([text], SamplingParams(max_tokens=8))))
assert result.timings.prompt_tokens > engine.n_ctx // 16, result.timings
print("ok", result.timings.prompt_tokens, result.timings.completion_tokens)
"""


def test_build_has_no_amx() -> None:
    info = system_info()
    assert "AMX_INT8 = 1" not in info, info


def test_multi_batch_prefill_and_decode_do_not_crash() -> None:
    import argparse

    proc = subprocess.run([sys.executable, "-c", CHILD, argparse.__file__], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode} (negative = killed by a signal)\n{proc.stderr[-2000:]}"
    assert proc.stdout.startswith("ok")
