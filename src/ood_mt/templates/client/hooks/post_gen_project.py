"""Finish a rendered client app: drop the files its kind does not use (rendered empty) and
give staged sources their real names (kept as *.in in the template so linters skip the
Jinja text)."""

from pathlib import Path

for path in sorted(Path("template").glob("*")):
    if path.is_file() and path.stat().st_size == 0:
        path.unlink()
    elif path.suffix == ".in":
        path.rename(path.with_suffix(""))
