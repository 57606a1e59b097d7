"""Fake secrets and PII in every format the guard covers, planted in real-looking files.

Used by the guard's tests and by ``benchmarks/redaction.py`` to measure recall.
Every value is random (seeded), in the real format: the right prefix, length,
alphabet and checksum (Luhn for cards), so a detector cannot pass by knowing
the corpus.
"""

from __future__ import annotations

import base64
import ipaddress
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from codespark.guard.detectors import luhn_valid

_B64 = string.ascii_letters + string.digits + "+/"
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Planted:
    """A file with one planted value of one format."""

    fmt: str
    value: str
    text: str


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)])
    while True:
        digits = prefix + _pick(rng, string.digits, length - len(prefix))
        if luhn_valid(digits):
            break
    amex = [digits[:4], digits[4:10], digits[10:]]
    groups = amex if length == 15 else [digits[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


def _jwt(rng: random.Random) -> str:
    def part(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    header = part('{"alg":"HS256","typ":"JWT"}')
    payload = part(f'{{"sub":"{rng.randint(10**6, 10**9)}","name":"{_pick(rng, string.ascii_lowercase, 8)}"}}')
    return f"{header}.{payload}.{_pick(rng, _ALNUM + '-_', 43)}"


def _private_key(rng: random.Random) -> str:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
    body = "\n".join(_pick(rng, _B64, 64) for _ in range(rng.randint(4, 12)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def _phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        [
            f"({a}) {b}-{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"{a}.{b}.{c:04d}",
            f"+1 {a} {b} {c:04d}",
            f"+44 20 {rng.randint(7000, 8999)} {c:04d}",
            f"+49 30 {rng.randint(100, 999)} {rng.randint(1000, 99999)}",
        ]
    )


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _ipv4(rng: random.Random) -> str:
    return rng.choice(
        [
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            _public_ipv4(rng),
        ]
    )


def _public_ipv4(rng: random.Random) -> str:
    while True:
        ip = ipaddress.IPv4Address(rng.randint(0x0B000000, 0xDFFFFFFF))
        if ip.is_global:
            return str(ip)


def _email(rng: random.Random) -> str:
    first, last = rng.choice(["maria", "li", "omar", "jane", "kofi", "sven"]), _pick(rng, string.ascii_lowercase, 6)
    domain = rng.choice(["gmail.com", "acme-corp.io", "mail.example-health.org", "uni-bonn.de", "outlook.com"])
    return f"{first}.{last}{rng.randint(1, 99)}@{domain}"


def _opaque_jwt(rng: random.Random) -> str:
    """A JWT-shaped token whose payload is not decodable JSON (encrypted, or just random bytes)."""
    return "eyJhbGciOiJIUzI1NiJ9." + _pick(rng, _ALNUM + "-_", 43) + "." + _pick(rng, _ALNUM + "-_", 43)


_AUTH_TEMPLATES = [
    '"Authorization": "Bearer {v}"\n',
    "curl -H 'Authorization: Bearer {v}' https://api.internal/v1/items\n",
    "Authorization: Token {v}\n",
    "headers = {{'authorization': 'bearer {v}'}}\n",
    "proxy-authorization: Basic {v}\n",
    "log.debug('retrying with Bearer {v}')\n",
]

# format -> (value generator, templates with {v} where the value goes)
_FORMATS: dict[str, tuple[Callable[[random.Random], str], list[str]]] = {
    "bearer_opaque_jwt": (_opaque_jwt, _AUTH_TEMPLATES),
    "bearer_opaque_token": (
        lambda r: _pick(r, _ALNUM, r.randint(4, 10)) + _pick(r, string.digits, 2) + _pick(r, _ALNUM + "._~-", 20),
        _AUTH_TEMPLATES,
    ),
    "aws_access_key_id": (
        lambda r: r.choice(["AKIA", "ASIA"]) + _pick(r, _UPPER_DIGITS, 16),
        ["AWS_ACCESS_KEY_ID={v}\n", 'session = boto3.Session(aws_access_key_id="{v}")\n', "aws_access_key_id = {v}\n"],
    ),
    "aws_secret_access_key": (
        lambda r: _pick(r, _B64, 40),
        ['aws_secret_access_key = "{v}"\n', "AWS_SECRET_ACCESS_KEY={v}\n", "  secret_access_key: {v}\n"],
    ),
    "google_api_key": (
        lambda r: "AIza" + _pick(r, _ALNUM + "-_", 35),
        ['const firebaseConfig = {{ apiKey: "{v}", projectId: "shop-prod" }};\n', "GOOGLE_MAPS_KEY={v}\n"],
    ),
    "azure_storage_key": (
        lambda r: _pick(r, _B64, 86) + "==",
        [
            "conn = 'DefaultEndpointsProtocol=https;AccountName=acmelogs;"
            "AccountKey={v};EndpointSuffix=core.windows.net'\n"
        ],
    ),
    "github_token": (
        lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _pick(r, _ALNUM, 36),
        ["GITHUB_TOKEN={v}\n", 'gh = Github("{v}")\n', "        run: gh auth login --with-token <<< {v}\n"],
    ),
    "github_fine_grained_pat": (lambda r: "github_pat_" + _pick(r, _ALNUM + "_", 82), ['token = "{v}"\n']),
    "gitlab_token": (
        lambda r: "glpat-" + _pick(r, _ALNUM + "-_", 20),
        ['gl = gitlab.Gitlab("https://gitlab.com", private_token="{v}")\n', "CI_PUSH_TOKEN: {v}\n"],
    ),
    "slack_token": (
        lambda r: f"xoxb-{r.randint(10**10, 10**12)}-{r.randint(10**10, 10**12)}-{_pick(r, _ALNUM, 24)}",
        ['client = WebClient(token="{v}")\n', "SLACK_BOT_TOKEN={v}\n"],
    ),
    "slack_webhook": (
        lambda r: (
            f"https://hooks.slack.com/services/T{_pick(r, _UPPER_DIGITS, 8)}/B{_pick(r, _UPPER_DIGITS, 8)}/"
            + _pick(r, _ALNUM, 24)
        ),
        ['requests.post("{v}", json={{"text": msg}})\n'],
    ),
    "stripe_key": (
        lambda r: r.choice(["sk_live_", "rk_live_", "sk_test_"]) + _pick(r, _ALNUM, 24),
        ['stripe.api_key = "{v}"\n', "STRIPE_SECRET={v}\n"],
    ),
    "openai_key": (lambda r: "sk-proj-" + _pick(r, _ALNUM + "-_", 48), ['client = OpenAI(api_key="{v}")\n']),
    "private_key": (_private_key, ['KEY = """{v}"""\n', "{v}\n"]),
    "jwt": (_jwt, ['headers = {{"Authorization": "Bearer {v}"}}\n', "curl -H 'Authorization: Bearer {v}' $API\n"]),
    "url_password": (
        lambda r: _pick(r, _ALNUM, r.randint(10, 20)) + r.choice(["!", "#", "%25", ""]),
        [
            'engine = create_engine("postgresql://app:{v}@db.internal:5432/orders")\n',
            "DATABASE_URL=mysql://root:{v}@10.0.3.12/shop\n",
            "broker_url = 'amqp://worker:{v}@rabbit:5672//'\n",
        ],
    ),
    "connection_string_password": (
        lambda r: _pick(r, _ALNUM, 14) + r.choice(["!", "$", "#"]),
        [
            'cs = "Server=tcp:sql1.acme.net,1433;Database=crm;User Id=svc_crm;Password={v};Encrypt=True"\n',
            'dsn = "host=pg.internal user=report password={v} dbname=analytics"\n',
        ],
    ),
    "password_assignment": (
        lambda r: _pick(r, string.ascii_letters, 6) + str(r.randint(0, 99)) + r.choice("!@#$%&*"),
        ['DB_PASSWORD = "{v}"\n', "smtp_password: {v}\n", "ADMIN_PASSWORD={v}\n", '"password": "{v}",\n'],
    ),
    "env_high_entropy": (
        lambda r: _pick(r, _ALNUM, 40),
        ["DJANGO_SECRET_KEY={v}\n", "SESSION_SIGNING_SALT={v}\n", "export ENCRYPTION_SEED={v}\n"],
    ),
    "generic_high_entropy": (
        lambda r: _pick(r, _ALNUM, 32),
        ['WEBHOOK_SALT = "{v}"\n', 'config["hmac_seed"] = "{v}"\n', 'const nonceSeed = "{v}";\n'],
    ),
    "email": (_email, ['SUPPORT_EMAIL = "{v}"\n', "# Maintainer: Jane Roe <{v}>\n", "  reply_to: {v}\n"]),
    "phone": (_phone, ['ON_CALL = "{v}"\n', "# call {v} for outages\n", '  phone: "{v}"\n']),
    "card": (_card, ['TEST_CARD = "{v}"\n', "card_number: {v}\n", "charge(card='{v}', amount=1999)\n"]),
    "ssn": (_ssn, ['patient = {{"name": "J. Doe", "ssn": "{v}"}}\n', "SSN: {v}\n"]),
    "ipv4": (_ipv4, ['DB_HOST = "{v}"\n', "server {v}:8080;\n", "ssh deploy@{v}\n"]),
    "ipv6": (
        # Global unicast (2000::/3), outside the documentation prefix.
        lambda r: ":".join([f"{r.randint(0x2002, 0x3FFF):x}"] + [f"{r.randint(0, 65535):x}" for _ in range(7)]),
        ['BIND = "{v}"\n', "listen [{v}]:443;\n"],
    ),
}


_CONTEXT_BEFORE = [
    "import os\nimport logging\n\nlog = logging.getLogger(__name__)\n\n",
    "# settings for the staging deploy\nDEBUG = False\nALLOWED_HOSTS = ['staging.acme.io']\n",
    "version: '3.8'\nservices:\n  api:\n    image: acme/api:2.4.1\n    environment:\n",
    "def connect(retries: int = 3) -> None:\n    for attempt in range(retries):\n        pass\n",
    "",
]
_CONTEXT_AFTER = [
    "\n\ndef main() -> None:\n    log.info('started')\n",
    "TIMEOUT_S = 30\nMAX_RETRIES = 5\n",
    "    ports:\n      - '8080:8080'\n",
    "",
]


def formats() -> list[str]:
    return list(_FORMATS)


def generate(per_format: int = 50, seed: int = 0) -> list[Planted]:
    """``per_format`` planted files for every format, reproducible from ``seed``."""
    rng = random.Random(seed)
    out = []
    for fmt, (make, templates) in _FORMATS.items():
        for i in range(per_format):
            value = make(rng)
            line = templates[i % len(templates)].format(v=value)
            text = rng.choice(_CONTEXT_BEFORE) + line + rng.choice(_CONTEXT_AFTER)
            out.append(Planted(fmt, value, text))
    return out
