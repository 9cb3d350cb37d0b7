"""sqlite3: a CLIENT span and a ``db.client.operation.duration`` measurement per ``execute`` /
``executemany`` / ``executescript``.

``sqlite3.Connection`` and ``sqlite3.Cursor`` are immutable C types, so their methods cannot be
wrapped in place. ``sqlite3.connect`` (and ``sqlite3.dbapi2.connect``) are wrapped instead, to
pass a ``factory=`` that subclasses the caller's (``sqlite3.Connection`` by default) with traced
methods; its cursors are subclasses of ``sqlite3.Cursor`` likewise. Connections stay real
``sqlite3.Connection`` instances: ``isinstance``, ``backup()`` and every C-level check work.

The derived classes are made once per base class and outlive ``uninstrument()``: their methods
then call straight through. OpenTelemetry is imported by the first statement run while
instrumented, not by ``connect``. What cannot be traced: a ``connect`` captured by
``from sqlite3 import connect`` before instrumentation (a builtin function bound to a name
lazypatch cannot reach), connections made by calling ``sqlite3.Connection`` directly, and a
``factory=`` that is a function rather than a class. Parameters are never recorded.

Known difference: ``type(connection)`` is the derived class, not ``sqlite3.Connection`` itself
(``docs/guarantees.md``). The C functions are called through ``_callsite`` so that the warnings
they issue point at the application's line; ``__init__`` is not overridden for the same reason.
"""

import os
import re
from time import perf_counter

from .. import Instrumentor
from . import _callsite, error_type, report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sqlite3 import Connection, Cursor
    from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Type, TypeVar

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._semconv import Histogram

    T = TypeVar("T")
    #: ``(span name, span attributes, metric attributes)`` of one statement.
    Described = Tuple[str, Dict[str, str], Dict[str, str]]

    class _SQLite3(Protocol):
        """The ``sqlite3`` module, as far as the derived classes need it."""

        @property
        def Connection(self) -> "Type[Connection]": ...

        @property
        def Cursor(self) -> "Type[Cursor]": ...

    class _TracedConnection(Protocol):
        """A connection of a derived class: its database and its statements' descriptions."""

        _lazypatch_database: object
        _lazypatch_attributes: "Optional[Dict[str, str]]"
        _lazypatch_statements: "Dict[str, Described]"

    class _TracedCursor(Protocol):
        """A cursor of a derived class, on a connection of one."""

        @property
        def connection(self) -> "_TracedConnection": ...


_NAME = "sqlite3"
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")
_CACHE_SIZE = 256


class _Tracing:
    """What the derived classes need: the types, built once, and what spans need from
    OpenTelemetry (tracer, histogram, names), loaded at the first statement while instrumented
    (``active``)."""

    def __init__(self, sqlite3: "_SQLite3") -> None:
        self.active = False
        self.providers: Tuple[Optional[TracerProvider], Optional[MeterProvider]] = (None, None)
        self.tracer: Optional[Tracer] = None
        self.histogram: Optional[Histogram] = None
        self.connection_types: Dict[object, Type[Connection]] = {}
        self.cursor_types: Dict[object, Type[Cursor]] = {}
        self.sqlite3 = sqlite3
        self.cursor_type = self._derive_cursor(sqlite3.Cursor)
        self.connection_type = self._derive_connection(sqlite3.Connection)

    def start(
        self,
        tracer_provider: "Optional[TracerProvider]",
        meter_provider: "Optional[MeterProvider]",
    ) -> None:
        """Trace from now on, with these providers (the global ones where None)."""
        self.providers = (tracer_provider, meter_provider)
        self.tracer = None
        self.histogram = None
        self.active = True

    def stop(self) -> None:
        """Call straight through from now on."""
        self.active = False
        self.tracer = None
        self.histogram = None

    def _load(self) -> "Tracer":
        """OpenTelemetry's names, the tracer and the histogram: imported at the first span."""
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, StatusCode

        from . import _semconv as names

        self._system = {names.DB_SYSTEM_NAME: names.SQLITE}
        self._namespace_key = names.DB_NAMESPACE
        self._operation_key = names.DB_OPERATION_NAME
        self._text_key = names.DB_QUERY_TEXT
        self._old = names.DATABASE_OLD
        self._add_old = names.add_old
        self._error_type_key = names.ERROR_TYPE
        self._client = SpanKind.CLIENT
        self._error = StatusCode.ERROR
        self._suppress = context._SUPPRESS_INSTRUMENTATION_KEY
        self._get_current = context.get_current
        self._attach = context.attach
        self._detach = context.detach
        self._set_span_in_context = trace.set_span_in_context
        tracer_provider, meter_provider = self.providers
        histogram = names.duration_histogram(
            names.DB_CLIENT_OPERATION_DURATION, __name__, meter_provider
        )
        tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        if self.active:
            self.histogram = histogram
            self.tracer = tracer
        return tracer

    def base_attributes(self, database: object) -> "Dict[str, str]":
        """Attributes shared by every span of one connection."""
        namespace = (
            os.fsdecode(database)
            if isinstance(database, (str, bytes, os.PathLike))
            else str(database)
        )
        return {**self._system, self._namespace_key: namespace}

    def describe(self, connection: "_TracedConnection", sql: str) -> "Described":
        """``(span name, span attributes, metric attributes)`` of ``sql`` on ``connection``, cached
        per connection: applications run the same few statements, and the tracer and the meter
        copy what they keep."""
        statements = connection._lazypatch_statements
        found = statements.get(sql)
        if found is None:
            base = connection._lazypatch_attributes
            if base is None:
                base = connection._lazypatch_attributes = self.base_attributes(
                    connection._lazypatch_database
                )
            namespace = base[self._namespace_key]
            match = _FIRST_WORD.match(sql)
            if match is None:
                name, metric = namespace, base
            else:
                name = f"{match[1]} {namespace}"
                metric = {**base, self._operation_key: match[1]}
            attributes = self._add_old({**metric, self._text_key: sql}, self._old)
            found = name, attributes, metric
            if len(statements) >= _CACHE_SIZE:
                statements.clear()
            statements[sql] = found
        return found

    def traced(
        self,
        method: "Callable[..., T]",
        cursor: "_TracedCursor",
        sql: object,
        args: "Tuple[Any, ...]",
    ) -> "T":
        """Run ``method(sql, *args)`` (a cursor's bound method) inside a span."""
        if not self.active or not isinstance(sql, str):
            return _call(method, (sql, *args), {})
        tracer = self.tracer
        if tracer is None:
            try:
                tracer = self._load()
            except Exception:
                report(_NAME)
                return _call(method, (sql, *args), {})
        ctx = self._get_current()
        if ctx.get(self._suppress):
            return _call(method, (sql, *args), {})
        span: Optional[Span] = None
        histogram = self.histogram
        try:
            name, attributes, metric = self.describe(cursor.connection, sql)
            span = tracer.start_span(name, ctx, self._client, attributes)
            token = self._attach(self._set_span_in_context(span, ctx))
            start = perf_counter()
        except Exception:
            _abandon(span)
            return _call(method, (sql, *args), {})
        try:
            result = _call(method, (sql, *args), {})
        except BaseException as exc:
            elapsed = perf_counter() - start
            self._detach(token)
            kind = self._fail(span, exc)
            if histogram is not None:
                try:
                    histogram.record(elapsed, {**metric, self._error_type_key: kind})
                except Exception:
                    report(_NAME)
            raise
        elapsed = perf_counter() - start
        self._detach(token)
        try:
            span.end()
            if histogram is not None:
                histogram.record(elapsed, metric)
        except Exception:
            report(_NAME)
        return result

    def _fail(self, span: "Span", exc: BaseException) -> str:
        """Record ``exc`` on ``span`` and end it; return its ``error.type``."""
        kind = error_type(exc)
        try:
            span.record_exception(exc)
            span.set_attribute(self._error_type_key, kind)
            span.set_status(self._error, f"{type(exc).__name__}: {exc}")
            span.end()
        except Exception:
            _abandon(span)
        return kind

    def connection_factory(self, factory: object) -> object:
        """The traced class to pass as ``factory=`` for the caller's ``factory``; anything but a
        ``Connection`` subclass (``None`` included, which sqlite3 rejects) as it is."""
        derived = self.connection_types.get(factory)
        if derived is None:
            if not (isinstance(factory, type) and issubclass(factory, self.sqlite3.Connection)):
                return factory
            derived = self._derive_connection(factory)
        return derived

    def cursor_factory(self, factory: object) -> object:
        """The traced cursor class for a ``cursor(factory=...)`` argument; others as they are."""
        derived = self.cursor_types.get(factory)
        if derived is None:
            if not (isinstance(factory, type) and issubclass(factory, self.sqlite3.Cursor)):
                return factory
            derived = self._derive_cursor(factory)
        return derived

    def _derive_cursor(self, base: "Type[Cursor]") -> "Type[Cursor]":
        tracing = self

        class TracedCursor(base):  # type: ignore[misc, valid-type]
            __qualname__ = f"Traced{base.__name__}"

            def execute(self, sql: str, *args: "Any") -> "Any":
                return tracing.traced(super().execute, self, sql, args)

            def executemany(self, sql: str, *args: "Any") -> "Any":
                return tracing.traced(super().executemany, self, sql, args)

            def executescript(self, sql: str, *args: "Any") -> "Any":
                return tracing.traced(super().executescript, self, sql, args)

        self.cursor_types[base] = self.cursor_types[TracedCursor] = TracedCursor
        return TracedCursor

    def _derive_connection(self, base: "Type[Connection]") -> "Type[Connection]":
        tracing = self
        new_cursor = self.sqlite3.Connection.cursor
        new_takes_arguments = base.__new__ is not object.__new__

        class TracedConnection(base):  # type: ignore[misc, valid-type]
            __qualname__ = f"Traced{base.__name__}"

            # __new__ rather than __init__: no Python frame of ours around Connection.__init__,
            # whose warnings then point at the caller.
            def __new__(cls, *args: "Any", **kwargs: "Any") -> "Any":
                if new_takes_arguments:
                    self = super().__new__(cls, *args, **kwargs)
                else:
                    self = super().__new__(cls)
                self._lazypatch_database = args[0] if args else kwargs.get("database")
                self._lazypatch_attributes = None  # made at the first statement's span
                self._lazypatch_statements = {}
                return self

            def cursor(self, *args: "Any", **kwargs: "Any") -> "Any":
                if args:
                    args = (tracing.cursor_factory(args[0]), *args[1:])
                elif "factory" in kwargs:
                    kwargs["factory"] = tracing.cursor_factory(kwargs["factory"])
                else:
                    kwargs["factory"] = tracing.cursor_type
                return super().cursor(*args, **kwargs)

            # Like the C shortcuts: a cursor made by Connection.cursor itself (which hands it
            # the connection's row_factory), bypassing any cursor() override of ``base``.
            def execute(self, sql: str, *args: "Any") -> "Any":
                return new_cursor(self, tracing.cursor_type).execute(sql, *args)

            def executemany(self, sql: str, *args: "Any") -> "Any":
                return new_cursor(self, tracing.cursor_type).executemany(sql, *args)

            def executescript(self, sql: str, *args: "Any") -> "Any":
                return new_cursor(self, tracing.cursor_type).executescript(sql, *args)

        self.connection_types[base] = self.connection_types[TracedConnection] = TracedConnection
        return TracedConnection

    def connect_wrapper(
        self,
        wrapped: "Callable[..., T]",
        instance: object,
        args: "Tuple[Any, ...]",
        kwargs: "Dict[str, Any]",
    ) -> "T":
        """Wrapper of ``sqlite3.connect``: the same call with a traced ``factory=``."""
        try:
            if len(args) > 5:
                args = (*args[:5], self.connection_factory(args[5]), *args[6:])
            elif "factory" in kwargs:
                kwargs["factory"] = self.connection_factory(kwargs["factory"])
            else:
                kwargs["factory"] = self.connection_type
        except Exception:
            report(_NAME)
        return _call(wrapped, args, kwargs)


def _abandon(span: "Optional[Span]") -> None:
    report(_NAME)
    if span is not None:
        try:
            span.end()
        except Exception:
            pass


_call = _callsite.call
_tracing: "Optional[_Tracing]" = None


class SQLite3Instrumentor(Instrumentor):
    """Traces every statement run on connections opened with ``sqlite3.connect``."""

    targets = ("sqlite3",)

    def _instrument(self, **kwargs: "Any") -> None:
        import sqlite3

        global _tracing
        if _tracing is None:
            _tracing = _Tracing(sqlite3)
        _tracing.start(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self.wrap("sqlite3", "connect", _tracing.connect_wrapper)
        self.wrap("sqlite3.dbapi2", "connect", _tracing.connect_wrapper)

    def _uninstrument(self, **kwargs: "Any") -> None:
        if _tracing is not None:
            _tracing.stop()
