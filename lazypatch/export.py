"""Terminal trace view: a span exporter that prints each finished trace as an indented tree.

Select it without code, through the OpenTelemetry SDK's exporter entry points::

    OTEL_TRACES_EXPORTER=lazypatch_tree lazypatch run python app.py

or add it to a tracer provider of your own::

    provider.add_span_processor(SimpleSpanProcessor(TreeExporter()))

Each trace is printed once it is complete, children under their parent in start order, with
the duration in milliseconds and a bar placing the span within the whole trace::

    trace 4bf92f3577b34da6a3ce929d0e0e4736  4 spans  20.0 ms
    GET /orders/<int:id> server shop                    20.0 ms ████████████████████
    │  url=http://127.0.0.1:5000/orders/7  status=200
    ├─ SELECT client                                    1.00 ms  █
    │     db=sqlite  op=SELECT  query=SELECT id, total FROM orders WHERE id = ?
    └─ GET client                                       5.00 ms      █████
       │  url=http://127.0.0.1:5001/stock/7  status=200
       └─ render internal                               1.00 ms       █

Attributes worth a glance (HTTP method, route, URL and status; database system, operation and
query; the error) follow each span under short labels, in the newest semantic conventions or
the older ones; the service is named where it changes. Colour is used only on a terminal.

The SDK hands finished spans over in end order, children before their parent, one by one
(``SimpleSpanProcessor``) or in batches (``BatchSpanProcessor``); the exporter buffers them per
trace until the trace's local root (a span without a parent, or whose parent is remote) has
ended along with every local ancestor of the buffered spans. Spans whose root never arrives are
printed at ``shutdown()`` or ``force_flush()``, marked with the parent they are missing.
"""

from __future__ import annotations

import shutil
import sys
import threading
import unicodedata
from typing import Iterable, Sequence, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes import db_attributes as _db
from opentelemetry.semconv._incubating.attributes import http_attributes as _http
from opentelemetry.semconv._incubating.attributes import url_attributes as _url
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_TYPE
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME
from opentelemetry.trace import StatusCode

from . import _config
from ._log import logger
from ._state import state

__all__ = ["TreeExporter"]

_MIN_WIDTH = 40
_MAX_TTY_WIDTH = 120
_DURATION_CELLS = 10

# (label, attribute names, newest convention first): what a reader scans a trace for.
_KEY_ATTRIBUTES = (
    ("method", (_http.HTTP_REQUEST_METHOD, _http.HTTP_METHOD)),
    ("route", (_http.HTTP_ROUTE,)),
    ("url", (_url.URL_FULL, _http.HTTP_URL, _http.HTTP_TARGET)),
    ("status", (_http.HTTP_RESPONSE_STATUS_CODE, _http.HTTP_STATUS_CODE)),
    ("db", (_db.DB_SYSTEM_NAME, _db.DB_SYSTEM)),
    ("op", (_db.DB_OPERATION_NAME, _db.DB_OPERATION)),
    ("query", (_db.DB_QUERY_TEXT, _db.DB_STATEMENT)),
)
# Shown only when the span name does not already say it ("GET /orders/<int:id>").
_REDUNDANT_WITH_NAME = ("method", "route")

_RESET = "\x1b[0m"
_STYLES = {
    "header": "\x1b[1m",
    "tree": "\x1b[2m",
    "kind": "\x1b[2m",
    "service": "\x1b[36m",
    "error": "\x1b[1;31m",
    "bar": "\x1b[32m",
    "error_bar": "\x1b[31m",
    "attrs": "\x1b[2m",
}


class _Glyphs:
    __slots__ = ("branch", "last", "pipe", "block", "ellipsis")

    def __init__(self, branch: str, last: str, pipe: str, block: str, ellipsis: str) -> None:
        self.branch = branch
        self.last = last
        self.pipe = pipe
        self.block = block
        self.ellipsis = ellipsis


_UNICODE = _Glyphs("├─ ", "└─ ", "│  ", "█", "…")
_ASCII = _Glyphs("|- ", "`- ", "|  ", "#", "~")


class _Pending:
    """The spans of one trace received so far, and whether a local root is among them."""

    __slots__ = ("spans", "has_root")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.has_root = False


class TreeExporter(SpanExporter):
    """Print finished traces to a text stream as trees with duration bars.

    ``out``: the stream to print to; by default ``sys.stdout``, looked up at each print so that
    a redirection made after start-up is honoured. ``width``: columns per line (at least 40);
    by default the terminal's width up to 120 when ``out`` is a terminal, else 80. ``color``:
    ANSI colours on or off; by default on only when ``out`` is a terminal and the ``NO_COLOR``
    environment variable is unset or empty. ``max_buffered_spans``: beyond this many spans
    waiting for their trace to complete, the oldest traces are printed as they are, so that a
    trace whose root never ends cannot hold memory for ever.

    Thread-safe. ``export`` always returns ``SUCCESS`` and never raises: a stream that fails is
    reported once on the ``lazypatch`` logger, and the traces it could not take are dropped.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        width: int | None = None,
        color: bool | None = None,
        max_buffered_spans: int = 10_000,
    ) -> None:
        self._out = out
        self._width = width
        self._color = color
        self._max_buffered = max_buffered_spans
        self._pending: dict[int, _Pending] = {}
        self._buffered = 0
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._failure_logged = False
        state.renew_after_fork(self, _new_locks)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Buffer ``spans`` and print every trace they complete."""
        try:
            self._print(self._collect(spans))
        except Exception:
            self._log_failure()
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Print every buffered trace now, complete or not."""
        try:
            self._print(self._drain())
        except Exception:
            self._log_failure()
        return True

    def shutdown(self) -> None:
        """Print what is still buffered: spans whose trace root never ended."""
        self.force_flush()

    def _collect(self, spans: Sequence[ReadableSpan]) -> list[list[ReadableSpan]]:
        ready = []
        with self._buffer_lock:
            touched: dict[int, _Pending] = {}
            for span in spans:
                context = span.context
                if context is None:
                    continue
                pending = self._pending.get(context.trace_id)
                if pending is None:
                    pending = self._pending[context.trace_id] = _Pending()
                pending.spans.append(span)
                pending.has_root = pending.has_root or _is_local_root(span)
                self._buffered += 1
                touched[context.trace_id] = pending
            for trace_id, pending in touched.items():
                if pending.has_root and _is_closed(pending.spans):
                    del self._pending[trace_id]
                    self._buffered -= len(pending.spans)
                    ready.append(pending.spans)
            while self._buffered > self._max_buffered and self._pending:
                oldest = self._pending.pop(next(iter(self._pending)))
                self._buffered -= len(oldest.spans)
                ready.append(oldest.spans)
        return ready

    def _drain(self) -> list[list[ReadableSpan]]:
        with self._buffer_lock:
            ready = [pending.spans for pending in self._pending.values()]
            self._pending.clear()
            self._buffered = 0
        return ready

    def _print(self, traces: list[list[ReadableSpan]]) -> None:
        if not traces:
            return
        out = self._out if self._out is not None else sys.stdout
        tty = _isatty(out)
        width = self._width
        if width is None:
            width = min(shutil.get_terminal_size().columns, _MAX_TTY_WIDTH) if tty else 80
        color = self._color
        if color is None:
            color = tty and not _config.no_color()
        renderer = _Renderer(max(width, _MIN_WIDTH), color, _glyphs_for(out))
        text = "".join(renderer.trace(spans) for spans in traces)
        with self._write_lock:
            try:
                out.write(text)
                out.flush()
            except Exception:
                self._log_failure()

    def _log_failure(self) -> None:
        if not self._failure_logged:
            self._failure_logged = True
            logger().warning("TreeExporter could not print a trace; dropping it", exc_info=True)


def _new_locks(exporter: TreeExporter) -> None:
    """New locks for the exporter in a forked child: the parent's could be held by a thread that
    is not there."""
    exporter._buffer_lock = threading.Lock()
    exporter._write_lock = threading.Lock()


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _is_closed(spans: list[ReadableSpan]) -> bool:
    """Whether every local parent of these spans is among them: nothing local still open."""
    ids = {span.context.span_id for span in spans}
    return all(
        _is_local_root(span) or span.parent.span_id in ids  # type: ignore[union-attr]
        for span in spans
    )


def _isatty(out: TextIO) -> bool:
    try:
        return bool(out.isatty())
    except Exception:
        return False


def _glyphs_for(out: TextIO) -> _Glyphs:
    encoding = getattr(out, "encoding", None)
    if not encoding:
        return _UNICODE
    try:
        "├└│─█…".encode(encoding)
    except (LookupError, UnicodeError):
        return _ASCII
    return _UNICODE


class _Renderer:
    """Lays out traces for one print: a fixed width, colour or not, one glyph set."""

    def __init__(self, width: int, color: bool, glyphs: _Glyphs) -> None:
        self.width = width
        self.color = color
        self.glyphs = glyphs
        self.bar_cells = max(8, width // 4)
        self.left_cells = width - self.bar_cells - _DURATION_CELLS - 2

    def trace(self, spans: list[ReadableSpan]) -> str:
        by_id = {span.context.span_id: span for span in spans}
        children: dict[int, list[ReadableSpan]] = {}
        tops = []
        for span in spans:
            parent = span.parent
            if parent is None or parent.span_id not in by_id:
                tops.append(span)
            else:
                children.setdefault(parent.span_id, []).append(span)
        start = min(_start(span) for span in spans)
        total = max(max(_end(span) for span in spans) - start, 1)
        orphans = sum(1 for span in tops if not _is_local_root(span))

        summary = f"{len(spans)} span{'s' if len(spans) != 1 else ''}  {_ms(total)}"
        if orphans:
            summary += "  incomplete"
        lines = [self._line([(f"trace {spans[0].context.trace_id:032x}  {summary}", "header")])]
        # Depth-first with an explicit stack: deep traces must not hit the recursion limit.
        stack: list[tuple[ReadableSpan, str, str, str | None]] = [
            (span, "", "", None) for span in reversed(_by_start(tops))
        ]
        while stack:
            span, lead, indent, parent_service = stack.pop()
            kids = _by_start(children.get(span.context.span_id, ()))
            service = _service(span)
            lines.append(self._span_line(span, lead, service, parent_service, start, total))
            attr_indent = indent + (self.glyphs.pipe if kids else "   ")
            lines.extend(self._attribute_lines(span, attr_indent, top=not lead))
            for index in reversed(range(len(kids))):
                last = index == len(kids) - 1
                lead_glyph = self.glyphs.last if last else self.glyphs.branch
                child_indent = indent + ("   " if last else self.glyphs.pipe)
                stack.append((kids[index], indent + lead_glyph, child_indent, service))
        lines.append("")
        return "\n".join(lines) + "\n"

    def _span_line(
        self,
        span: ReadableSpan,
        lead: str,
        service: str,
        parent_service: str | None,
        start: int,
        total: int,
    ) -> str:
        error = span.status.status_code is StatusCode.ERROR
        left = [(lead, "tree"), (_clean(span.name), None), (" ", None)]
        left.append((span.kind.name.lower(), "kind"))
        if service != parent_service:
            left += [(" ", None), (service, "service")]
        if error:
            left += [(" ", None), ("ERROR", "error")]
        duration = _ms(_end(span) - _start(span)).rjust(_DURATION_CELLS)
        offset = int((_start(span) - start) / total * self.bar_cells)
        length = max(1, round((_end(span) - _start(span)) / total * self.bar_cells))
        offset = max(0, min(offset, self.bar_cells - length))
        segments, used = _fit(left, self.left_cells, self.glyphs.ellipsis)
        segments.append(
            (" " * (self.left_cells - used) + " " + duration + " " * (offset + 1), None)
        )
        segments.append((self.glyphs.block * length, "error_bar" if error else "bar"))
        return self._line(segments)

    def _attribute_lines(self, span: ReadableSpan, indent: str, top: bool) -> list[str]:
        items = _key_attributes(span, top)
        if not items:
            return []
        room = self.width - _cells(indent)
        lines: list[list[str]] = [[]]
        used = 0
        for item in items:
            item = _fit([(item, None)], room, self.glyphs.ellipsis)[0][0][0]
            size = _cells(item)
            if lines[-1] and used + 2 + size > room:
                lines.append([])
                used = 0
            used += size + (2 if lines[-1] else 0)
            lines[-1].append(item)
        return [self._line([(indent, "tree"), ("  ".join(line), "attrs")]) for line in lines]

    def _line(self, segments: list[tuple[str, str | None]]) -> str:
        segments, _ = _fit(segments, self.width, self.glyphs.ellipsis)
        if not self.color:
            return "".join(text for text, _ in segments).rstrip()
        return "".join(
            f"{_STYLES[style]}{text}{_RESET}" if style and text.strip() else text
            for text, style in segments
        ).rstrip()


def _key_attributes(span: ReadableSpan, top: bool) -> list[str]:
    """``label=value`` texts for the attributes worth a glance, and for a parent not shown."""
    attributes = span.attributes or {}
    name = span.name or ""
    items = []
    for label, keys in _KEY_ATTRIBUTES:
        value = next((attributes[key] for key in keys if key in attributes), None)
        if value is None:
            continue
        text = " ".join(_clean(str(value)).split())
        if label in _REDUNDANT_WITH_NAME and text in name:
            continue
        items.append(f"{label}={text}")
    parent = span.parent
    if top and parent is not None:
        origin = "remote_parent" if parent.is_remote else "missing_parent"
        items.append(f"{origin}={parent.span_id:016x}")
    if span.status.status_code is StatusCode.ERROR:
        error = _error_text(span)
        if error:
            items.append(f"error={error}")
    return items


def _error_text(span: ReadableSpan) -> str:
    """What went wrong: the status description, else the error or exception type, if any."""
    text = span.status.description or (span.attributes or {}).get(ERROR_TYPE)
    if not text:
        text = next(
            (
                event.attributes[EXCEPTION_TYPE]
                for event in span.events
                if event.attributes and EXCEPTION_TYPE in event.attributes
            ),
            "",
        )
    return " ".join(_clean(str(text)).split())


def _fit(
    segments: list[tuple[str, str | None]], cells: int, ellipsis: str
) -> tuple[list[tuple[str, str | None]], int]:
    """Cut styled ``segments`` to ``cells`` columns, ending in ``ellipsis`` when cut.

    Returns the segments and the columns they take. Reads no further than the cut, so a very
    long name or a very deep indentation costs no more than a short one.
    """
    budget = cells - _cells(ellipsis)
    used = 0
    cut = None
    for index, (text, _) in enumerate(segments):
        if text.isascii() and used + len(text) <= budget:
            used += len(text)
            continue
        for position, char in enumerate(text):
            size = _cells(char)
            if cut is None and used + size > budget:
                cut = (index, position, used)
            used += size
            if used > cells and cut is not None:  # cut is set by then: budget <= cells
                at, length, kept = cut
                cut_text, cut_style = segments[at]
                fitted = [*segments[:at], (cut_text[:length] + ellipsis, cut_style)]
                return fitted, kept + _cells(ellipsis)
    return segments, used


def _cells(text: str) -> int:
    """Terminal columns taken by ``text``: two for East Asian wide characters."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _clean(text: str) -> str:
    """``text`` without control characters, which could move the cursor or change colours."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else " " for char in text)


def _service(span: ReadableSpan) -> str:
    resource = span.resource
    name = resource.attributes.get(SERVICE_NAME) if resource is not None else None
    return _clean(str(name)) if name else "unknown_service"


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


def _end(span: ReadableSpan) -> int:
    return max(span.end_time or 0, _start(span))


def _by_start(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(spans, key=_start)


def _ms(nanoseconds: int) -> str:
    ms = nanoseconds / 1e6
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms"
