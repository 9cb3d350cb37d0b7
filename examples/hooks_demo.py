"""Two post-import hooks on one module: one registered before its import, one after.

Run with ``make demo``. Both fire exactly once; the second fires the moment it is registered,
because the module is already imported.
"""

import sys
import tempfile
import textwrap
from pathlib import Path

import lazypatch


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lazypatch-demo-"))
    (workdir / "inventory.py").write_text(
        textwrap.dedent(
            """
            print("  inventory: module body runs")
            ITEMS = {"apple": 3, "pear": 5}
            """
        )
    )
    sys.path.insert(0, str(workdir))

    @lazypatch.when_imported("inventory")
    def before(module):
        print(f"  hook registered BEFORE import fired: {len(module.ITEMS)} items")

    print("1. hook registered; inventory is not imported yet")
    print("2. import inventory")
    import inventory

    print("3. register a second hook, now that inventory is imported")
    lazypatch.register_hook(
        "inventory", lambda module: print(f"  hook registered AFTER import fired: {module.ITEMS}")
    )
    print("4. import inventory again: nothing fires twice")
    import inventory  # noqa: F811

    print("\nlazypatch.status():")
    for record in lazypatch.status():
        print(f"  {record.kind:5} {record.name:40} {record.state:8} calls={record.calls}")
    assert all(r.calls == 1 for r in lazypatch.status()), "each hook fires exactly once"
    assert inventory.ITEMS


if __name__ == "__main__":
    main()
