"""The gateway's config: read once, validated against ``schema/config.yaml``, defaults filled in
here and nowhere else. Secrets come from the environment through ``${VAR}`` and are held in
``Secret``, which never shows its value in a repr, a log line or a traceback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import phonenumbers

from gateway import shipped, yamlfile
from gateway.cache import CacheSettings
from gateway.errors import ConfigError
from gateway.fleet.settings import SharedStateSettings
from gateway.mapping.fanout import FanOutLimits
from gateway.upstream.settings import BreakerSettings, RetrySettings


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


DEFAULTS: dict[str, Any] = {
    "server": {"host": "127.0.0.1", "port": 8080, "base_path": "/api/v1", "watch_seconds": 1.0},
    "upstream": {
        "credentials": {},
        "attempt_timeout_seconds": 5.0,
        "max_connections": 50,
        "max_in_flight": 20,
        "retry": {
            "attempts": 3,
            "backoff_start_seconds": 0.1,
            "backoff_max_seconds": 1.0,
            "max_retry_after_seconds": 60.0,
            "min_attempt_seconds": 0.25,
        },
        "circuit_breaker": {
            "failure_rate": 0.5,
            "min_requests": 20,
            "window_seconds": 30.0,
            "cooldown_seconds": 30.0,
        },
        "oauth": {
            "client_id": None,
            "client_secret": None,
            "refresh_token": None,
            "token_file": None,
            "refresh_before_seconds": 300.0,
        },
    },
    # Khoros allows 20 s for meta and 8 s for the rest; answer inside a share of that.
    "deadlines": {
        "meta_seconds": 20.0,
        "default_seconds": 8.0,
        "share": 0.9,
        "margin_seconds": 0.1,
    },
    "cache": {
        "meta": {"ttl_seconds": 300, "max_entries": 4, "stale_seconds": 3600},
        "field_definitions": {"ttl_seconds": 300, "max_entries": 16, "stale_seconds": 3600},
        "labels": {"ttl_seconds": 300, "max_entries": 4, "stale_seconds": 3600},
        # Off by default: a customer's labels should change routing at once.
        "customer_by_phone": {"ttl_seconds": 0, "max_entries": 10_000, "stale_seconds": 0},
    },
    "expertflow": {
        "path_prefix": "",
        "not_found": "error",
        "api_keys": [],
        "allow_anonymous": False,
    },
    # How far one best match fans out (docs/behaviour.md §1.6).
    "bestmatch": {"values_per_strategy": 5, "max_searches": 12},
    "admin": {"api_key": None},
    "logging": {"level": "info", "format": "json", "pii": False},
    "settings": {"public_comments": False},
    "phones": {"default_region": None},
    "shared_state": {
        "redis_url": None,
        "timeout_seconds": 0.25,
        "retry_seconds": 1.0,
        "key_prefix": "crm-gateway",
    },
}


@dataclass(frozen=True)
class Config:
    file: str
    host: str
    port: int
    base_path: str
    watch_seconds: float
    api_keys: tuple[Secret, ...]
    max_auth_failures: int
    upstream_url: str
    mapping_file: Path
    credentials: Mapping[str, Secret]
    attempt_timeout: float
    max_connections: int
    max_in_flight: int
    retry: RetrySettings
    breaker: BreakerSettings
    oauth: OAuthSettings | None
    meta_budget: float
    default_budget: float
    margin: float
    caches: Mapping[str, CacheSettings]
    expertflow_prefix: str
    expertflow_not_found: str
    expertflow_keys: tuple[Secret, ...]
    expertflow_anonymous: bool
    bestmatch: FanOutLimits
    admin_key: Secret | None
    log_level: str
    log_format: str
    log_pii: bool
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Phone numbers written without a country code are read as dialled here (ISO 3166 code).
    default_region: str | None = None
    shared_state: SharedStateSettings = field(default_factory=SharedStateSettings)


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _true(given: bool | str) -> bool:
    """A boolean setting, also when it comes from the environment as text."""
    return str(given).strip().lower() in ("true", "1", "yes")


def _keys(given: str | list[str]) -> tuple[Secret, ...]:
    keys = given.split(",") if isinstance(given, str) else given
    return tuple(Secret(k.strip()) for k in keys if k.strip())


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config holds, for log redaction."""
    found = [*config.api_keys, *config.expertflow_keys, *config.credentials.values()]
    if config.admin_key:
        found.append(config.admin_key)
    if config.oauth:
        found += [config.oauth.client_secret, config.oauth.refresh_token]
    # An email is an identifier, not a secret; it is masked as PII instead.
    emails = {v for k, v in config.credentials.items() if "email" in k}
    out = [s.reveal() for s in found if s and s not in emails]
    url = config.shared_state.redis_url
    if url:  # it may hold a password: the URL and the password are both secrets
        out.append(url)
        password = urlsplit(url).password
        if password:
            out += [password, unquote(password)]
    return out


@dataclass(frozen=True)
class OAuthSettings:
    client_id: Secret
    client_secret: Secret
    refresh_token: Secret
    token_file: Path | None
    refresh_before_seconds: float


def _oauth(raw: Mapping[str, Any], here: Path) -> OAuthSettings | None:
    """OAuth refresh is on when a client id, a secret and a refresh token are all given."""
    if not (raw.get("client_id") and raw.get("client_secret") and raw.get("refresh_token")):
        return None
    token_file = Path(raw["token_file"]) if raw.get("token_file") else None
    if token_file is not None and not token_file.is_absolute():
        token_file = here / token_file
    return OAuthSettings(
        client_id=Secret(raw["client_id"]),
        client_secret=Secret(raw["client_secret"]),
        refresh_token=Secret(raw["refresh_token"]),
        token_file=token_file,
        refresh_before_seconds=float(raw["refresh_before_seconds"]),
    )


# The config file formats this gateway reads (the optional top-level `version:`).
CONFIG_VERSIONS = ("1",)


def _check_version(doc: yamlfile.YamlDoc) -> None:
    """Before the schema: a file written for another format would otherwise read as a list of
    unknown keys."""
    given = doc.data.get("version", CONFIG_VERSIONS[-1])
    if str(given).strip() not in CONFIG_VERSIONS:
        raise doc.error(
            ("version",),
            f"config version '{given}' is not one crm-gateway {shipped.version()} reads "
            f"(it reads version {', '.join(CONFIG_VERSIONS)})",
        )


def _mapping_file(doc: yamlfile.YamlDoc, given: str, here: Path) -> Path:
    """A bare name is a mapping shipped with the gateway; anything else is a file's path,
    relative to the config file."""
    if shipped.is_bare(given):
        try:
            return shipped.mapping(given)
        except shipped.UnknownMapping as exc:
            raise doc.error(("upstream", "mapping"), str(exc)) from None
    mapping = Path(given)
    return mapping if mapping.is_absolute() else here / mapping


REGION_VARIABLE = "GATEWAY_DEFAULT_REGION"


def _default_region(doc: yamlfile.YamlDoc, given: str | None, env: Mapping[str, str]) -> str | None:
    """`phones.default_region`; the environment's GATEWAY_DEFAULT_REGION, when set, wins (as
    the GATEWAY_* variables of a deployment do)."""
    from_env = env.get(REGION_VARIABLE, "").strip()
    region = (from_env or str(given or "")).strip().upper()
    if not region:
        return None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        problem = f"'{region}' is not a region code (ISO 3166-1 alpha-2, such as CH, DE or US)"
        if from_env:
            raise ConfigError("environment", None, REGION_VARIABLE, problem)
        raise doc.error(("phones", "default_region"), problem)
    return region


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    doc = yamlfile.load(path, env=env)
    if not isinstance(doc.data, dict):
        raise ConfigError(doc.file, 1, "", "the config must be a mapping of keys")
    _check_version(doc)
    yamlfile.validate(doc, yamlfile.schema("config"))
    c = _merged(DEFAULTS, doc.data)
    api_keys = _keys(c["auth"]["api_keys"])
    if not api_keys:
        raise doc.error(("auth", "api_keys"), "no API key is set (GATEWAY_API_KEYS is empty?)")
    try:
        port = int(c["server"]["port"])
    except ValueError:
        raise doc.error(("server", "port"), "must be a port number") from None
    mapping = _mapping_file(doc, c["upstream"]["mapping"], Path(path).parent)
    share = c["deadlines"]["share"]
    return Config(
        file=str(path),
        host=c["server"]["host"],
        port=port,
        base_path=c["server"]["base_path"],
        watch_seconds=float(c["server"]["watch_seconds"]),
        api_keys=api_keys,
        max_auth_failures=int(c["auth"].get("max_failures_per_minute", 0)),
        upstream_url=c["upstream"]["base_url"].rstrip("/"),
        mapping_file=mapping,
        credentials={k: Secret(v or "") for k, v in c["upstream"]["credentials"].items()},
        attempt_timeout=float(c["upstream"]["attempt_timeout_seconds"]),
        max_connections=int(c["upstream"]["max_connections"]),
        max_in_flight=int(c["upstream"]["max_in_flight"]),
        retry=RetrySettings(**c["upstream"]["retry"]),
        breaker=BreakerSettings(
            failure_rate=float(c["upstream"]["circuit_breaker"]["failure_rate"]),
            min_requests=int(c["upstream"]["circuit_breaker"]["min_requests"]),
            window_seconds=float(c["upstream"]["circuit_breaker"]["window_seconds"]),
            cooldown_seconds=float(c["upstream"]["circuit_breaker"]["cooldown_seconds"]),
        ),
        oauth=_oauth(c["upstream"]["oauth"], Path(path).parent),
        meta_budget=c["deadlines"]["meta_seconds"] * share,
        default_budget=c["deadlines"]["default_seconds"] * share,
        margin=float(c["deadlines"]["margin_seconds"]),
        caches={name: CacheSettings(**values) for name, values in c["cache"].items()},
        expertflow_prefix=c["expertflow"]["path_prefix"].rstrip("/"),
        expertflow_not_found=c["expertflow"]["not_found"],
        expertflow_keys=_keys(c["expertflow"]["api_keys"]),
        expertflow_anonymous=_true(c["expertflow"]["allow_anonymous"]),
        bestmatch=FanOutLimits(**c["bestmatch"]),
        admin_key=Secret(c["admin"]["api_key"]) if c["admin"]["api_key"] else None,
        log_level=c["logging"]["level"],
        log_format=c["logging"]["format"],
        log_pii=_true(c["logging"]["pii"]),
        settings=c["settings"],
        default_region=_default_region(
            doc, c["phones"]["default_region"], os.environ if env is None else env
        ),
        shared_state=_shared_state(c["shared_state"]),
    )


def _shared_state(raw: Mapping[str, Any]) -> SharedStateSettings:
    """Redis is on when a URL is given (`${REDIS_URL:-}` in the example config)."""
    url = str(raw.get("redis_url") or "").strip()
    return SharedStateSettings(
        redis_url=url or None,
        timeout_seconds=float(raw["timeout_seconds"]),
        retry_seconds=float(raw["retry_seconds"]),
        key_prefix=str(raw["key_prefix"]),
    )
