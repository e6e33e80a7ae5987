"""Verify of the `slurm_privatedata` scenario: with PrivateData=jobs a receiver cannot see the
publisher's job in squeue, yet gets the share as a Running card (the initializer reads the
discovery spool; OOD's own status check of the card goes through the kit's cluster entry and
its squeue shim), uses it, and loses the card when the job ends."""

from __future__ import annotations

import yaml
from labhosts import as_user, dashboard, host, wait_for
from share_flow import cancel, psql_as, running_cards, submit_database, wait_published

KIT_CLUSTER = "/etc/ood/config/clusters.d/lab_mt.yml"


def test_slurm_hides_other_users_jobs() -> None:
    config = host("slurm").run("scontrol show config")
    line = next(ln for ln in config.stdout.splitlines() if ln.startswith("PrivateData"))
    assert "jobs" in line, line


def test_the_kits_cluster_entry_is_the_site_cluster_plus_the_shim() -> None:
    ood = host("ood")
    entry = yaml.safe_load(ood.file(KIT_CLUSTER).content_string)
    site = yaml.safe_load(ood.file("/etc/ood/config/clusters.d/lab.yml").content_string)
    assert entry["v2"]["job"]["bin_overrides"] == {"squeue": "/opt/ood-mt/venv/bin/ood-mt-squeue"}
    assert entry["v2"]["metadata"]["hidden"] is True
    assert {k: v for k, v in entry["v2"]["job"].items() if k != "bin_overrides"} == site["v2"]["job"]
    assert ood.file("/opt/ood-mt/venv/bin/ood-mt-squeue").is_file


def test_a_share_reaches_the_receiver_as_a_running_card_and_goes_with_its_job() -> None:
    job_id = submit_database("mtpub")
    try:
        wait_published(job_id)  # root's squeue
        hidden = host("ood").run(as_user("mtrecv", f"squeue --noheader -j {job_id} -o %i"))
        assert job_id not in hidden.stdout, f"PrivateData=jobs is not in force: mtrecv sees {hidden.stdout!r}"
        card = wait_for("mtrecv's Running card", lambda: running_cards(dashboard("mtrecv"), job_id), timeout=90)[0]
        query = psql_as("mtrecv", card["connection_path"], "SELECT 6 * 7")
        assert query.rc == 0 and query.stdout.strip() == "42", query.stderr
        # a second page load: OOD checks the card's status again (through the shim), still Running
        assert running_cards(dashboard("mtrecv"), job_id), "the card did not stay Running"
        out = dashboard("mtout")
        assert not [c for c in out["cards"] if c["job_id"] == job_id]
    finally:
        cancel("mtpub", job_id)
    gone = wait_for("mtrecv's card to go", lambda: not [c for c in dashboard("mtrecv")["cards"]
                                                         if c["job_id"] == job_id], timeout=60)
    assert gone
