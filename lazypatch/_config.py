"""Environment -> settings: every environment variable lazypatch reads is read here.

:func:`settings` parses the environment once, at ``import lazypatch.auto``, into one frozen
:class:`Settings`. A value that cannot be parsed gives one warning naming the variable and the
value, and the default applies: configuration never stops the application. The OpenTelemetry SDK
reads its own variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``...) when the tracing layer builds it;
only those whose interpretation is lazypatch's own are read here.

Kept free of imports beyond ``os`` and ``sys``: this module runs at interpreter startup.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, FrozenSet, Mapping, NoReturn, Optional, Tuple

    Environ = Mapping[str, str]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_LEVELS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "WARN": 30, "INFO": 20, "DEBUG": 10}
_OTLP_PROTOCOLS = ("http/protobuf", "grpc")
SOURCES = ("lazypatch", "opentelemetry")
_DISABLING = ("LAZYPATCH_DISABLED_INSTRUMENTATIONS", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")


def strict() -> bool:
    """``LAZYPATCH_STRICT=1``: hook and patch errors propagate instead of being logged (for tests).

    Read at each failure rather than once, so that a test may set it around one import.
    """
    return os.environ.get("LAZYPATCH_STRICT", "").strip().lower() in ("1", "true", "yes", "on")


def propagators() -> str:
    """``OTEL_PROPAGATORS`` now, stripped (empty when unset). Read at start-up, and again when
    OpenTelemetry's API is about to read it: the value it will see is the one checked."""
    return os.environ.get("OTEL_PROPAGATORS", "").strip()


def no_color() -> bool:
    """The ``NO_COLOR`` convention (no-color.org): set and not empty turns colour off."""
    return bool(os.environ.get("NO_COLOR"))


class Settings:
    """What the environment asked for, parsed once; read-only.

    ``disabled`` / ``enabled`` hold instrumentation names, bare (``flask``: both sources) or
    qualified by source (``opentelemetry:flask``), ``*`` for all and ``opentelemetry:*`` for all
    of one source; ``enabled`` is None when not restricted.
    ``cache_dir`` is None when the metadata cache is off.
    ``traces_exporters`` / ``metrics_exporters`` are None when ``OTEL_TRACES_EXPORTER`` /
    ``OTEL_METRICS_EXPORTER`` is unset (the tracing layer then picks OTLP if it is installed).
    ``semconv`` maps ``"http"`` and ``"database"`` to their ``OTEL_SEMCONV_STABILITY_OPT_IN``
    mode: ``"default"``, the signal's name (stable names) or ``"<signal>/dup"`` (stable and old).
    """

    __slots__ = (
        "disabled",
        "enabled",
        "otel_instrumentors",
        "log_level",
        "traces_exporters",
        "metrics_exporters",
        "otlp_protocol",
        "metrics_otlp_protocol",
        "sdk_disabled",
        "cache_dir",
        "semconv",
    )

    disabled: "FrozenSet[str]"
    enabled: "Optional[FrozenSet[str]]"
    otel_instrumentors: bool
    log_level: "Optional[int]"
    traces_exporters: "Optional[Tuple[str, ...]]"
    metrics_exporters: "Optional[Tuple[str, ...]]"
    otlp_protocol: str
    metrics_otlp_protocol: str
    sdk_disabled: bool
    cache_dir: "Optional[str]"
    semconv: "Dict[str, str]"

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> "NoReturn":
        raise AttributeError("Settings are read-only")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Settings({fields})"

    def exclusion(self, source: str, name: str) -> "Optional[str]":
        """Why the instrumentation ``name`` from ``source`` must not be armed, or None."""
        keys = (name, f"{source}:{name}", "*", f"{source}:*")
        if any(key in self.disabled for key in keys):
            return "disabled by " + " / ".join(_DISABLING)
        if self.enabled is not None and not any(key in self.enabled for key in keys):
            return "not in LAZYPATCH_ENABLED_INSTRUMENTATIONS"
        if source == "opentelemetry" and not self.otel_instrumentors:
            return "LAZYPATCH_OTEL_INSTRUMENTORS=0"
        return None


def warn(variable: str, value: str, expected: str) -> None:
    """One warning: ``variable`` has ``value``, ``expected`` was expected, the default applies."""
    from ._log import logger

    logger().warning(
        "lazypatch: ignoring %s=%r: expected %s; using the default", variable, value, expected
    )


def _names(environ: "Environ", variable: str) -> "Optional[FrozenSet[str]]":
    """A comma list of instrumentation names, or None when unset or empty."""
    raw = environ.get(variable)
    if raw is None or not raw.strip():
        return None
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    for name in names:
        source, sep, bare = name.rpartition(":")
        if not bare or (sep and source not in SOURCES) or not _is_name(bare):
            warn(variable, raw, "a comma list of instrumentation names, 'source:name' or '*'")
            return None
    return names


def _is_name(name: str) -> bool:
    return name == "*" or name.replace("_", "").replace("-", "").replace(".", "").isalnum()


def _flag(environ: "Environ", variable: str, default: bool) -> bool:
    raw = environ.get(variable)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    warn(variable, raw, "one of 1/true/yes/on or 0/false/no/off")
    return default


def _log_level(environ: "Environ") -> "Optional[int]":
    raw = environ.get("LAZYPATCH_LOG_LEVEL")
    if raw is None or not raw.strip():
        return None
    value = raw.strip().upper()
    if value in _LEVELS:
        return _LEVELS[value]
    if value.isdecimal():  # not isdigit(): int() refuses superscripts such as "²"
        return int(value)
    warn("LAZYPATCH_LOG_LEVEL", raw, "debug, info, warning, error, critical or a number")
    return None


def _exporters(environ: "Environ", variable: str) -> "Optional[Tuple[str, ...]]":
    raw = environ.get(variable)
    if raw is None or not raw.strip():
        return None
    names = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not all(name.replace("_", "").isalnum() for name in names):
        warn(variable, raw, "a comma list of exporter names (console, otlp, none)")
        return None
    return names


_SEMCONV_SIGNALS = ("http", "database")


def _semconv(environ: "Environ") -> "Dict[str, str]":
    """Modes of ``OTEL_SEMCONV_STABILITY_OPT_IN`` for the signals lazypatch instruments.

    Other signals' tokens (``gen_ai_latest_experimental``...) belong to OpenTelemetry's own
    instrumentations and pass silently; a misspelt ``http`` / ``database`` token is warned about.
    ``<signal>/dup`` wins over ``<signal>``, as in OpenTelemetry.
    """
    modes = dict.fromkeys(_SEMCONV_SIGNALS, "default")
    raw = environ.get("OTEL_SEMCONV_STABILITY_OPT_IN")
    if raw is None or not raw.strip():
        return modes
    tokens = {part.strip().lower() for part in raw.split(",") if part.strip()}
    for token in tokens:
        signal = token.partition("/")[0]
        if signal in modes and token not in (signal, f"{signal}/dup"):
            warn(
                "OTEL_SEMCONV_STABILITY_OPT_IN",
                raw,
                "a comma list of http, http/dup, database, database/dup (and other signals')",
            )
            return dict.fromkeys(_SEMCONV_SIGNALS, "default")
    for signal in _SEMCONV_SIGNALS:
        if f"{signal}/dup" in tokens:
            modes[signal] = f"{signal}/dup"
        elif signal in tokens:
            modes[signal] = signal
    return modes


def _protocol(environ: "Environ", variable: str) -> "Optional[str]":
    """The OTLP protocol ``variable`` names, None when unset; warned about when invalid."""
    raw = environ.get(variable)
    if raw is None or not raw.strip():
        return None
    if raw.strip() in _OTLP_PROTOCOLS:
        return raw.strip()
    warn(variable, raw, " or ".join(_OTLP_PROTOCOLS))
    return "http/protobuf"


def _otlp_protocols(environ: "Environ") -> "Tuple[str, str]":
    """``(traces, metrics)`` OTLP protocols: each signal's variable, else the common one."""
    common = _protocol(environ, "OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    return (
        _protocol(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or common,
        _protocol(environ, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or common,
    )


def _sdk_disabled(environ: "Environ") -> bool:
    raw = environ.get("OTEL_SDK_DISABLED")
    if raw is None or not raw.strip():
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        warn("OTEL_SDK_DISABLED", raw, "true or false")
    return value == "true"


def _cache_dir(environ: "Environ") -> "Optional[str]":
    """``LAZYPATCH_CACHE_DIR`` (empty: no cache), else the platform's per-user cache directory."""
    raw = environ.get("LAZYPATCH_CACHE_DIR")
    if raw is not None:
        return os.path.abspath(os.path.expanduser(raw.strip())) if raw.strip() else None
    if os.name == "nt":
        base = environ.get("LOCALAPPDATA")
        return os.path.join(base, "lazypatch", "Cache") if base else None
    if sys.platform == "darwin":
        base = os.path.join("~", "Library", "Caches")
    else:
        base = environ.get("XDG_CACHE_HOME", "")
        if not os.path.isabs(base):  # the XDG spec: a relative value is invalid, ignore it
            base = os.path.join("~", ".cache")
    base = os.path.expanduser(base)
    return os.path.join(base, "lazypatch") if os.path.isabs(base) else None


def load(environ: "Optional[Environ]" = None) -> Settings:
    """Parse ``environ`` (default ``os.environ``) into :class:`Settings`; warn about bad values."""
    env = os.environ if environ is None else environ
    disabled: FrozenSet[str] = frozenset()
    for variable in _DISABLING:
        disabled |= _names(env, variable) or frozenset()
    _flag(env, "LAZYPATCH_STRICT", False)  # read again at each failure; warned about here, once
    traces_protocol, metrics_protocol = _otlp_protocols(env)
    return Settings(
        disabled=disabled,
        enabled=_names(env, "LAZYPATCH_ENABLED_INSTRUMENTATIONS"),
        otel_instrumentors=_flag(env, "LAZYPATCH_OTEL_INSTRUMENTORS", True),
        log_level=_log_level(env),
        traces_exporters=_exporters(env, "OTEL_TRACES_EXPORTER"),
        metrics_exporters=_exporters(env, "OTEL_METRICS_EXPORTER"),
        otlp_protocol=traces_protocol,
        metrics_otlp_protocol=metrics_protocol,
        sdk_disabled=_sdk_disabled(env),
        cache_dir=_cache_dir(env),
        semconv=_semconv(env),
    )


_settings: "Optional[Settings]" = None


def settings() -> Settings:
    """The settings of this process, parsed from the environment on first call."""
    global _settings
    if _settings is None:
        _settings = load()
    return _settings


def child_environment(
    service_name: "Optional[str]" = None,
    traces_exporter: "Optional[str]" = None,
    bootstrap_dir: "Optional[str]" = None,
    then_dir: "Optional[str]" = None,
) -> "Dict[str, str]":
    """The environment for ``lazypatch run``'s command: ours, ``bootstrap_dir`` first on PYTHONPATH.

    ``then_dir`` (another tool's ``sitecustomize`` directory) follows it if not already there. An
    existing PYTHONPATH is kept after them (without a second copy of ``bootstrap_dir``).
    """
    env = dict(os.environ)
    if bootstrap_dir is not None:
        kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != bootstrap_dir]
        first = (
            [bootstrap_dir] if then_dir is None or then_dir in kept else [bootstrap_dir, then_dir]
        )
        env["PYTHONPATH"] = os.pathsep.join([*first, *kept])
    if service_name is not None:
        env["OTEL_SERVICE_NAME"] = service_name
    if traces_exporter is not None:
        env["OTEL_TRACES_EXPORTER"] = traces_exporter
    return env
