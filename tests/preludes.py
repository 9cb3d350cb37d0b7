"""Code shared by the programs that tests run in fresh interpreters (prepended to them)."""

import textwrap

# Wrappers that tag what they return, and a count of the tags: how many layers a call went
# through. ``seen`` collects each wrapper call as (tag, instance, args, kwargs).
TAGGING = """
seen = []

def tagger(tag):
    def wrapper(wrapped, instance, args, kwargs):
        seen.append((tag, instance, args, kwargs))
        return (tag, wrapped(*args, **kwargs))
    return wrapper

def layers(result, tag="w"):
    count = 0
    while isinstance(result, tuple) and len(result) == 2 and result[0] == tag:
        count += 1
        result = result[1]
    return count
"""

# The records of the ``lazypatch`` logger; ``errors()``: (message, has a traceback) of the ERRORs.
LOG_RECORDS = """
import logging as _logging

class _Records(_logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)

logged = _Records()
_logging.getLogger("lazypatch").addHandler(logged)

def errors():
    return [
        (r.getMessage(), r.exc_info is not None) for r in logged.records if r.levelname == "ERROR"
    ]
"""

# LOG_RECORDS, and at exit (after SystemExit too) on stderr as one line,
# ``RECORDS=[[level, message, has a traceback], ...]``: stdout stays the application's alone.
LOG_RECORDS_AT_EXIT = (
    LOG_RECORDS
    + """
import atexit as _atexit, json as _json, sys as _sys

def _dump_records():
    said = [[r.levelname, r.getMessage(), r.exc_info is not None] for r in logged.records]
    _sys.stderr.write("RECORDS=" + _json.dumps(said) + "\\n")

_atexit.register(_dump_records)
"""
)

# ``report(**facts)``: what the child found, as a line of JSON that ``fresh.facts`` reads back,
# so that a failing test shows the fact that differs rather than a row of printed words.
REPORT = """
def report(**facts):
    import json

    print(json.dumps(facts, default=repr), flush=True)
"""


def with_report(code):
    """``code`` (dedented) with ``report`` defined before it."""
    return REPORT + textwrap.dedent(code)
