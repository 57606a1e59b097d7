"""A small real git repository with several modules, for the repo-context tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

FILES = {
    "shop/__init__.py": "",
    "shop/net/__init__.py": "from .client import Client, Response\n",
    "shop/net/client.py": '''"""HTTP client for the shop API."""


class Response:
    status: int


class Client:
    """Talks to the shop API."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url

    def send(self, path: str, payload: dict, *, retries: int = 3) -> Response:
        """POST payload to path; retry on 5xx."""
        return Response()


def make_client(env: str) -> Client:
    """A client for an environment."""
    return Client(f"https://{env}.shop")
''',
    "shop/orders.py": """from shop.net import Client
from shop.pricing import total_price


def place(order_id: int, items: list[int]) -> None:
    client = Client("https://api")
    amount = total_price(items)
    client.
""",
    "shop/pricing.py": '''def total_price(items: list[int], discount: float = 0.0) -> float:
    """Sum of item prices less the discount."""
    return sum(items) * (1 - discount)
''',
    "shop/broken.py": "def fine():\n    return 1\n\ndef broken(:\n    pass\n",
    "web/app.ts": "import { send } from './api';\nexport class App { start(port: number) { send(port) } }\n",
    "web/api.ts": "export function send(x: number): void {}\n",
    "svc/main.go": 'package main\nimport "fmt"\nfunc (s *Server) Serve(addr string) error { return nil }\n',
    "svc/Main.java": "import java.util.List;\nclass Main { void run(List<String> args) {} }\n",
    "svc/lib.rs": "use std::io;\n/// Adds.\npub fn add(a: i32, b: i32) -> i32 { a + b }\n",
    "build/generated.py": "def generated():\n    pass\n",
    "assets/blob.py": "\0\0binary",
    ".gitignore": "build/\n",
}


def make_repo(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def cursor(root: Path) -> tuple[str, str]:
    """The text of shop/orders.py split at ``client.`` (the end of the file)."""
    text = (root / "shop/orders.py").read_text()
    return text.rstrip("\n"), "\n"
