"""Credentials: which environment variables hold them, removing them, and masking their values.

The suite runs user DAG code at parse time, so it gets an environment without any deploy
credential. Everything the gate prints (its own messages and the output of the astro CLI, the
bucket client and any deploy command) goes through a :class:`Masker` first.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import shlex
import urllib.parse
from collections.abc import Iterable, Mapping

#: Variables removed from the suite's environment (shell-style patterns, matched case-sensitively).
CREDENTIAL_VARIABLES: tuple[str, ...] = (
    # Astro: Deployment/Workspace/Organization API tokens, and the older key pair
    "ASTRO_API_TOKEN", "ASTRO_*TOKEN*", "ASTRONOMER_KEY_ID", "ASTRONOMER_KEY_SECRET",
    # cloud storage targets
    "AWS_*", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_CREDENTIALS",
    "GOOGLE_GHA_CREDS_PATH", "CLOUDSDK_AUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
    "AZURE_CLIENT_SECRET", "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING",
    # CI tokens that can mint cloud credentials (OIDC) or push code
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_RUNTIME_TOKEN",
    "GITHUB_TOKEN", "GH_TOKEN", "CI_JOB_TOKEN", "CI_JOB_JWT*", "CI_REGISTRY_PASSWORD",
    "BITBUCKET_STEP_OIDC_TOKEN", "CIRCLE_OIDC_TOKEN*", "SYSTEM_ACCESSTOKEN",
)

#: A variable whose name matches one of these holds a secret worth masking (a region does not).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|JWT|KEY|AUTH", re.IGNORECASE)
#: JSON Web Tokens (Astro API tokens are JWTs) and bearer headers, even when not from a variable.
_PATTERNS = (
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)
MASK = "***"
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words


def is_credential(name: str, extra: Iterable[str] = ()) -> bool:
    """Whether the variable ``name`` is a deploy credential (built-in list plus ``extra``
    patterns)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in (*CREDENTIAL_VARIABLES, *extra))


def scrubbed_environment(env: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """``env`` without any credential variable."""
    extra = tuple(extra)
    return {k: v for k, v in env.items() if not is_credential(k, extra)}


class Masker:
    """Replaces every known secret value in text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self.add(*secrets)

    @classmethod
    def from_environment(cls, env: Mapping[str, str], extra: Iterable[str] = ()) -> Masker:
        extra = tuple(extra)
        return cls(v for k, v in env.items()
                   if is_credential(k, extra)
                   and (_SECRET_NAME.search(k) or k in extra_names(extra)))

    def add(self, *values: str | None) -> None:
        """Mask ``values``, and the forms they take on the way out: each of their lines (output is
        masked line by line), base64 and URL encodings, JSON and shell quoting."""
        for value in values:
            if not value or len(value.strip()) < _MIN_SECRET_LEN:
                continue
            value = value.strip()
            for form in (value, *value.splitlines(), *_encodings(value)):
                form = form.strip()
                if len(form) >= _MIN_SECRET_LEN:
                    self._secrets.add(form)

    def data(self, value):
        """``value`` (JSON-like data) with every string masked, before it is serialized: a secret
        with quotes or backslashes no longer matches once json.dumps has escaped it."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def __call__(self, text: str) -> str:
        # longest first, so a secret containing another is masked whole
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _PATTERNS[0].sub(MASK, text)
        return _PATTERNS[1].sub(lambda m: m.group(1) + MASK, text)


def _encodings(value: str) -> list[str]:
    raw = value.encode("utf-8", "replace")
    forms = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms += [text, text.rstrip("=")]
    forms += [urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value),
              json.dumps(value)[1:-1],
              json.dumps(value, ensure_ascii=False)[1:-1], shlex.quote(value)]
    return [f for f in forms if f != value]


def extra_names(patterns: Iterable[str]) -> set[str]:
    """The literal names among ``patterns`` (a user listing a variable means it is a secret)."""
    return {p for p in patterns if not any(c in p for c in "*?[")}
