"""Drop the files a client kind does not use (rendered empty by their templates)."""

from pathlib import Path

for path in Path("template").glob("*"):
    if path.is_file() and path.stat().st_size == 0:
        path.unlink()
