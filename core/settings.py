"""One validated settings object, read from ``SCANPATH_*`` environment variables."""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, NamedTuple
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.files import read_or_create_private

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The secret earlier versions used when none was set: public, so refused everywhere.
PLACEHOLDER_SECRET = "dev-only-placeholder-secret-change-me-now"  # noqa: S105
MIN_SECRET_LENGTH = 32
# Where the generated signing secret is kept, under var_dir (mode 0600).
SECRET_FILE = "secret_key"
# AE titles: 1 to 16 characters of the default repertoire, no backslash or control
# characters, not all spaces (VR AE, PS3.5 6.2).
AE_TITLE_MAX = 16
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")


class DicomDestination(NamedTuple):
    """A DICOM peer results are sent to: ``AE@host:port``."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_destination(text: str) -> DicomDestination:
    """``AE@host:port`` as a :class:`DicomDestination`; ValueError naming what is wrong.

    The host may be a name, an IPv4 address or a bracketed IPv6 address
    (``[::1]``); the port is 1-65535.
    """
    ae, at, address = text.strip().partition("@")
    host, colon, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not (at and colon and host and port.isascii() and port.isdigit()):
        raise ValueError(f"{text.strip()!r} is not AE@host:port")
    if not _AE_TITLE.fullmatch(ae) or not ae.strip():
        raise ValueError(f"{ae!r} is not an AE title (1-{AE_TITLE_MAX} characters, "
                         "no backslash, not all spaces; PS3.5 6.2)")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} of {text.strip()!r} is not 1-65535")
    return DicomDestination(ae.strip(), host, int(port))


class Settings(BaseSettings):
    """Runtime configuration. Unknown ``SCANPATH_*`` variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="SCANPATH_", extra="ignore")

    env: str = Field("development", pattern="^(development|test|production)$")
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'scanpath.db'}"
    var_dir: Path = PROJECT_ROOT / "var"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    dicom_port: int = Field(11112, ge=1, le=65535)
    dicom_ae_title: str = "SCANPATH"
    # Calling AE titles allowed to associate, comma-separated; empty allows any.
    dicom_allowed_aes: Annotated[list[str], NoDecode] = []
    # CDS Hooks: base-URL prefixes of the ``fhirServer``s ScanPath may read a
    # patient's history from (with the caller's token), comma-separated. Empty
    # refuses every such read, so CDS clients must send complete prefetch.
    cds_fhir_servers: Annotated[list[str], NoDecode] = []
    canonical_base: str = "https://scanpath.example/fhir"
    # The URL clients reach ScanPath at (behind a proxy: its public address and any
    # path prefix). Every link ScanPath returns is built from it, never from the
    # request's Host header; unset, it is http://{host}:{port}.
    public_base_url: str | None = None
    study_idle_seconds: float = Field(5.0, gt=0)
    # Quiet time before a study short of the image count its series state
    # (Images in Acquisition, 0020,1002) is analysed anyway.
    study_incomplete_seconds: float = Field(600.0, gt=0)
    # Celery broker for analysis jobs (e.g. redis://127.0.0.1:6379/0); unset runs them
    # on the in-process worker thread.
    broker_url: str | None = None
    job_poll_seconds: float = Field(1.0, gt=0)
    job_lease_seconds: float = Field(300.0, gt=0)
    job_max_attempts: int = Field(3, ge=1)
    # HS256 key for access tokens. Unset (empty): a random one is made on first start
    # and kept in {var_dir}/secret_key (mode 0600), so restarts keep tokens valid.
    secret_key: str = ""
    token_issuer: str = "scanpath"
    token_lifetime_seconds: int = Field(3600, ge=60)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    dicomweb_max_body_bytes: int = 256 * 1024 * 1024  # one STOW-RS request, held in memory
    dicomweb_max_parts: int = Field(10_000, ge=1)  # parts in one STOW-RS request
    accession_system: str = "https://scanpath.example/accession"
    accession_prefix: str = Field("SP", pattern="^[A-Z0-9]{0,6}$")
    page_size_default: int = Field(20, ge=1)
    page_size_max: int = Field(500, ge=1)
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # Browser origins allowed to call the API cross-origin (CORS), comma-separated;
    # empty sends no Access-Control-Allow-Origin at all.
    cors_origins: Annotated[list[str], NoDecode] = []
    # Subscriptions (README "Notifications"): URL prefixes a rest-hook endpoint must
    # start with, comma-separated; empty refuses every Subscription.
    subscription_endpoints: Annotated[list[str], NoDecode] = []
    # A notification still failing this long after the change is marked dead (kept).
    notify_give_up_hours: float = Field(72.0, gt=0)
    # Optional key for the X-ScanPath-Signature header (HMAC-SHA256 over the body).
    notify_hmac_secret: str | None = None
    notify_timeout_seconds: float = Field(10.0, gt=0)
    # PACS (or other DICOM peers) that receive every report's SR, SEG and
    # Encapsulated PDF by C-STORE, comma-separated ``AE@host:port``; empty sends
    # nothing. Delivery is retried with exponential backoff from
    # ``pacs_retry_base_seconds``, doubling up to ``pacs_retry_max_seconds``, for
    # ``pacs_max_attempts`` attempts (the defaults: about three days).
    dicom_destinations: Annotated[list[DicomDestination], NoDecode] = []
    pacs_retry_base_seconds: float = Field(30.0, gt=0)
    pacs_retry_max_seconds: float = Field(3600.0, gt=0)
    pacs_max_attempts: int = Field(80, ge=1)
    # Seconds to wait for a destination to connect and answer (pynetdicom timeouts).
    pacs_timeout_seconds: float = Field(30.0, gt=0)
    # Days a patient report link works after sign-off (README "Patient report links").
    patient_link_days: int = Field(30, ge=1, le=366)

    @field_validator("dicom_allowed_aes", mode="before")
    @classmethod
    def _split_titles(cls, value: object) -> object:
        if isinstance(value, str):
            return [title.strip() for title in value.split(",") if title.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cds_fhir_servers", "subscription_endpoints", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("subscription_endpoints")
    @classmethod
    def _http_prefixes(cls, value: list[str]) -> list[str]:
        """Each prefix an http(s) URL with a host, so no prefix admits every endpoint."""
        for prefix in value:
            parts = urlsplit(prefix)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"SCANPATH_SUBSCRIPTION_ENDPOINTS: {prefix!r} is not an "
                                 "http(s) URL prefix with a host")
        return value

    @field_validator("notify_hmac_secret")
    @classmethod
    def _hmac_key_length(cls, value: str | None) -> str | None:
        """RFC 2104 §3: a key shorter than the hash output (32 bytes for SHA-256)
        weakens the HMAC; an empty one means no signature."""
        if value and len(value.encode()) < MIN_SECRET_LENGTH:
            raise ValueError(f"SCANPATH_NOTIFY_HMAC_SECRET must be at least "
                             f"{MIN_SECRET_LENGTH} bytes (RFC 2104 §3)")
        return value or None

    @field_validator("dicom_destinations", mode="before")
    @classmethod
    def _split_destinations(cls, value: object) -> object:
        if isinstance(value, str):
            return [parse_destination(item) for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _signing_secret(self) -> Settings:
        """Refuse a public or short secret in every environment; make one when unset."""
        if not self.secret_key:
            self.secret_key = stored_secret(self.var_dir / SECRET_FILE)
        if self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError("SCANPATH_SECRET_KEY is the published placeholder; unset it "
                             "(a random one is kept under SCANPATH_VAR_DIR) or set your own")
        if len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(f"SCANPATH_SECRET_KEY must be at least {MIN_SECRET_LENGTH} "
                             "characters")
        return self

    @property
    def base_url(self) -> str:
        """Where this server listens, for links printed to operators."""
        return f"http://{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        """The base of every link ScanPath returns (``public_base_url``, else ``base_url``)."""
        return (self.public_base_url or self.base_url).rstrip("/")


def stored_secret(path: Path) -> str:
    """The signing secret kept at ``path``: 256 random bits, made (mode 0600) on first use."""
    made = read_or_create_private(path, lambda: secrets.token_urlsafe(32).encode())
    return made.decode().strip()


# SCANPATH_* variables read outside Settings: the web worker count (scanpath serve)
# and the test suite's own.
OTHER_VARIABLES = ("SCANPATH_WORKERS", "SCANPATH_TEST_POSTGRES_URL", "SCANPATH_TEST_NODE")


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``SCANPATH_*`` variables that no setting reads, each with the closest known name.

    Settings ignore unknown variables, so a misspelt one (``SCANPATH_DATA_DIR``)
    would silently leave its default in place; start-up reports them.
    """
    known = [f"SCANPATH_{name.upper()}" for name in Settings.model_fields] + \
        list(OTHER_VARIABLES)
    found = sorted(name for name in environ if name.upper().startswith("SCANPATH_")
                   and name.upper() not in known)
    return [(name, next(iter(difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)),
                        None)) for name in found]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return Settings()  # type: ignore[call-arg]  # fields come from the environment
