"""sqlite3: one CLIENT span per statement, through traced subclasses passed as ``factory=``."""

import sqlite3
import sys

import pytest
from instr_support import (
    BrokenTracerProvider,
    context_value,
    lazypatch_errors,
)
from opentelemetry import context
from opentelemetry.trace import SpanKind, StatusCode

from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
from lazypatch.testing import each_order


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "app.db")


def test_statements_on_connections_and_cursors(instrument, exporter, db):
    instrument(SQLite3Instrumentor)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)").execute("INSERT INTO t VALUES (0)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    cursor = conn.cursor()
    cursor.execute("SELECT x FROM t WHERE x > ?", (0,))
    assert cursor.fetchall() == [(1,), (2,)]
    cursor.executemany("DELETE FROM t WHERE x = ?", [(1,)])
    cursor.executescript("update t set x = 3; select 1;")
    conn.close()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [
        f"CREATE {db}",
        f"INSERT {db}",
        f"INSERT {db}",
        f"SELECT {db}",
        f"DELETE {db}",
        f"update {db}",
    ]
    assert {s.kind for s in spans} == {SpanKind.CLIENT}
    assert dict(spans[3].attributes) == {
        "db.system.name": "sqlite",
        "db.namespace": db,
        "db.operation.name": "SELECT",
        "db.query.text": "SELECT x FROM t WHERE x > ?",
    }


def test_parameters_never_recorded(instrument, exporter):
    instrument(SQLite3Instrumentor)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE users (name, password)")
    conn.execute("INSERT INTO users VALUES (?, ?)", ("alice", "hunter2"))
    conn.executemany("INSERT INTO users VALUES (:n, :p)", [{"n": "bob", "p": "s3cret"}])
    for span in exporter.get_finished_spans():
        text = repr(dict(span.attributes)) + repr([e.attributes for e in span.events])
        for secret in ("alice", "hunter2", "bob", "s3cret"):
            assert secret not in text


def test_connections_stay_sqlite3_connections(instrument, exporter, db, tmp_path):
    instrument(SQLite3Instrumentor)
    source = sqlite3.connect(db)
    source.execute("CREATE TABLE t (x)")
    source.execute("INSERT INTO t VALUES (42)")
    source.commit()
    target = sqlite3.dbapi2.connect(str(tmp_path / "copy.db"))
    assert isinstance(source, sqlite3.Connection) and isinstance(target, sqlite3.Connection)
    assert isinstance(source.cursor(), sqlite3.Cursor)
    source.backup(target)
    assert target.execute("SELECT x FROM t").fetchone() == (42,)
    source.row_factory = sqlite3.Row
    row = source.execute("SELECT x FROM t").fetchone()
    assert isinstance(row, sqlite3.Row) and row["x"] == 42
    assert [s.attributes["db.namespace"] for s in exporter.get_finished_spans()][-2:] == [
        str(tmp_path / "copy.db"),
        db,
    ]


class MyConnection(sqlite3.Connection):
    def answer(self):
        return 42


class MyCursor(sqlite3.Cursor):
    def first(self):
        return self.fetchone()[0]


@pytest.mark.parametrize("how", ["keyword", "positional"])
def test_caller_factory_respected(instrument, exporter, how):
    instrument(SQLite3Instrumentor)
    if how == "keyword":
        conn = sqlite3.connect(":memory:", factory=MyConnection)
    else:
        conn = sqlite3.connect(":memory:", 5.0, 0, "DEFERRED", True, MyConnection)
    assert isinstance(conn, MyConnection) and conn.answer() == 42
    assert conn.cursor(MyCursor).execute("SELECT 7").first() == 7
    assert conn.cursor(factory=MyCursor).execute("SELECT 8").first() == 8
    assert len(exporter.get_finished_spans()) == 2
    assert type(sqlite3.connect(":memory:", factory=MyConnection)) is type(conn)


def test_error_recorded_and_reraised(instrument, exporter):
    instrument(SQLite3Instrumentor)
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        conn.execute("SELECT * FROM missing")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "sqlite3.OperationalError"
    assert [e.name for e in span.events] == ["exception"]


def test_child_of_current_span(instrument, provider, exporter):
    instrument(SQLite3Instrumentor)
    conn = sqlite3.connect(":memory:")
    with provider.get_tracer("t").start_as_current_span("parent") as parent:
        conn.execute("SELECT 1")
    query = exporter.get_finished_spans()[0]
    assert query.parent.span_id == parent.get_span_context().span_id


def test_suppressed(instrument, exporter):
    instrument(SQLite3Instrumentor)
    conn = sqlite3.connect(":memory:")
    with context_value(context._SUPPRESS_INSTRUMENTATION_KEY):
        conn.execute("SELECT 1")
    assert exporter.get_finished_spans() == ()


def test_uninstrument(instrument, provider, exporter):
    originals = sqlite3.connect, sqlite3.dbapi2.connect
    instrumentor = instrument(SQLite3Instrumentor)
    conn = sqlite3.connect(":memory:")
    assert sqlite3.connect is not originals[0]
    instrumentor.uninstrument()
    assert (sqlite3.connect, sqlite3.dbapi2.connect) == originals
    assert sqlite3.connect is originals[0] and sqlite3.dbapi2.connect is originals[1]
    conn.execute("SELECT 1")
    sqlite3.connect(":memory:").execute("SELECT 1")
    assert exporter.get_finished_spans() == ()
    instrumentor.instrument(tracer_provider=provider)
    conn.execute("SELECT 1")
    assert len(exporter.get_finished_spans()) == 1


def test_broken_tracer_never_breaks_queries(instrument, caplog):
    instrument(SQLite3Instrumentor, tracer_provider=BrokenTracerProvider())
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("SELECT * FROM missing")
    assert len(lazypatch_errors(caplog)) == 1


@each_order
def test_order_matrix(lazypatch_scenario, order, db):
    """The module and ``dbapi2`` captured before: a span per statement in every order, then not."""
    scenario = lazypatch_scenario(
        instrument="""
            from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
            SQLite3Instrumentor().instrument()
        """,
        imports="import sqlite3 as db",
        setup="from sqlite3 import dbapi2",
        exercise=f"""
            db.connect({db!r}).execute("CREATE TABLE IF NOT EXISTS t (x)")
            result = dbapi2.connect({db!r}).cursor().execute("SELECT count(*) FROM t").fetchone()
        """,
        uninstrument="SQLite3Instrumentor().uninstrument()",
        order=order,
    )
    assert scenario.result == [0]
    assert [(s.name, s.kind) for s in scenario.spans] == [
        (f"CREATE {db}", "CLIENT"),
        (f"SELECT {db}", "CLIENT"),
    ]
    assert scenario.after_uninstrument == []


def test_captured_connect_function_is_a_known_limit(lazypatch_scenario):
    """``from sqlite3 import connect`` before instrumentation binds the builtin itself."""
    scenario = lazypatch_scenario(
        instrument="""
            from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
            SQLite3Instrumentor().instrument()
        """,
        imports="from sqlite3 import connect",
        exercise='connect(":memory:").execute("SELECT 1")',
        order="after_import",
    )
    assert scenario.spans == []


# Regressions found by CPython's own test_sqlite3 under `lazypatch run` (make test-host). Each
# child runs the same calls bare, then instrumented, and compares.
COMPARE = """
import sqlite3, sys, warnings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor

trace.set_tracer_provider(TracerProvider())

def outcome(call):
    try:
        call()
        return "ok"
    except Exception as exc:
        return type(exc).__name__

%s

bare = exercise()
SQLite3Instrumentor().instrument()
traced = exercise()
assert type(sqlite3.connect(":memory:")).__name__ == "TracedConnection"
assert traced == bare, (bare, traced)
print(bare)
"""


def test_an_explicit_none_factory_is_rejected_as_without_lazypatch(pyrun):
    exercise = """
def exercise():
    con = sqlite3.connect(":memory:")
    calls = [
        lambda: con.cursor(None),
        lambda: con.cursor(factory=None),
        lambda: sqlite3.connect(":memory:", factory=None),
        lambda: con.cursor(),
        lambda: sqlite3.connect(":memory:"),
    ]
    if sys.version_info < (3, 13):  # positional factory (deprecated since)
        calls.append(lambda: sqlite3.connect(":memory:", 5.0, 0, None, True, None))
    return [outcome(call) for call in calls]
"""
    out = pyrun(COMPARE % exercise).stdout
    assert out.split("'")[1:6:2] == ["TypeError", "TypeError", "TypeError"]


def test_warnings_of_the_instrumented_calls_point_at_the_callers_line(pyrun):
    """A warning issued inside the C call, directly (3.12+: named placeholders with a sequence;
    3.13: positional arguments of connect) or by an adapter with stacklevel=2, names the same
    file and line as without lazypatch."""
    exercise = """
class Money:
    pass

def adapt(value):
    warnings.warn("adapting Money", UserWarning, stacklevel=2)
    return 1

sqlite3.register_adapter(Money, adapt)

def exercise():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        con = sqlite3.connect(":memory:", 5.0)
        con.execute("select ?", (Money(),))
        con.cursor().execute("select ?", (Money(),))
        con.execute("create table t (x)")
        con.executemany("insert into t values (?)", [(Money(),)])
        con.execute("select :a", (1,))
        con.cursor().execute("select :a", (1,))
    return [(w.category.__name__, w.filename, w.lineno) for w in caught]
"""
    out = pyrun(COMPARE % exercise).stdout
    assert out.count("UserWarning") == 3
    if sys.version_info >= (3, 12):
        assert out.count("DeprecationWarning") >= 2
    assert "lazypatch" not in out


@pytest.mark.skipif(sys.version_info < (3, 13), reason="sqlite3 deprecates this in 3.13")
def test_a_deprecation_in_main_is_shown_by_the_default_filters(pyrun):
    proc = pyrun(
        """
        import lazypatch.auto, sqlite3
        sqlite3.connect(":memory:", 5.0).close()
        """,
        env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
    )
    assert "DeprecationWarning: Passing more than 1 positional argument" in proc.stderr


def test_the_exact_connection_type_is_a_known_difference(pyrun):
    """Known difference (docs/guarantees.md): a traced connection is an instance of a subclass."""
    pyrun(
        """
        import sqlite3
        from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
        SQLite3Instrumentor().instrument()
        con = sqlite3.connect(":memory:")
        assert isinstance(con, sqlite3.Connection) and type(con) is not sqlite3.Connection
        assert type(con).__mro__[1] is sqlite3.Connection
        """
    )
