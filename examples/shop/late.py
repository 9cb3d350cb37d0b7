"""Start an application whose Flask was imported *before* lazypatch: ``python late.py stock``.

The application module is imported first: Flask, sqlite3 and the application object all exist,
untraced. Only then is ``lazypatch.auto`` imported, as an application that switches tracing on
late would do. Its instrumentations fire at once for the libraries already imported, and the
application object built earlier is traced like a new one.
"""

import importlib
import sys

name = sys.argv[1]
application = importlib.import_module(name)
before = sorted(m for m in ("flask", "sqlite3") if m in sys.modules)
assert "lazypatch" not in sys.modules, "lazypatch must not be imported yet"
print(f"{name}: {' and '.join(before)} imported, app built; lazypatch not imported yet", flush=True)

import lazypatch.auto  # noqa: E402, F401  (late on purpose: that is the point of this variant)

application.main()
