"""The gateway's config: read once, validated against ``schema/config.yaml`` and filled with that
schema's defaults (they are written there and nowhere else), into one frozen dataclass per
section. Secrets come from the environment through ``${VAR}`` and are held in ``Secret``, which
never shows its value in a repr, a log line or a traceback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
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


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "console"]
UnknownNumber = Literal["error", "empty"]  # Hybrid Chat's answer for a number nobody has
Budget = Literal["meta", "default"]  # which of Khoros's deadlines an operation has


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    base_path: str  # no trailing slash
    watch_seconds: float  # 0: the files are not watched
    drain_delay_seconds: float  # after SIGTERM, served on (unready) before it stops listening
    header_timeout_seconds: float  # a new connection's first request head must be whole by then
    keepalive_timeout_seconds: float  # and each next one, this long after the answer before


@dataclass(frozen=True)
class AuthSettings:
    api_keys: tuple[Secret, ...]
    max_failures_per_minute: int  # 0: no limit


@dataclass(frozen=True)
class OAuthSettings:
    client_id: Secret
    client_secret: Secret
    refresh_token: Secret
    token_file: Path | None
    refresh_before_seconds: float


@dataclass(frozen=True)
class UpstreamSettings:
    mapping: Path  # the mapping file (a shipped one, for a bare name)
    base_url: str  # no trailing slash
    credentials: Mapping[str, Secret]
    attempt_timeout_seconds: float
    max_connections: int
    max_in_flight: int
    max_answer_bytes: int
    retry: RetrySettings
    circuit_breaker: BreakerSettings
    oauth: OAuthSettings | None  # None unless a client id, a secret and a refresh token are set


@dataclass(frozen=True)
class DeadlineSettings:
    meta_seconds: float
    default_seconds: float
    share: float
    margin_seconds: float

    def budget(self, kind: Budget) -> float:
        """The seconds an operation of this kind has: a share of Khoros's deadline."""
        return (self.meta_seconds if kind == "meta" else self.default_seconds) * self.share


@dataclass(frozen=True)
class ExpertflowSettings:
    path_prefix: str  # no trailing slash
    not_found: UnknownNumber
    api_keys: tuple[Secret, ...]
    allow_anonymous: bool


@dataclass(frozen=True)
class AdminSettings:
    api_key: Secret | None  # None: the admin endpoints are off


@dataclass(frozen=True)
class LoggingSettings:
    level: LogLevel
    format: LogFormat
    pii: bool


@dataclass(frozen=True)
class PhoneSettings:
    # Phone numbers written without a country code are read as dialled here (ISO 3166 code).
    default_region: str | None


@dataclass(frozen=True)
class Listen:
    """Where to listen, as given on the command line (`--host`, `--port`) or by the environment
    (GATEWAY_HOST, GATEWAY_PORT): it beats the file, at start and at every reload."""

    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Config:
    """The config file, a section a field, each as the README's configuration reference
    describes it."""

    file: str
    server: ServerSettings
    auth: AuthSettings
    upstream: UpstreamSettings
    deadlines: DeadlineSettings
    cache: Mapping[str, CacheSettings]
    expertflow: ExpertflowSettings
    bestmatch: FanOutLimits
    admin: AdminSettings
    logging: LoggingSettings
    phones: PhoneSettings
    settings: Mapping[str, Any]
    shared_state: SharedStateSettings
    listen: Listen = Listen()  # what beat `server.host` and `server.port` (a reload keeps it)


def defaults(*section: str) -> dict[str, Any]:
    """The schema's defaults of a section (``defaults("upstream", "retry")``), for what is
    made without a config file (tests, tools)."""
    found: Any = yamlfile.with_defaults(yamlfile.schema("config"), {})
    for key in section:
        found = found[key]
    return dict(found)


def _true(given: bool | str) -> bool:
    """A boolean setting, also when it comes from the environment as text."""
    return str(given).strip().lower() in ("true", "1", "yes")


def _keys(given: str | list[str]) -> tuple[Secret, ...]:
    keys = given.split(",") if isinstance(given, str) else given
    return tuple(Secret(k.strip()) for k in keys if k.strip())


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config holds, for log redaction."""
    credentials = config.upstream.credentials
    found = [*config.auth.api_keys, *config.expertflow.api_keys, *credentials.values()]
    if config.admin.api_key:
        found.append(config.admin.api_key)
    oauth = config.upstream.oauth
    if oauth:
        found += [oauth.client_secret, oauth.refresh_token]
    # An email is an identifier, not a secret; it is masked as PII instead.
    emails = {v for k, v in credentials.items() if "email" in k}
    out = [s.reveal() for s in found if s and s not in emails]
    url = config.shared_state.redis_url
    if url:  # it may hold a password: the URL and the password are both secrets
        out.append(url)
        password = urlsplit(url).password
        if password:
            out += [password, unquote(password)]
    return out


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
        refresh_before_seconds=raw["refresh_before_seconds"],
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


def load_config(
    path: str | Path, *, env: Mapping[str, str] | None = None, listen: Listen | None = None
) -> Config:
    """The config file, validated and filled with the schema's defaults; ``listen`` (what the
    command line and the environment said) beats its `server.host` and `server.port`."""
    listen = listen or Listen()
    doc = yamlfile.load(path, env=env)
    if not isinstance(doc.data, dict):
        raise ConfigError(doc.file, 1, "", "the config must be a mapping of keys")
    _check_version(doc)
    schema = yamlfile.schema("config")
    yamlfile.validate(doc, schema)
    c = yamlfile.with_defaults(schema, doc.data)
    here = Path(path).parent
    api_keys = _keys(c["auth"]["api_keys"])
    if not api_keys:
        raise doc.error(("auth", "api_keys"), "no API key is set (GATEWAY_API_KEYS is empty?)")
    try:
        port = int(c["server"]["port"])
    except ValueError:
        raise doc.error(("server", "port"), "must be a port number") from None
    up = c["upstream"]
    ef = c["expertflow"]
    return Config(
        file=str(path),
        server=ServerSettings(
            **{
                **c["server"],
                "host": listen.host or c["server"]["host"],
                "port": port if listen.port is None else listen.port,
                "drain_delay_seconds": float(c["server"]["drain_delay_seconds"]),
            }
        ),
        auth=AuthSettings(api_keys, int(c["auth"]["max_failures_per_minute"])),
        upstream=UpstreamSettings(
            mapping=_mapping_file(doc, up["mapping"], here),
            base_url=_base_url(doc, up["base_url"]),
            credentials={k: Secret(v or "") for k, v in up["credentials"].items()},
            attempt_timeout_seconds=up["attempt_timeout_seconds"],
            max_connections=up["max_connections"],
            max_in_flight=up["max_in_flight"],
            max_answer_bytes=up["max_answer_bytes"],
            retry=RetrySettings(**up["retry"]),
            circuit_breaker=BreakerSettings(**up["circuit_breaker"]),
            oauth=_oauth(up["oauth"], here),
        ),
        deadlines=DeadlineSettings(**c["deadlines"]),
        cache={name: CacheSettings(**values) for name, values in c["cache"].items()},
        expertflow=ExpertflowSettings(
            path_prefix=ef["path_prefix"].rstrip("/"),
            not_found=ef["not_found"],
            api_keys=_keys(ef["api_keys"]),
            allow_anonymous=_true(ef["allow_anonymous"]),
        ),
        bestmatch=FanOutLimits(**c["bestmatch"]),
        admin=AdminSettings(Secret(c["admin"]["api_key"]) if c["admin"]["api_key"] else None),
        logging=LoggingSettings(
            c["logging"]["level"], c["logging"]["format"], _true(c["logging"]["pii"])
        ),
        phones=PhoneSettings(
            _default_region(doc, c["phones"]["default_region"], os.environ if env is None else env)
        ),
        settings=c["settings"],
        shared_state=_shared_state(doc, c["shared_state"]),
        listen=listen,
    )


def _base_url(doc: yamlfile.YamlDoc, given: str) -> str:
    """`upstream.base_url`, without its trailing slash, when every request can be built on it.
    Credentials in it are refused: they would be logged with the URL, and aiohttp refuses them
    beside the mapping's `Authorization` (every request a 500). The value is never shown: it
    may hold a password (or come from the environment)."""
    where = ("upstream", "base_url")
    try:
        parts = urlsplit(given.strip())
        _ = parts.port  # a port that is no number, or out of range, raises
    except ValueError:
        raise doc.error(where, "is not a URL: give http(s)://host[:port][/path]") from None
    if "@" in parts.netloc:
        raise doc.error(
            where,
            "holds credentials (user:password@): put them in upstream.credentials, "
            "which the mapping's auth rules send",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise doc.error(where, "is not a URL: give http(s)://host[:port][/path]")
    if parts.query or parts.fragment or given.rstrip().endswith(("?", "#")):
        raise doc.error(where, "takes no query or fragment: the mapping's paths are added to it")
    return given.strip().rstrip("/")


def _shared_state(doc: yamlfile.YamlDoc, raw: Mapping[str, Any]) -> SharedStateSettings:
    """Redis is on when a URL is given (`${REDIS_URL:-}` in the example config). One that
    does not parse (a port out of range, a bracket left open) is refused here, never shown (it
    may hold a password), rather than stopping `serve` after `check` said it was fine."""
    url = str(raw["redis_url"] or "").strip()
    try:
        _ = urlsplit(url).port  # a port that is no number, or out of range, raises
    except ValueError:
        where = ("shared_state", "redis_url")
        raise doc.error(where, "is not a URL: give redis://[:password@]host[:port][/db]") from None
    return SharedStateSettings(
        redis_url=url or None,
        timeout_seconds=raw["timeout_seconds"],
        retry_seconds=raw["retry_seconds"],
        key_prefix=raw["key_prefix"],
    )
