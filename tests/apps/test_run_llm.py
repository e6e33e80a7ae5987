"""The LLM service as a real Slurm job of mtpub, with tests/apps/doubles/ollama_test_double
standing in for Ollama (site setting apps.llm.binary points at it; see site_build.py).
Under test: the sharing. The port is found, the share is published only once the API
answers, it decodes to the right connection, and another user reaches the API over TCP."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ood_mt import codec
from tests.apps import forms
from tests.apps.slurm_jobs import connection, job_name, job_state, job_token, shared_render_dir, submit, wait_for
from tests.ood.oodsite import OodSite

pytestmark = pytest.mark.slurm

START_DELAY_S = 4  # the double listens this late, so "published before listening" would show


def _api_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_llm_job_publishes_after_listening_and_shares_the_api(
    host_slurm: dict[str, str], run_as: Any, built_apps: Path, ood_site: OodSite
) -> None:
    work = shared_render_dir()
    models = work / "models"
    (models / "manifests" / "registry.ollama.ai" / "library" / "tinymodel").mkdir(parents=True)
    (models / "manifests" / "registry.ollama.ai" / "library" / "tinymodel" / "latest").write_text("{}")
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    form = forms.service_form("llm", mt_share_audience="user", mt_model="tinymodel:latest",
                              mt_model_source="path", mt_model_path=str(models))
    job, session = submit(ood_site, "mtpub", built_apps / "mt_llm", form)
    try:
        wait_for(lambda: connection(session).get("port", "") != "", 60, f"job {job} to write connection.yml")
        host, port = connection(session)["host"], connection(session)["port"]
        # The double listens START_DELAY_S late; the name must turn into a share only after.
        published_at = None
        deadline = time.monotonic() + 90
        while published_at is None and time.monotonic() < deadline:
            if job_name(run_as, job).startswith("mt1:"):
                published_at = time.time()
            time.sleep(0.2)
        log = (session / "output.log").read_text()
        assert published_at is not None, f"job {job} never published: {log}"
        listening = re.search(r"ollama-test-double: listening on \S+ since ([0-9.]+)", log)
        assert listening, f"the double never listened: {log}"
        assert float(listening.group(1)) <= published_at, "the share appeared before the API listened"
        # The API only through the gate, with the share's secret (docs/gate.md).
        assert _api_status(f"http://{host}:{port}/api/version") == 404, log

        user_key = bytes.fromhex((Path("~mtpub").expanduser() / ".ood-mt" / "user.key").read_text().strip())
        share = codec.decode(job_token(run_as, job), group_key=user_key, jobid=job, owner="mtpub")
        conn = share["conn"]
        assert share["app"] == "llm" and share["preset"] == "api"
        assert share["delivery"] == "sys/mt_delivery_default"
        assert conn["host"] == host and conn["port"] == port
        assert "api_url" not in conn, "a bare host:port URL would point past the gate"
        api = f"http://{host}:{port}/{conn['gate_secret']}"
        assert _api_status(f"{api}/api/version") == 200, log
        assert conn["models"] == "tinymodel:latest", "models must be what the server reports from OLLAMA_MODELS"
        assert conn["model"] == "tinymodel:latest"
        assert connection(session)["mt_share_status"] == "shared with you only"

        # Another user, over TCP, with only what the share says.
        tags = run_as("mtrecv", ["curl", "--silent", "--fail", "--max-time", "10", f"{api}/api/tags"])
        assert tags.returncode == 0, tags.stderr
        assert [m["name"] for m in json.loads(tags.stdout)["models"]] == ["tinymodel:latest"]
        chat = run_as("mtrecv", ["curl", "--silent", "--fail", "--max-time", "10", "-d",
                                 json.dumps({"model": conn["model"], "prompt": "ping ü"}),
                                 f"{api}/api/generate"])
        assert json.loads(chat.stdout)["response"] == "echo: ping ü"
        # Model management is refused: the publisher did not allow pulls in the form.
        pull = run_as("mtrecv", ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                                 "--max-time", "10", "-d", json.dumps({"model": "evil:latest", "stream": False}),
                                 f"{api}/api/pull"])
        assert pull.stdout == "403", pull
        # The secret is in no job output, no process's argv, no log.
        secret = conn["gate_secret"]
        assert secret not in (session / "output.log").read_text()
        ps = run_as("mtrecv", ["ps", "-eo", "args"])
        assert "ood_mt.gate" in ps.stdout and secret not in ps.stdout
        assert "ollama-test-double: listening on 127.0.0.1:" in log, "ollama must listen on loopback only"
    finally:
        run_as("mtpub", ["scancel", job])
        wait_for(lambda: job_state(run_as, job) == "", 60, f"job {job} to end")
        shutil.rmtree(work, ignore_errors=True)
    assert not list(Path("/tmp").glob(f"ood-mt-llm.{job}.*")), "the job's scratch was not removed"
