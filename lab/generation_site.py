#!/usr/bin/env python3
"""Write the lab's site file for one lab generation.

The lab's site file (inventories/lab/group_vars/all/multitenant.yml) names the database
engines of the bookworm generation. The other generations run other PostgreSQL and MariaDB
versions, whose numbers and paths live in lab/generations/<generation>.env (the one place per
generation). This writes <out>/group_vars/all/multitenant.yml: the lab's site file with the
database engines of OOD_MT_LAB_GENERATION (default bookworm), and <out>/apps, a link to the
lab's site-local apps (they are found next to the site's inventory directory).

usage: python3 lab/generation_site.py --out DIR [--generation NAME] [--card-cluster NAME]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

LAB = Path(__file__).resolve().parent
REPO = LAB.parent
LAB_SITE = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"
LINE = re.compile(r"^(LAB_[A-Z0-9_]+)=([^\"'$`\s]*)$")


def generation_settings(name: str) -> dict[str, str]:
    """KEY=VALUE lines of lab/generations/NAME.env (the format lab/generation.sh reads)."""
    path = LAB / "generations" / f"{name}.env"
    if not re.fullmatch(r"[a-z0-9]+", name) or not path.is_file():
        sys.exit(f"generation_site: no lab/generations/{name}.env; set OOD_MT_LAB_GENERATION to one of "
                 + ", ".join(sorted(p.stem for p in (LAB / "generations").glob("*.env"))))
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            sys.exit(f"generation_site: {path}:{number}: not KEY=VALUE (KEY starting LAB_, no quotes or spaces)")
        settings[match.group(1)] = match.group(2)
    return settings


def site_for(settings: dict[str, str], card_cluster: str | None) -> dict:
    site = yaml.safe_load(LAB_SITE.read_text())
    engines = site["multitenant"]["apps"]["database"]["engines"]
    for engine in engines:
        if engine["name"] == "postgresql":
            engine.update(version=settings["LAB_PG_MAJOR"], bin_dir=settings["LAB_PG_BIN_DIR"])
        elif engine["name"] == "mariadb":
            engine.update(version=settings["LAB_MARIADB_VERSION"])
    if card_cluster:
        site["multitenant"].setdefault("discovery", {})["card_cluster"] = card_cluster
    return site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--generation", default=os.environ.get("OOD_MT_LAB_GENERATION") or "bookworm")
    parser.add_argument("--card-cluster", default=None)
    args = parser.parse_args()
    site = site_for(generation_settings(args.generation), args.card_cluster)
    target = args.out / "group_vars" / "all" / "multitenant.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Written by lab/generation_site.py for lab generation {args.generation}: the lab's site\n"
              f"# file ({LAB_SITE.relative_to(REPO)}) with that generation's database engines.\n")
    text = header + yaml.safe_dump(site, sort_keys=False, default_flow_style=False)
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    apps = args.out / "apps"
    if not apps.is_symlink():
        apps.symlink_to(LAB_SITE.parents[2] / "apps")
    print(target)


if __name__ == "__main__":
    main()
