"""Real clients from their own packages against a real ``codespark serve`` (``make bench-clients``).

The Continue CLI (``@continuedev/cli`` from npm, pinned) runs headless (``cn -p``) with a config file that
points its ``openai`` provider at codespark, in agent mode (it sends ~10 tools): once for a plain answer
and once for a task that needs a tool (listing a folder).  It needs Node and npm; the package is installed
under ``bench-out/node`` once.  Reported: exit code, seconds, whether the answer used what the tool returned.

    python benchmarks/clients.py --json bench-out/clients.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import cpu_name, free_port, http_process

CONTINUE_CLI = "@continuedev/cli@1.5.47"
ROOT = Path(__file__).resolve().parent.parent

CONFIG = """name: codespark
version: 1.0.0
schema: v1
models:
  - name: codespark codex
    provider: openai
    model: codex
    apiBase: {base}/v1
    apiKey: none
    roles: [chat, edit, apply]
    capabilities: [tool_use]
"""


def continue_cli(node_dir: Path) -> Path:
    cn = node_dir / "node_modules" / ".bin" / "cn"
    if not cn.exists():
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed for the Continue CLI (apt install npm).")
        node_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(node_dir), CONTINUE_CLI],
                       check=True)  # fmt: skip
    return cn


def run_cn(cn: Path, base: str, prompt: str, work: Path) -> dict[str, Any]:
    home = work / "home"
    home.mkdir(exist_ok=True)
    config = work / "config.yaml"
    config.write_text(CONFIG.format(base=base))
    started = time.perf_counter()
    done = subprocess.run([str(cn), "-p", prompt, "--auto", "--config", str(config)], cwd=work, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "HOME": str(home)})  # fmt: skip
    return {"prompt": prompt, "exit": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "output": (done.stdout + done.stderr).strip()[-800:]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cn = continue_cli(ROOT / "bench-out" / "node")
    port = free_port()
    env = {**os.environ, "CODESPARK_PORT": str(port), "CODESPARK_HOST": "127.0.0.1"}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="codespark-cn-") as tmp:
        work = Path(tmp)
        (work / "inventory.csv").write_text("item,count\nbolts,12\n")
        (work / "notes_on_the_migration.md").write_text("# notes\n")
        cmd = [sys.executable, "-m", "codespark", "serve"]
        with http_process(cmd, f"http://127.0.0.1:{port}", ROOT / "bench-out" / "clients-server.log", env) as base:
            plain = run_cn(cn, base, "Reply with the single word: ready", work)
            plain["ok"] = plain["exit"] == 0 and "ready" in plain["output"].lower()
            listing = run_cn(cn, base, "Use the List tool on the current directory, then tell me the file names.",
                             work)  # fmt: skip
            listing["ok"] = listing["exit"] == 0 and "notes_on_the_migration" in listing["output"]
            results += [plain, listing]
    report = {"cpu": cpu_name(), "client": CONTINUE_CLI, "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
