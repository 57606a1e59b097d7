# codespark: `make serve` sets everything up and starts the server; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CODESPARK := $(VENV)/bin/codespark
SPARK := qwen2.5-coder-0.5b-instruct
CODEX := qwen2.5-coder-1.5b-instruct

.PHONY: setup models serve test check bench bench-latency bench-spec bench-prefill bench-redaction bench-hardening sql-eval crossfile-eval bench-mgd fim-eval bench-repair bench-tools bench-clients bench-migrate bench-jumps bench-review clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# llama-cpp-python is built once per machine and flag set (no AMX; see README "Build").
$(STAMP): $(PY) pyproject.toml scripts/build_llama.py
	wheel="$$($(PY) scripts/build_llama.py)" && $(PY) -m pip install --quiet "$$wheel"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

models: setup
	$(CODESPARK) models --pull $(SPARK) --pull $(CODEX)

serve: models
	$(CODESPARK) serve

test: models
	bash scripts/ensure_postgres.sh
	bash scripts/test_assets.sh
	$(PY) -m pytest

check: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

bench: models
	$(CODESPARK) bench --runs 5 --json bench-out/bench.json

# Editing replay beside llama-server (built from the pinned sdist on first use, ~5 min; never in CI).
bench-latency: models
	$(PY) benchmarks/latency.py --configs codespark llama-psm-0.5b llama-spm-0.5b --points 2

# The edit task, in process and through llama-server (plain, n-gram, 0.5B draft model).
bench-spec: models
	$(PY) benchmarks/speculative.py --runs 3 --peers

# llama-bench over threads, ubatch, flash attention, repacking and requantized files (never in CI).
bench-prefill: models
	$(PY) benchmarks/prefill.py --json bench-out/prefill.json

bench-redaction: setup
	$(PY) benchmarks/redaction.py --per-format 200 --seeds 3 --json bench-out/redaction.json

# 32 clients of mixed FIM/chat/SQL, then 1; schemathesis on every route; upstream and kill -9 faults.
bench-hardening: models
	$(PY) benchmarks/hardening.py --clients 32 --seconds 120 --json bench-out/hardening.json

# The fix loop: HumanEval with visible tests only (hidden tests scored at the end), then seeded faults.
bench-repair: models
	$(PY) benchmarks/repair.py --part humaneval --rounds 2 --candidates 4 --json bench-out/repair-humaneval.json
	$(PY) benchmarks/repair.py --part faults --bugs 100 --rounds 2 --candidates 3 --json bench-out/repair-faults.json

bench-tools: models
	$(PY) benchmarks/tool_calls.py --engines codex spark --per-tool 3 --json bench-out/tool_calls.json

bench-clients: models
	$(PY) benchmarks/clients.py --json bench-out/clients.json

# Shadow review: 100 seeded faults in benign edits (recall), 50 benign PRs (noise per 100 changed lines).
bench-review: models
	$(PY) benchmarks/review.py --faults 100 --benign 50 --json bench-out/review.json

bench-migrate: models
	$(PY) benchmarks/migrate.py --json bench-out/migrate.json
	$(PY) benchmarks/migrate_py2.py --rounds 2 --candidates 3 --json bench-out/migrate-py2.json

sql-eval: models
	$(PY) benchmarks/sql_eval.py --engines codex spark --styles ddl compact --json bench-out/sql_eval.json

crossfile-eval: models
	$(PY) benchmarks/crossfile.py --tasks 200 --engine spark --json bench-out/crossfile.json
	$(PY) benchmarks/crossfile.py --latency --json bench-out/crossfile-latency.json

bench-mgd: models
	$(PY) benchmarks/crossfile.py --cut member --tasks 200 --engine spark --conditions none heal mgd --tasks-file bench-out/member-tasks.json --json bench-out/crossfile-member-spark.json
	$(PY) benchmarks/crossfile.py --cut member --tasks 200 --engine codex --conditions none heal mgd --tasks-file bench-out/member-tasks.json --json bench-out/crossfile-member-codex.json
	$(PY) benchmarks/sql_eval.py --set foreign --engines codex spark --variants off full --json bench-out/sql_foreign.json
	$(PY) benchmarks/sql_eval.py --set dev --engines codex --variants off full --json bench-out/sql_dev_mgd.json
	$(PY) benchmarks/latency.py --configs codespark --points 3 --quality-tasks 100 --env CODESPARK_MGD=off --out bench-out/mgd-off
	$(PY) benchmarks/latency.py --configs codespark --points 3 --quality-tasks 100 --out bench-out/mgd-on

# Cursor jumps (issue 15): codespark back to back and with pauses, llama-server beside it, and what
# out-of-place KV reuse costs in answers.
bench-jumps: models
	$(PY) benchmarks/latency.py --configs codespark llama-psm-0.5b-reuse256 llama-psm-1.5b-reuse256 --jumps 5 --quality-tasks 100 --out bench-out/jumps
	$(PY) benchmarks/latency.py --configs codespark --jumps 5 --pause 3 --quality-tasks 0 --out bench-out/jumps-pause3
	$(PY) benchmarks/jump_quality.py --tasks 60 --out bench-out/jump_quality.json
	$(PY) benchmarks/window_quality.py --lines 36 --sizes 64 128 256 0 --json bench-out/window-quality.json
	$(PY) benchmarks/prefill_batches.py --model spark > bench-out/prefill-batches.json

fim-eval: models
	$(PY) benchmarks/fim_quality.py --tasks 100

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench-out
