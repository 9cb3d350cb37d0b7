"""The bootstrap directory: put first on PYTHONPATH, its sitecustomize activates lazypatch."""
