"""Run by Python at startup when lazypatch's bootstrap directory is on ``PYTHONPATH``.

Imports ``lazypatch.auto`` (once per process, as any import), then runs the ``sitecustomize`` that
this one hides: the next one on ``sys.path``, under its own name, so the application's start-up
code still runs. Nothing else is changed: in particular the current directory is not put on
``sys.path``. If lazypatch itself cannot be imported (another interpreter on PATH), the process
runs uninstrumented, quietly. Any other failure (a dependency missing or broken) is printed to
stderr with its traceback, and the process runs uninstrumented too.
"""

import os
import sys


def _activate() -> None:
    try:
        import lazypatch.auto  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "lazypatch":
            _report()
    except Exception:
        _report()


def _report() -> None:
    import traceback

    sys.stderr.write("lazypatch: auto-instrumentation failed to start; running uninstrumented\n")
    traceback.print_exc()


def _run_hidden_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    later = []
    for index, entry in enumerate(sys.path):
        if entry and os.path.abspath(entry) == here:
            later = sys.path[index + 1 :]
            break
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("sitecustomize", later)
    if spec is None or spec.loader is None:
        return
    from importlib.util import module_from_spec

    module = module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_activate()
_run_hidden_sitecustomize()
