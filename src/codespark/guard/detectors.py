"""Detectors: find secrets and PII in text, as character spans.

Known token formats come from detect-secrets' own plugins: we take each
plugin's compiled ``denylist`` patterns and run them over the whole text at
once (detect-secrets scans line by line with every plugin, ~0.5 ms a line,
far too slow for a prompt on the request path).  Our own detectors cover what
those plugins miss or over-match: whole private-key blocks, Google API keys,
fine-grained GitHub tokens, test-mode Stripe keys, passwords in URLs and
connection strings, secret-looking and high-entropy values in assignments,
and PII (emails, phones, Luhn-checked card numbers, US SSNs, IP addresses).

Each detector returns ``Finding`` spans; ``scan`` merges overlaps, keeping the
longest.  Every pattern is tuned against real code (``benchmarks/redaction.py``
counts false positives on the stdlib and installed packages).
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector


@dataclass(frozen=True)
class Finding:
    """A span of ``text[start:end]`` that must not leave the machine."""

    kind: str
    start: int
    end: int


Detector = Callable[[str], Iterable[Finding]]

# detect-secrets plugins whose patterns are specific enough to run on code as they are.
# (Left out: the entropy and keyword plugins, which flag much of any codebase, and
# Artifactory/Twilio/IBM/Softlayer/Cloudant, whose patterns match ordinary identifiers, and JWT,
# whose lazy pattern stops after the payload: ours below takes the signature too.)
_DETECT_SECRETS_PLUGINS: dict[str, type] = {
    "AWS_KEY": AWSKeyDetector,
    "AZURE_KEY": AzureStorageKeyDetector,
    "DISCORD_TOKEN": DiscordBotTokenDetector,
    "GITHUB_TOKEN": GitHubTokenDetector,
    "GITLAB_TOKEN": GitLabTokenDetector,
    "MAILCHIMP_KEY": MailchimpDetector,
    "NPM_TOKEN": NpmDetector,
    "OPENAI_KEY": OpenAIDetector,
    "PYPI_TOKEN": PypiTokenDetector,
    "SENDGRID_KEY": SendGridDetector,
    "SLACK_TOKEN": SlackDetector,
    "SQUARE_TOKEN": SquareOAuthDetector,
    "STRIPE_KEY": StripeDetector,
    "TELEGRAM_TOKEN": TelegramBotTokenDetector,
}

_MIN_GROUP = 8  # a capture group shorter than this is a prefix (``ghp``), not the secret


def _pattern_detector(kind: str, pattern: re.Pattern[str]) -> Detector:
    """Findings for every match; the span is the secret group when the pattern has one."""

    def detect(text: str) -> Iterator[Finding]:
        for m in pattern.finditer(text):
            start, end = m.span()
            for g in range(pattern.groups, 0, -1):
                gs, ge = m.span(g)
                if gs >= 0 and ge - gs >= _MIN_GROUP:
                    start, end = gs, ge
                    break
            if end - start >= _MIN_GROUP:
                yield Finding(kind, start, end)

    return detect


def _detect_secrets_detectors() -> list[Detector]:
    detectors = []
    for kind, plugin in _DETECT_SECRETS_PLUGINS.items():
        for pattern in plugin().denylist:
            detectors.append(_pattern_detector(kind, pattern))
    return detectors


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _regex(kind: str, pattern: str, needle: str | None = None) -> Detector:
    """A pattern detector; with a ``needle``, text without that substring is skipped (a cheap ``in``)."""
    detect = _pattern_detector(kind, re.compile(pattern))
    if needle is None:
        return detect
    return lambda text: detect(text) if needle in text else ()


# --------------------------------------------------------------------------- secrets of our own

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
    r"[\s\S]*?-----END \1-----"
)
# A private key cut off by the prompt window still must not leave: header to end of the base64 body.
_PRIVATE_KEY_OPEN = re.compile(
    r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:\-,]*"
)


def _private_keys(text: str) -> Iterator[Finding]:
    if "PRIVATE KEY" not in text:
        return
    for m in _PRIVATE_KEY.finditer(text):
        yield Finding("PRIVATE_KEY", *m.span())
    for m in _PRIVATE_KEY_OPEN.finditer(text):
        yield Finding("PRIVATE_KEY", *m.span())


# ``scheme://user:password@host``: the password only.
_URL_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:/@'\"]{1,64}:([^\s@/'\"]{3,128})@[\w.\-]+")
# ``Password=...;`` (ADO/JDBC/ODBC) and ``password=...`` in libpq keyword DSNs: only beside another
# connection key, so ``password=None`` in a call is left alone.
_DSN_PASSWORD = re.compile(r"(?i)(?<![\w.])(?:password|pwd|passwd)=([^\s;'\"()\[\],]{3,128})(?=[;'\"\s]|$)")
_DSN_KEY = re.compile(
    r"(?i)\b(?:server|host|hostname|data source|uid|user(?: ?id)?|dbname|database|initial catalog)\s*="
)
_PLACEHOLDER_VALUE = re.compile(
    r"(?i)^(?:[*x.\-_]+|\$\{?\w+\}?|\{\{?.*\}\}?|%[sd(].*|<[^>]*>|\[[^\]]*\]|none|null|true|false|"
    r"changeme|change_me|password|passwd|secret|redacted|example|dummy|test|xxx+|your[_\-].*|\w+\(.*)$"
)


def _passwords(text: str) -> Iterator[Finding]:
    for m in _URL_PASSWORD.finditer(text):
        if not _PLACEHOLDER_VALUE.match(m.group(1)):
            yield Finding("PASSWORD", *m.span(1))
    for m in _DSN_PASSWORD.finditer(text):
        around = text[max(0, m.start() - 120) : m.end() + 120]
        if _DSN_KEY.search(around) and not _PLACEHOLDER_VALUE.match(m.group(1)):
            yield Finding("PASSWORD", *m.span(1))


# Assignments: ``name = "value"``, ``name: value``, ``NAME=value``, ``"name": "value"``.  The scan
# anchors on the operator (rare in text, so fast) and reads the name backwards from it.
_ASSIGNED_VALUE = re.compile(
    r"""(?<![=!<>:])(?::=|=>|=|:)(?![=:]|//)[ \t]*"""
    r"""(?:(["'`])(?P<quoted>[^"'`\n]{6,512})\1|(?P<bare>[^\s"'`,;#][^\s"'`,;]{5,511}))"""
)
_NAME_BEFORE = re.compile(r"""(?:^|[\s,{(\[])["']?([A-Za-z_][\w.\-]{0,80})["']?\]?[ \t]*$""")
# The name must end in the word: ``api_token`` and ``DB_PASSWORD`` are secrets, ``token_type`` is not.
_SECRET_WORD = re.compile(
    r"(?i)(?:passw(?:or)?d|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|"
    r"auth[_\-]?key|credentials?|signing[_\-]?key|secret[_\-]?key)[0-9]*$"
)
# Unquoted values that are code, not literals: names, attribute chains, paths, calls and subscripts.
_CODE_VALUE = re.compile(r"[A-Za-z_][\w.]*|[./~].*|.*[()\[\]{}].*")
# Generated tokens: one charset, ``=`` only as base64 padding at the end.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/_\-.~]{20,512}={0,2}")
# Alphabets and digit tables (``'0123456789abcdef'``) are high-entropy but not secret.
_SEQUENCE = re.compile(r"0123|1234|2345|3456|4567|5678|6789|abcd|bcde|cdef|ABCD|BCDE|CDEF|wxyz|WXYZ")


def _is_secret_value(value: str, *, named: bool, quoted: bool) -> bool:
    """Whether an assigned value looks like a credential rather than code or prose."""
    if _PLACEHOLDER_VALUE.match(value) or " " in value or "://" in value:
        return False  # URLs: only their password is secret (``_passwords``)
    random = _high_entropy(value)
    # Unquoted names are code (``token = read_token``), unless named as a secret and mixing letters and digits.
    password_like = named and re.fullmatch(r"(?=.*[A-Za-z])(?=.*[0-9])\w+", value) is not None
    if not quoted and not random and _CODE_VALUE.fullmatch(value) and not password_like:
        return False
    if not quoted and "." in value:
        return named  # ``module.attr``: code, unless named as a secret (and then it mixed letters and digits)
    return named or random


def _class_changes(value: str) -> float:
    """Share of neighbouring characters that switch between lower, upper and digit, not counting
    a capital followed by lower case (a CamelCase word).

    About 0.44 for random alphanumerics (rarely under 0.25); about 0.15 for identifiers and paths.
    """
    kinds = ["l" if c.islower() else "u" if c.isupper() else "d" for c in value if c.isalnum()]
    changes = sum(a != b and (a, b) != ("u", "l") for a, b in itertools.pairwise(kinds))
    return changes / max(1, len(kinds) - 1)


def _high_entropy(value: str) -> bool:
    """A generated token: one charset, no alphabet runs, random-looking."""
    if len(value) < 20 or not _TOKEN_CHARS.fullmatch(value):
        return False
    if _SEQUENCE.search(value):
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", value):
        return shannon_entropy(value) >= 3.2 and _class_changes(value) >= 0.3
    if shannon_entropy(value) < 3.5:
        return False
    return _class_changes(value) >= 0.25 or (value.isalnum() and _mean_word_length(value) < 3.0)


_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _mean_word_length(value: str) -> float:
    """Mean length of the CamelCase words and digit runs in ``value``.

    Identifiers are made of words (``NonCallableMagicMock``: 5.0); random
    alphanumerics split into short pieces (99% of 32-character ones under 2.7).
    """
    words = _WORDS.findall(value)
    return sum(map(len, words)) / max(1, len(words))


# ``NAME=value`` as a whole line of a .env file or shell script (optionally ``export``ed).
_ENV_LINE = re.compile(r"[ \t]*(?:export[ \t]+)?[A-Z][A-Z0-9_]*=")


_ENV_TOKEN = re.compile(r"[A-Za-z0-9+/_\-.~]{16,512}={0,2}")


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _env_value(value: str) -> bool:
    """A .env value that is a generated token: long, letters and digits, high entropy.  (No shape test:
    nothing but configuration is written on such lines.)"""
    return (
        len(value) >= 16
        and _ENV_TOKEN.fullmatch(value) is not None
        and re.search(r"[A-Za-z]", value) is not None
        and re.search(r"[0-9]", value) is not None
        and shannon_entropy(value) >= 3.5
    )


def _key_opens_line(text: str, start: int) -> bool:
    """Whether only indentation and an opening quote come before a ``key:`` (YAML, dict and JSON keys)."""
    line_start = text.rfind("\n", 0, start) + 1
    return text[line_start:start].strip(" \t\"'{,") == ""


def _assignments(text: str) -> Iterator[Finding]:
    for m in _ASSIGNED_VALUE.finditer(text):
        before = _NAME_BEFORE.search(text, max(0, m.start() - 100), m.start())
        if before is None or (m.group().startswith(":") and not _key_opens_line(text, before.start(1))):
            continue  # ``word: value`` in prose or a comment is not a key
        group = "quoted" if m.group("quoted") is not None else "bare"
        value = m.group(group)
        named = _SECRET_WORD.search(before.group(1)) is not None
        if _is_secret_value(value, named=named, quoted=group == "quoted") or (
            group == "bare"
            and _ENV_LINE.fullmatch(text, _line_start(text, m.start()), m.start() + 1)
            and _env_value(value)
        ):
            yield Finding("SECRET", *m.span(group))


# A credential in an Authorization-shaped context is a secret whatever its shape: a JWT whose
# payload is not JSON, an opaque token, base64 user:password.  Two forms: after an
# ``Authorization``/``Proxy-Authorization`` key (header, dict entry, curl -H), with or without a
# scheme; and after a ``Bearer``/``Basic`` scheme word anywhere, when the value looks generated
# (long, with digits) rather than like prose ("bearer tokenization").
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authori[sz]ation[\"']?\s*([:=,])\s*[\"']?(?:(bearer|basic|token|digest|apikey|api-key|"
    r"sso-key|key)\s+)?([A-Za-z0-9._~+/\-]{8,4096}={0,2})(?![\w(])"
)
_AUTH_SCHEME = re.compile(r"\b(?:[Bb]earer|BEARER|[Bb]asic|BASIC)[ \t]+([A-Za-z0-9._~+/\-]{16,4096}={0,2})")


def _authorization(text: str) -> Iterator[Finding]:
    lowered = text.lower()
    if "author" in lowered:
        for m in _AUTH_HEADER.finditer(text):
            separator, scheme, value = m.group(1), m.group(2), m.group(3)
            if _PLACEHOLDER_VALUE.match(value) or (separator == "," and not scheme):
                continue  # after a comma only ``("Authorization", "Bearer …")``: a list of names is not one
            # With a scheme word it is a credential whatever its shape; without one, a bare
            # identifier is code (``authorization = auth_header``), anything else a credential.
            if scheme or not _CODE_VALUE.fullmatch(value) or any(c.isdigit() for c in value):
                yield Finding("SECRET", *m.span(3))
    if "bearer" in lowered or "basic" in lowered:
        for m in _AUTH_SCHEME.finditer(text):
            value = m.group(1)
            if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
                yield Finding("SECRET", *m.span(1))


_STANDALONE_SECRETS: list[Detector] = [
    _authorization,
    _regex("JWT", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]{8,}", "eyJ"),
    _regex("GOOGLE_API_KEY", r"\bAIza[0-9A-Za-z_\-]{35}(?![\w\-])", "AIza"),
    _regex("GITHUB_TOKEN", r"\bgithub_pat_[A-Za-z0-9_]{60,100}\b", "github_pat_"),
    _regex("STRIPE_KEY", r"\b(?:sk|rk|pk)_(?:live|test)_[0-9a-zA-Z]{20,99}\b", "k_"),
    _regex("SLACK_TOKEN", r"\bxox[abposr]-[0-9A-Za-z\-]{10,200}", "xox"),
    _regex("OPENAI_KEY", r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{40,200}\b", "sk-"),
    _regex("ANTHROPIC_KEY", r"\bsk-ant-[A-Za-z0-9_\-]{40,200}\b", "sk-ant-"),
    _regex("HUGGINGFACE_TOKEN", r"\bhf_[A-Za-z0-9]{34,40}\b", "hf_"),
]


# --------------------------------------------------------------------------- PII

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,24}\b")
# RFC 2606 names are examples by definition, never someone's address.
_EXAMPLE_DOMAIN = re.compile(r"(?i)@(?:[\w\-]+\.)*(?:example\.(?:com|org|net)|[\w\-]+\.(?:example|invalid|test))$")


def _emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        start = m.start()
        if start and text[start - 1] == ":" and not text[:start].endswith("mailto:"):
            continue  # ``user:password@host`` in a URL, not an address
        if not _EXAMPLE_DOMAIN.search(m.group()):
            yield Finding("EMAIL", *m.span())


# International ``+CC …`` numbers, and North American ``(415) 555-0132`` / ``415-555-0132`` / ``415.555.0132``.
_PHONE = re.compile(
    r"(?<![\w.+\-/])(?:"
    r"\+[1-9]\d{0,2}[ \-.]?\(?\d{1,4}\)?(?:[ \-.]\d{2,5}){2,4}"
    r"|\(\d{3}\)[ \-]?\d{3}[ \-.]\d{4}"
    r"|\d{3}([\-.])\d{3}\1\d{4}"
    r")(?![\w.\-/])"
)


def _phones(text: str) -> Iterator[Finding]:
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 10 <= len(digits) <= 15:
            yield Finding("PHONE", *m.span())


_CARD = re.compile(r"(?<![\w.\-])\d(?:[ \-]?\d){12,18}(?![\w.\-])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        # Issuer prefixes (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay) and the Luhn check.
        if re.match(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9]|2)|35|30[0-5]|36|38", digits) and luhn_valid(digits):
            yield Finding("CARD", *m.span())


_SSN = r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-])"

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|(?::[0-9a-fA-F]{1,4}){1,6}|[0-9a-fA-F]{1,4})(?![\w:.])")


def _ip_addresses(text: str) -> Iterator[Finding]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                ip = ipaddress.ip_address(m.group())
            except ValueError:
                continue
            # Loopback, wildcard, link-local, multicast and the documentation ranges identify nobody.
            if _not_a_host(text, m, ip) or ip.is_loopback or ip.is_unspecified or ip.is_multicast:
                continue
            if ip.is_link_local or ip.is_reserved:
                continue
            if any(ip in net for net in _DOC_NETS):
                continue
            yield Finding("IP_ADDRESS", *m.span())


_VERSION_CONTEXT = re.compile(r"(?i)(?:version|release|\bv)\W{0,6}$")


def _not_a_host(text: str, m: re.Match[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Network ranges (``10.0.0.0/8``) and dotted version numbers (``3.1.1.6``) name no one."""
    if text.startswith("/", m.end()) or _VERSION_CONTEXT.search(text, max(0, m.start() - 24), m.start()):
        return True
    octets = m.group().split(".")
    return ip.version == 4 and (octets[0] == "0" or (len(octets[0]) == 1 and len(octets[1]) == 1))


_DOC_NETS = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "255.255.255.255/32")
]


# --------------------------------------------------------------------------- the scan


@cache
def detectors() -> tuple[Detector, ...]:
    """Every detector, secrets first."""
    return (
        _private_keys,
        *_detect_secrets_detectors(),
        *_STANDALONE_SECRETS,
        _passwords,
        _assignments,
        _emails,
        _phones,
        _cards,
        _regex("SSN", _SSN),
        _ip_addresses,
    )


def scan(text: str) -> list[Finding]:
    """Non-overlapping findings in ``text``, in order; where spans overlap the longest wins."""
    found = sorted(
        (f for detect in detectors() for f in detect(text)),
        key=lambda f: (f.start, -(f.end - f.start)),
    )
    merged: list[Finding] = []
    for f in found:
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            if f.end > last.end:  # overlapping, reaching further: one span over both
                merged[-1] = Finding(last.kind, last.start, f.end)
            continue
        merged.append(f)
    return merged
