"""Demo share for `bash scripts/lab.sh`: mtpub publishes the database service to mtclass as a
card (reusing a demo share that is already running), then prints what mtrecv sees.

Prints title, host and port of mtrecv's card -- never the password.
usage: python lab/demo_share.py [--report-only]   (env OOD_MT_LAB_PREFIX, default ood-mt-lab)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OOD_MT_LAB_PREFIX", "ood-mt-lab")
os.environ.setdefault("MOLECULE_PROJECT_DIRECTORY", str(REPO))
sys.path.insert(0, str(REPO / "molecule" / "shared"))

from labhosts import dashboard, host, install_ood_runner, ood_source_missing, wait_for  # noqa: E402
from share_flow import running_cards, submit_database, wait_published  # noqa: E402

DEMO_INSTANCE = "demo"


def running_demo_job() -> str:
    """Job id of mtpub's running (or starting) share in the queue, empty when there is none."""
    out = host("ood").run("squeue --noheader -u mtpub -t PENDING,CONFIGURING,RUNNING -o '%i|%j'")
    for line in out.stdout.splitlines():
        job_id, _, name = line.partition("|")
        if name.startswith("mt1:") or name == "sys/dashboard/sys/mt_database":
            return job_id.strip()
    return ""


def main() -> int:
    report_only = "--report-only" in sys.argv[1:]
    missing = ood_source_missing()
    if missing:  # the demo launches and reads the share with OOD's own code
        print(f"demo share: cannot run: {missing}", file=sys.stderr)
        return 1
    install_ood_runner()
    job_id = running_demo_job()
    if not job_id:
        if report_only:
            print("demo share: none running (run `bash scripts/lab.sh up`)")
            return 1
        job_id = submit_database("mtpub", mt_db_instance=DEMO_INSTANCE)
        print(f"demo share: mtpub submitted mt_database as job {job_id}")
    elif report_only:
        print(f"demo share: mtpub's mt_database, job {job_id}")
    else:
        print(f"demo share: reusing mtpub's running job {job_id}")
    wait_published(job_id)
    cards = wait_for("mtrecv's card", lambda: running_cards(dashboard("mtrecv"), job_id), timeout=90)
    card = cards[0]
    conn = card.get("connect") or {}
    print(f"card mtrecv sees: title={card['title']!r} host={conn.get('host')!r} port={conn.get('port')!r} "
          f"(job {job_id}, delivery {card['token']})")
    outsider = [c for c in dashboard("mtout")["cards"] if c["job_id"] == job_id]
    print(f"card mtout sees: {'NONE' if not outsider else 'UNEXPECTED: ' + repr(outsider[0]['title'])}")
    return 0 if not outsider else 1


if __name__ == "__main__":
    sys.exit(main())
