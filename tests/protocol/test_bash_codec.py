"""The bash library (src/ood_mt/templates/shared/partials/mt_codec.sh, the encoder, and mt_publish.sh,
the publishing flow; a service job sources both as template/mt_share.sh) against the Python and Ruby codecs.

Real bash, gzip, openssl, getent and Ruby throughout. The one test double is
``scontrol_recorder``: a stand-in for `scontrol`, put first on PATH, that records its
argv, because the thing under test here is mt_publish's argument building; real
scontrol is exercised by the Slurm integration tests. ``openssl_argv_recorder`` is not a
double: it logs argv and then runs the real openssl, to prove keys never reach argv.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ood_mt import codec
from ood_mt.app_templates import SERVICE_LIBRARY, SHARED

REPO = Path(__file__).resolve().parents[2]
CODEC_LIB = SHARED / "partials" / "mt_codec.sh"
LIBS = tuple(SHARED / "partials" / name for name in SERVICE_LIBRARY)  # codec, then the publishing flow
VECTORS = json.loads((REPO / "tests" / "vectors" / "v1.json").read_text(encoding="utf-8"))
OWNER = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
TRICKY = {
    "host": "node-7",
    "quotes": 'it\'s "quoted"',
    "subst": "$(touch /tmp/ood-mt-pwned) `id` ${HOME}",
    "semi": "a; scontrol cancel 1; b && c | d",
    "newline": "line1\nline2\r\n\tend",
    "unicode": "Modèle partagé — 模型 🚀",
    "backslash": "C:\\path\\",
    "control": "bell\x07esc\x1b",
}


def bash(script: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         libs: tuple[Path, ...] = LIBS) -> subprocess.CompletedProcess[str]:
    """SCRIPT run by bash after sourcing LIBS (by default the whole library, as a job has it)."""
    sources = "".join(f'source "{lib}"\n' for lib in libs)
    full_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    full_env.update(env or {})
    return subprocess.run(
        ["bash", "-c", f"{sources}{script}"],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def ruby_decode(token: str, key: bytes, jobid: str, owner: str) -> dict:
    program = (
        'require "json"; require "codec"; a = JSON.parse($stdin.read); '
        'p = MultiTenant::Codec.decode(a["t"], group_key: [a["k"]].pack("H*"), jobid: a["j"], owner: a["o"]); '
        "puts JSON.generate(p)"
    )
    proc = subprocess.run(
        ["ruby", "-I", str(REPO / "src/ood_mt/initializer" / "lib"), "-e", program],
        input=json.dumps({"t": token, "k": key.hex(), "j": jobid, "o": owner}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def make_key_dir(root: Path, group: str = "mtclass", version: int = 1) -> bytes:
    key = os.urandom(32)
    gdir = root / group
    gdir.mkdir(parents=True)
    (gdir / "current").write_text(f"{version}\n")
    (gdir / f"v{version}.key").write_text(key.hex() + "\n")
    return key


def test_shellcheck_clean_and_no_jinja_delimiters() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed; run scripts/bootstrap.sh")
    proc = subprocess.run(["shellcheck", "-x", *map(str, LIBS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    for lib in LIBS:
        text = lib.read_text(encoding="utf-8")
        for delimiter in ("{{", "{%", "{#", "}}", "%}", "#}"):
            assert delimiter not in text, f"Jinja delimiter {delimiter!r} in {lib}"


@pytest.mark.parametrize("value", [*TRICKY.values(), "", "plain", "\x01\x1f", "é" * 300])
def test_json_string_round_trips(value: str) -> None:
    proc = bash('mt_json_string "$V"', env={"V": value})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == value


def test_hmac_matches_python() -> None:
    key = os.urandom(32)
    msg = os.urandom(300)
    # The key reaches bash through a 0600 file, as in a job; the message on stdin.
    script = f'source "{CODEC_LIB}"; read -r k < "$1"; mt_hmac_sha256_hex "$k" < "$2"'
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    kfile = tmp / f"ood-mt-test-key-{os.getpid()}"
    mfile = tmp / f"ood-mt-test-msg-{os.getpid()}"
    fd = os.open(kfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, key.hex().encode() + b"\n")
    os.close(fd)
    mfile.write_bytes(msg)
    try:
        out = subprocess.run(["bash", "-c", script, "_", str(kfile), str(mfile)], capture_output=True, timeout=30)
    finally:
        kfile.unlink()
        mfile.unlink()
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == hmac.new(key, msg, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "uids",
    [[1000], [5, 3, 5, 1], list(range(7000, 7100)), [0, 4294967295], "random1000"],
)
def test_encode_users_matches_python(uids: list[int] | str) -> None:
    if uids == "random1000":
        uids = random.Random(3).sample(range(100_000, 200_000), 1000)
    proc = bash('mt_encode_users "$@"'.replace('"$@"', " ".join(str(u) for u in uids)))
    assert proc.returncode == 0, proc.stderr
    expected = json.dumps(codec.encode_users(uids), separators=(",", ":"))
    assert proc.stdout == expected
    assert codec.decode_users(json.loads(proc.stdout)) == sorted(set(uids))


def test_encode_users_refuses_non_numeric() -> None:
    proc = bash('mt_encode_users 1 x2 || { echo "rc=$? $MT_ERROR"; }')
    assert "rc=1" in proc.stdout and "x2" in proc.stdout


def _plain_file(tmp_path: Path) -> tuple[Path, dict]:
    payload = {
        "v": 1, "app": "mt_llm", "title": "Modèle 🚀", "preset": "ollama", "mode": "card",
        "delivery": "sys/mt_delivery_default", "session": "abc", "created": int(time.time()),
        "conn": dict(TRICKY),
    }  # fmt: skip
    path = tmp_path / "plain.json"
    path.write_bytes(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return path, payload


def test_bash_token_decodes_in_python_and_ruby(tmp_path: Path) -> None:
    key = make_key_dir(tmp_path / "keys")
    plain, payload = _plain_file(tmp_path)
    proc = bash(
        'mt_read_group_key "$KD" mtclass && mt_encode_token mtclass "$MT_KEY_VERSION" "$MT_KEY_HEX" 98765 "$O" "$F"',
        env={"KD": str(tmp_path / "keys"), "O": OWNER, "F": str(plain)},
    )
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert token.startswith("mt1:mtclass:1:")
    assert key.hex() not in proc.stdout + proc.stderr
    assert codec.decode(token, group_key=key, jobid="98765", owner=OWNER) == payload
    assert ruby_decode(token, key, "98765", OWNER) == payload
    with pytest.raises(codec.Rejected) as err:
        codec.decode(token, group_key=key, jobid="98766", owner=OWNER)
    assert err.value.reason == "bad-tag"


def test_pinned_nonce_bash_equals_python(tmp_path: Path) -> None:
    key = make_key_dir(tmp_path / "keys")
    plain, payload = _plain_file(tmp_path)
    nonce = os.urandom(16)
    proc = bash(
        'mt_read_group_key "$KD" mtclass && mt_encode_token mtclass 1 "$MT_KEY_HEX" 4242 "$O" "$F"',
        env={"KD": str(tmp_path / "keys"), "O": OWNER, "F": str(plain), "MT_TEST_NONCE_HEX": nonce.hex()},
    )
    assert proc.returncode == 0, proc.stderr
    compressed = subprocess.run(["gzip", "-n", "-9", "-c", str(plain)], capture_output=True, check=True).stdout
    expected = codec.encode(
        payload, group_key=key, aud="mtclass", kv=1, jobid="4242", owner=OWNER, nonce=nonce, compressed=compressed
    )
    assert proc.stdout.strip() == expected


# The shared vectors (tests/vectors/v1.json) pin the codec partial on its own: every token sealed
# by the reference encoder (the valid ones and the "valid tag" ones with bad payloads) and every
# valid users encoding, reproduced byte for byte by mt_codec.sh without the publishing flow.
SEALED = [c for c in VECTORS["tokens"] if c["expect"] == "ok" or c["name"].endswith("valid tag")]
USERS_OK = [c for c in VECTORS["users"] if c["expect"] == "ok"]


@pytest.mark.parametrize("case", SEALED, ids=[c["name"] for c in SEALED])
def test_codec_alone_reproduces_vector_token(case: dict, tmp_path: Path) -> None:
    gz = tmp_path / "plain.gz"
    gz.write_bytes(bytes.fromhex(case["compressed_hex"]))
    keyfile = tmp_path / "key"
    keyfile.write_text(case["key_hex"] + "\n")
    keyfile.chmod(0o600)
    proc = bash('read -r k < "$KF"; mt_seal_gzipped "$A" "$KV" "$k" "$J" "$O" "$F"', libs=(CODEC_LIB,), env={
        "KF": str(keyfile), "A": case["aud"], "KV": str(case["kv"]), "J": case["jobid"], "O": case["owner"],
        "F": str(gz), "MT_TEST_NONCE_HEX": case["nonce_hex"]})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == case["token"] + "\n"


@pytest.mark.parametrize("case", USERS_OK, ids=[c["name"] for c in USERS_OK])
def test_codec_alone_reproduces_users_vector(case: dict) -> None:
    proc = bash(f"mt_encode_users {' '.join(map(str, case['uids']))}", libs=(CODEC_LIB,))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == case["encoded"]


# --- mt_publish -------------------------------------------------------------


@dataclass
class PublishRig:
    root: Path
    bin_dir: Path
    key_dir: Path
    session: Path
    scontrol_log: Path
    openssl_log: Path
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin_dir}:{os.environ['PATH']}",
            "SLURM_JOB_ID": "31337",
            "HOME": str(self.home),
            "TMPDIR": str(self.root),
            "SCONTROL_LOG": str(self.scontrol_log),
            "OPENSSL_LOG": str(self.openssl_log),
        }
        env.update(extra)
        return env

    def publish(self, args: list[str], script_prefix: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
        """mt_publish ARGS in a bash that then writes connection.yml the way ood_core's
        create_yml does once after.sh returns (lib/ood_core/batch_connect/template.rb:
        `echo -e "<param>: $<param>"` per conn_param, truncating the file)."""
        quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
        create_yml = ('; rc=$?; (umask 077; echo -e "host: $host\\nport: $port\\nmt_share_status: $mt_share_status"'
                      " >connection.yml); exit $rc")
        return bash(f"host=node-7 port=4000 mt_share_status=; {script_prefix}mt_publish {quoted}{create_yml}",
                    env=self.env(**extra), cwd=self.session)

    def scontrol_calls(self) -> list[list[str]]:
        if not self.scontrol_log.exists():
            return []
        raw = self.scontrol_log.read_bytes().decode()
        return [call.split("\0") for call in raw.split("\0\n")[:-1]]

    def published_token(self) -> str:
        (call,) = self.scontrol_calls()
        assert call[:2] == ["update", "JobId=31337"]
        fields = dict(a.split("=", 1) for a in call[2:])
        token = codec.join_transport(fields["JobName"], fields.get("Comment"))
        assert token is not None
        return token


@pytest.fixture
def rig(tmp_path: Path) -> PublishRig:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_openssl = shutil.which("openssl")
    assert real_openssl
    # scontrol_recorder: test double for scontrol (records argv, NUL-separated, one call per record).
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(
        "#!/bin/bash\n# scontrol_recorder (test double): records argv, then succeeds or fails on request\n"
        'printf "%s\\0" "$@" >>"$SCONTROL_LOG"; printf "\\n" >>"$SCONTROL_LOG"\n'
        'if [[ -n "${SCONTROL_FAIL:-}" ]]; then echo "slurm_update error: $SCONTROL_FAIL" >&2; exit 1; fi\n'
    )
    scontrol.chmod(0o755)
    openssl = bin_dir / "openssl"
    openssl.write_text(
        "#!/bin/bash\n# openssl_argv_recorder: logs argv, then runs the real openssl\n"
        f'printf "%s\\n" "$*" >>"$OPENSSL_LOG"; exec {real_openssl} "$@"\n'
    )
    openssl.chmod(0o755)
    session = tmp_path / "output" / "0d9c1c62-1111-2222-3333-444455556666"
    session.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    return PublishRig(tmp_path, bin_dir, tmp_path / "keys", session, tmp_path / "scontrol.log",
                      tmp_path / "openssl.log", home)  # fmt: skip


BASE = ["--app", "mt_llm", "--title", "Llama for class", "--preset", "ollama", "--mode", "card",
        "--delivery", "sys/mt_delivery_default"]  # fmt: skip


def conn_args(conn: dict[str, str]) -> list[str]:
    out: list[str] = []
    for k, v in conn.items():
        out += ["--conn", f"{k}={v}"]
    return out


def status_of(rig: PublishRig) -> str:
    return yaml.safe_load((rig.session / "connection.yml").read_text())["mt_share_status"]


def assert_no_secret_leak(rig: PublishRig, key: bytes, proc: subprocess.CompletedProcess[str]) -> None:
    k_enc = hmac.new(key, b"ood-mt/1 enc", hashlib.sha256).hexdigest()
    k_mac = hmac.new(key, b"ood-mt/1 mac", hashlib.sha256).hexdigest()
    logs = proc.stdout + proc.stderr
    for path in (rig.scontrol_log, rig.openssl_log, rig.session / "connection.yml"):
        if path.exists():
            logs += path.read_text(errors="replace")
    for secret in (key.hex(), k_enc, k_mac):
        assert secret not in logs
    assert "pass env:MT_ENC_PASS" in rig.openssl_log.read_text()  # openssl really ran, via env
    assert not list(rig.root.glob("ood-mt.*")), "private temp dir left behind"


def test_publish_group_round_trips_hostile_values(rig: PublishRig) -> None:
    key = make_key_dir(rig.key_dir)
    before = int(time.time())
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir),
                        *conn_args(TRICKY)])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not Path("/tmp/ood-mt-pwned").exists()
    token = rig.published_token()
    assert token.startswith("mt1:mtclass:1:")
    for decoded in (codec.decode(token, group_key=key, jobid="31337", owner=OWNER),
                    ruby_decode(token, key, "31337", OWNER)):  # fmt: skip
        assert decoded["conn"] == TRICKY
        assert decoded["session"] == rig.session.name
        assert (decoded["app"], decoded["title"], decoded["mode"]) == ("mt_llm", "Llama for class", "card")
        assert before <= decoded["created"] <= int(time.time())
        assert "users" not in decoded
    assert status_of(rig) == "shared with group mtclass"
    assert_no_secret_leak(rig, key, proc)


def test_publish_refuses_what_receivers_would_refuse(rig: PublishRig) -> None:
    """With the share contract's checker staged next to the job files (ood-mt build does
    that for every service), a value receivers would refuse stops the publication with the
    reason on the publisher's card and in the job output; Slurm is not touched."""
    make_key_dir(rig.key_dir)
    for name in ("share_contract.py", "share_contract.json"):
        shutil.copy(REPO / "src" / "ood_mt" / name, rig.session / name)
    args = [*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir)]
    proc = rig.publish([*args, "--conn", "host=node1\nplugin-dir=/tmp/evil", "--conn", "port=5432"],
                       PYTHONPATH="")
    assert proc.returncode != 0
    assert rig.scontrol_calls() == []
    assert "the share contract refuses this share (bad-field: conn.host" in proc.stderr
    assert status_of(rig).startswith("not shared: the share contract refuses this share (bad-field: conn.host")
    ok = rig.publish([*args, "--conn", "host=node1", "--conn", "port=5432"])
    assert ok.returncode == 0, ok.stderr
    assert status_of(rig) == "shared with group mtclass"


def test_publish_refuses_a_password_for_selected_users(rig: PublishRig) -> None:
    """A 'selected users' share is encrypted with the group's key: a password in it would
    only look private. The publisher is told so, and nothing reaches Slurm."""
    make_key_dir(rig.key_dir)
    for name in ("share_contract.py", "share_contract.json"):
        shutil.copy(REPO / "src" / "ood_mt" / name, rig.session / name)
    users = ["--audience", "users", "--group", "mtclass", "--users", "root", "--key-dir", str(rig.key_dir)]
    proc = rig.publish([*BASE, *users, "--conn", "host=n1", "--conn", "password=s3cret-Pw"], PYTHONPATH="")
    assert proc.returncode != 0
    assert rig.scontrol_calls() == []
    assert "secret-to-selected-users: conn.password would be readable by every member of the group" in proc.stderr
    assert "s3cret-Pw" not in proc.stderr + proc.stdout
    assert status_of(rig).startswith("not shared: the share contract refuses this share (secret-to-selected-users")
    # The same password to the whole group, and selected users without a secret, are published.
    group = ["--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir)]
    assert rig.publish([*BASE, *group, "--conn", "host=n1", "--conn", "password=s3cret-Pw"]).returncode == 0
    assert rig.publish([*BASE, *users, "--conn", "host=n1"]).returncode == 0


def test_publish_under_xtrace_does_not_print_key(rig: PublishRig) -> None:
    key = make_key_dir(rig.key_dir)
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir),
                        "--conn", "host=n1"], script_prefix="set -x\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "mt_publish" in proc.stderr  # xtrace was on for the caller
    assert_no_secret_leak(rig, key, proc)


def test_publish_users_list_resolves_with_getent(rig: PublishRig) -> None:
    key = make_key_dir(rig.key_dir)
    proc = rig.publish([*BASE, "--audience", "users", "--group", "mtclass", "--users", "root, daemon",
                        "--key-dir", str(rig.key_dir), "--conn", "host=n1"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    decoded = codec.decode(rig.published_token(), group_key=key, jobid="31337", owner=OWNER)
    expected = sorted(int(subprocess.check_output(["id", "-u", u], text=True)) for u in ("root", "daemon"))
    assert codec.decode_users(decoded["users"]) == expected
    assert status_of(rig) == "shared with 2 listed users of group mtclass"


def test_publish_unknown_user_fails_clearly(rig: PublishRig) -> None:
    make_key_dir(rig.key_dir)
    proc = rig.publish([*BASE, "--audience", "users", "--group", "mtclass", "--users", "root,no-such-user-x1",
                        "--key-dir", str(rig.key_dir), "--conn", "host=n1"])  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.startswith("ood-mt: share not published: unknown user(s): no-such-user-x1;")
    assert rig.scontrol_calls() == []
    assert status_of(rig).startswith("not shared: unknown user(s): no-such-user-x1")


def test_publish_user_audience_creates_private_key(rig: PublishRig) -> None:
    proc = rig.publish([*BASE, "--audience", "user", "--conn", "host=n1"])
    assert proc.returncode == 0, proc.stderr
    key_file = rig.home / ".ood-mt" / "user.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct(key_file.parent.stat().st_mode & 0o777) == "0o700"
    key = bytes.fromhex(key_file.read_text().strip())
    token = rig.published_token()
    assert token.startswith(f"mt1:~{OWNER}:1:")
    assert codec.decode(token, group_key=key, jobid="31337", owner=OWNER)["conn"] == {"host": "n1"}
    assert status_of(rig) == "shared with you only"
    assert_no_secret_leak(rig, key, proc)


def test_publish_needing_comment(rig: PublishRig) -> None:
    key = make_key_dir(rig.key_dir)
    noise = os.urandom(500).hex()  # incompressible enough to overflow the name
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir),
                        "--conn", f"noise={noise}"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (call,) = rig.scontrol_calls()
    fields = dict(a.split("=", 1) for a in call[2:])
    assert len(fields["JobName"]) == codec.NAME_MAX
    assert fields["Comment"].startswith("mt1c:") and len(fields["Comment"]) <= codec.COMMENT_MAX
    decoded = codec.decode(rig.published_token(), group_key=key, jobid="31337", owner=OWNER)
    assert decoded["conn"]["noise"] == noise


def test_publish_too_large_is_refused_without_scontrol(rig: PublishRig) -> None:
    make_key_dir(rig.key_dir)
    noise = os.urandom(1600).hex()
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir),
                        "--conn", f"noise={noise}"])  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.startswith("ood-mt: share not published: the share is ")
    assert "JobName + Comment hold 2042" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert rig.scontrol_calls() == []
    assert status_of(rig).startswith("not shared: the share is ")


def test_publish_missing_keys_names_group_and_dir(rig: PublishRig) -> None:
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir),
                        "--conn", "host=n1"])  # fmt: skip
    assert proc.returncode != 0
    assert f"you are not in group mtclass or keys are not installed at {rig.key_dir}" in proc.stderr
    assert proc.stderr.startswith("ood-mt: share not published: ")
    assert rig.scontrol_calls() == []


def test_publish_scontrol_failure_is_reported(rig: PublishRig) -> None:
    make_key_dir(rig.key_dir)
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir),
                        "--conn", "host=n1"], SCONTROL_FAIL="Invalid job id")  # fmt: skip
    assert proc.returncode != 0
    assert "scontrol update failed: slurm_update error: Invalid job id" in proc.stderr
    assert "not shared: scontrol update failed" in status_of(rig)


def test_publish_audience_none_does_not_touch_slurm(rig: PublishRig) -> None:
    proc = rig.publish([*BASE, "--audience", "none", "--conn", "host=n1"])
    assert proc.returncode == 0, proc.stderr
    assert rig.scontrol_calls() == []
    assert status_of(rig) == "not shared"


def test_publish_twice_keeps_one_status_line(rig: PublishRig) -> None:
    make_key_dir(rig.key_dir)
    args = [*BASE, "--audience", "group", "--group", "mtclass", "--key-dir", str(rig.key_dir), "--conn", "host=n"]
    assert rig.publish(args).returncode == 0
    assert rig.publish(args).returncode == 0
    text = (rig.session / "connection.yml").read_text()
    assert text.count("mt_share_status:") == 1
    assert yaml.safe_load(text) == {"host": "node-7", "port": 4000, "mt_share_status": "shared with group mtclass"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "both"], "--mode 'both' is not card or form"),
        (["--audience", "everyone"], "--audience 'everyone' is not none, user, group or users"),
        (["--conn", "bad key=v"], "--conn 'bad key' is not key=value"),
        (["--bogus", "x"], "unknown option --bogus"),
    ],
)
def test_publish_bad_arguments(rig: PublishRig, args: list[str], message: str) -> None:
    proc = rig.publish([*BASE, "--audience", "group", "--group", "mtclass", *args])
    assert proc.returncode != 0
    assert proc.stderr.startswith("ood-mt: share not published: ")
    assert message in proc.stderr
    assert rig.scontrol_calls() == []
