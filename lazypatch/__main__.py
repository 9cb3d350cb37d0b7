"""``python -m lazypatch``: the same command line as the ``lazypatch`` console script."""

from ._cli import main

raise SystemExit(main())
