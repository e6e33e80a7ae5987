"""Built apps: manifests; forms, staging (submit.yml.erb, template ERBs) and card views
through OOD's own dashboard code (tests/apps/ood_app.py, both for the default OOD version);
staged scripts under bash -n and shellcheck; views for every preset."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ood_mt.app_checks import service_app_problems, staged_scripts
from ood_mt.render import kit_owned_files
from tests.apps import forms
from tests.apps.app_render import CLIENT_KINDS, SERVICE_KINDS, lab_site
from tests.apps.ood_app import HOSTILE, form_attributes, render_view
from tests.apps.static_checks import check_manifest, check_scripts, check_staged_service
from tests.ood.oodsite import OodSite

# The lab's site-local service (inventories/lab/apps/mt_http_demo, listed in local_apps).
LOCAL_APP = "mt_http_demo"


def test_every_app_is_rendered(rendered_apps: dict[str, Path]) -> None:
    deliveries = [f"mt_delivery_{k}" for k in ("default", "debug", "readfile")]
    local = [app.name for app in lab_site().local_apps()]
    assert local == [LOCAL_APP]
    assert sorted(rendered_apps) == sorted([f"mt_{k}" for k in (*SERVICE_KINDS, *CLIENT_KINDS)] + deliveries + local)


def test_builtin_services_pass_the_build_checks_of_local_apps(rendered_apps: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """The checks `ood-mt build` runs on a site-local app (ood_mt.app_checks) hold for every
    built-in service as built: one rule for both."""
    reference = kit_owned_files(tmp_path / "kit")
    d = lab_site().data
    for name in [f"mt_{k}" for k in SERVICE_KINDS] + [LOCAL_APP]:
        problems = service_app_problems(rendered_apps[name], wckey=d["wckey"], cluster=d["cluster"],
                                        groups=["mtusr", "mtclass"], reference=reference, workdir=tmp_path / name)
        assert not problems, f"{name}: " + "\n".join(p.render() for p in problems)


def test_local_app_form_and_staging_in_ood(built_apps: Path, ood_site: OodSite) -> None:
    """The lab's site-local service (made by `ood-mt new-app`), as built: its form and staging
    done by OOD's own code, its staged scripts under bash -n and shellcheck."""
    app = built_apps / LOCAL_APP
    attrs = form_attributes(ood_site, app)
    assert [v for _label, v in attrs["mt_share_preset"]["options"]] == ["weblink", "debug"]
    assert attrs["mt_command"]["value"] == 'python3 -m http.server "$port" --bind 127.0.0.1'
    values = {**forms.COMMON, **forms.SHARING, "mt_share_preset": "weblink", "mt_command": HOSTILE}
    staged = ood_site.stage("mtpub", "4.2.3", LOCAL_APP, values, apps_dir=built_apps)
    assert "--wckey=multitenant" in staged["native"]
    check_staged_service(Path(staged["staged_root"]), secret_text="touch CANARY")


def test_manifests_have_the_ood_keys(rendered_apps: dict[str, Path]) -> None:
    for app in rendered_apps.values():
        check_manifest(app)


@pytest.mark.parametrize("with_initializer", [False, True])
def test_forms_render_in_ood(built_apps: Path, ood_site: OodSite, with_initializer: bool) -> None:
    """Every form as OOD builds it; with the kit's initializer loaded (and no share
    published, or no Slurm at all) or without it, client forms still offer "(none)"."""
    for app in sorted(p for p in built_apps.iterdir() if (p / "form.yml.erb").exists()):
        user = "mtrecv" if app.name in (f"mt_{k}" for k in CLIENT_KINDS) else "mtpub"
        attrs = form_attributes(ood_site, app, user=user, initializer=with_initializer)
        assert attrs["cluster"]["value"] == "lab", app.name
        if app.name in ("mt_jupyter", "mt_gradio", "mt_codeserver"):
            share_select = attrs["mt_llm_share"]
            assert share_select["options"][0] == ["(none)", ""]
            if not with_initializer:
                assert len(share_select["options"]) == 1
                assert "Ask the publisher" in share_select["help"]


def test_services_offer_their_presets(built_apps: Path, ood_site: OodSite) -> None:
    expected = {"llm": ["api", "codegen", "debug"], "database": ["connection", "jdbc", "debug"],
                "dashboard": ["weblink", "debug"], "instruction": ["document", "debug"]}
    for kind, presets in expected.items():
        attrs = form_attributes(ood_site, built_apps / f"mt_{kind}")
        assert [v for _label, v in attrs["mt_share_preset"]["options"]] == presets


def _staged_sessions(built_apps: Path, ood_site: OodSite) -> list[tuple[str, Path, list[str]]]:
    """(app, staged root, sbatch native args) of every service (hostile text in every free
    field) and client (a share id chosen that no job carries), staged by OOD."""
    sessions = []
    for kind in SERVICE_KINDS:
        form = forms.service_form(kind, **{f: HOSTILE for f in forms.TEXT_FIELDS[kind]})
        staged = ood_site.stage("mtpub", "4.2.3", f"mt_{kind}", form, apps_dir=built_apps)
        sessions.append((f"mt_{kind}", Path(staged["staged_root"]), staged["native"]))
    for kind in CLIENT_KINDS:
        form = forms.client_form(kind, **{k: "101" for k in forms.CLIENT_FORMS[kind]})
        staged = ood_site.stage("mtrecv", "4.2.3", f"mt_{kind}", form, apps_dir=built_apps)
        sessions.append((f"mt_{kind}", Path(staged["staged_root"]), staged["native"]))
    return sessions


@pytest.fixture(scope="module")
def staged_sessions(built_apps: Path, ood_site: OodSite) -> list[tuple[str, Path, list[str]]]:
    return _staged_sessions(built_apps, ood_site)


def test_submit_files_render_with_wckey_and_signal(staged_sessions: list[tuple[str, Path, list[str]]]) -> None:
    for name, _root, native in staged_sessions:
        assert "--cpus-per-task=1" in native and "--mem=1G" in native, name
        if name in (f"mt_{k}" for k in SERVICE_KINDS):
            assert "--wckey=multitenant" in native, name
        assert ("--signal=B:TERM@120" in native) == (name == "mt_database"), name


def test_staged_script_sh_is_executable(staged_sessions: list[tuple[str, Path, list[str]]]) -> None:
    """OOD gives each rendered file its .erb's mode; the job runs ./script.sh directly."""
    for name, root, _native in staged_sessions:
        assert (root / "script.sh").stat().st_mode & 0o100, f"{name}: staged script.sh is not executable"


def test_every_rendered_script_passes_bash_n_and_shellcheck(
    staged_sessions: list[tuple[str, Path, list[str]]]
) -> None:
    scripts = []
    for _name, root, _native in staged_sessions:
        scripts += staged_scripts(root)
    assert len(scripts) >= 4 * 5 + 4 * 2
    for root in {root for _name, root, _native in staged_sessions}:
        check_scripts(staged_scripts(root))


def test_hostile_values_stay_base64_in_rendered_scripts(staged_sessions: list[tuple[str, Path, list[str]]]) -> None:
    for _name, root, _native in staged_sessions:
        assert "CANARY" not in (root / "before.sh").read_text()
    llm_root = next(root for name, root, _native in staged_sessions if name == "mt_llm")
    assert base64.b64encode(HOSTILE.encode()).decode() in (llm_root / "before.sh").read_text()


GATE_SECRET = "gate-secret-Gate-Secret-0123456789_ab"
PRESET_CONNECTIONS = {
    "api": {"host": "n1", "port": "4000", "gate_secret": GATE_SECRET, "model": "llama3.2:1b",
            "models": "llama3.2:1b,qwen2.5-coder:1.5b"},
    "codegen": {"host": "n1", "port": "4000", "gate_secret": GATE_SECRET, "model": "qwen2.5-coder:1.5b",
                "models": "qwen2.5-coder:1.5b"},
    "connection": {"engine": "postgresql", "host": "n1", "port": "5000", "database": "shared", "user": "guest",
                   "password": "pw", "jdbc_url": "jdbc:postgresql://n1:5000/shared"},
    "jdbc": {"engine": "mariadb", "host": "n1", "port": "5001", "database": "shared", "user": "guest",
             "password": "pw", "jdbc_url": "jdbc:mariadb://n1:5001/shared"},
    "weblink": {"host": "n1", "port": "6000", "gate_secret": GATE_SECRET},
}


def _hostile(conn: dict[str, str]) -> dict[str, str]:
    return {k: v + "<script>alert(1)</script>\"'&" for k, v in conn.items()}


@pytest.mark.parametrize("preset", sorted(PRESET_CONNECTIONS))
def test_default_view_renders_every_preset_escaped(built_apps: Path, ood_site: OodSite, preset: str) -> None:
    view = built_apps / "mt_delivery_default"
    html = render_view(ood_site, view, {**_hostile(PRESET_CONNECTIONS[preset]), "mt_preset": preset})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html or "%3Cscript%3E" in html
    assert "does not know" not in html
    assert "\n    " not in html, "4-space indentation would become a Markdown code block"


def test_default_view_buttons(built_apps: Path, ood_site: OodSite) -> None:
    view = built_apps / "mt_delivery_default"
    api = render_view(ood_site, view, {**PRESET_CONNECTIONS["api"], "mt_preset": "api"})
    assert "/batch_connect/sys/mt_jupyter/session_contexts/new" in api
    assert f'ollama.Client(host="http://n1:4000/{GATE_SECRET}")' in api
    codegen = render_view(ood_site, view, {**PRESET_CONNECTIONS["codegen"], "mt_preset": "codegen"})
    assert f"<code>http://n1:4000/{GATE_SECRET}/v1</code>" in codegen
    conn = render_view(ood_site, view, {**PRESET_CONNECTIONS["connection"], "mt_preset": "connection"})
    assert "/batch_connect/sys/mt_cloudbeaver/session_contexts/new" in conn
    web = render_view(ood_site, view, {**PRESET_CONNECTIONS["weblink"], "mt_preset": "weblink"})
    # This site sets no web_apps_origin: another user's pages are never linked on the dashboard's origin.
    assert "/rnode/" not in web and "no separate address for shared web apps" in web, web
    assert "<code>n1</code>, port <code>6000</code>" in web


def test_debug_view_shows_everything_escaped_and_checks(built_apps: Path, ood_site: OodSite) -> None:
    view = built_apps / "mt_delivery_debug"
    html = render_view(ood_site, view, _hostile(PRESET_CONNECTIONS["connection"]))
    assert "&quot;jdbc_url&quot;" in html and "<script>" not in html
    assert "Checks passed: not recorded" in html
    html = render_view(ood_site, view, {"host": "n1", "mt_checks": "tag, wckey, audience"})
    assert "Checks passed: tag, wckey, audience" in html


def _doc(text: str, content_type: str) -> dict[str, str]:
    return {"filename": "notes.md", "content_type": content_type,
            "content": base64.b64encode(text.encode()).decode(), "mt_preset": "document"}


def test_readfile_view_markdown_is_safe(built_apps: Path, ood_site: OodSite) -> None:
    view = built_apps / "mt_delivery_readfile"
    md = ("# Title <img src=x onerror=alert(1)>\n\n- **bold** and *em* and `code`\n- [ok](https://example.org/a)\n"
          "- [bad](javascript:alert(1))\n\n```\n<script>x</script>\n\n```\nü\n")
    html = render_view(ood_site, view, _doc(md, "text/markdown"))
    assert "<h1>Title &lt;img src=x onerror=alert(1)&gt;</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html and "<code>code</code>" in html
    assert '<a href="https://example.org/a"' in html
    assert "javascript:" not in html.replace("[bad](javascript:alert(1))", "")
    assert 'href="javascript' not in html
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "\n\n" not in html.split("<div", 1)[1].split("</div>")[0], "a blank line would end the HTML block"
    assert "ü" in html


def test_readfile_view_html_is_shown_as_text_and_size_limited(built_apps: Path, ood_site: OodSite) -> None:
    view = built_apps / "mt_delivery_readfile"
    html = render_view(ood_site, view, _doc("<b>hi</b><script>alert(1)</script>", "text/html"))
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<script>" not in html
    big = render_view(ood_site, view, _doc("x" * (257 * 1024), "text/plain"))
    assert "more than this site shows" in big


@pytest.mark.parametrize("kind", SERVICE_KINDS)
def test_service_views_render(built_apps: Path, ood_site: OodSite, kind: str) -> None:
    view = built_apps / f"mt_{kind}"
    conn = {"host": "n1", "port": "7000", "password": "", "db_engine": "postgresql", "db_name": "shared",
            "db_user": "guest", "instance_dir": "/home/u/db", "file_path": "/home/u/a.md",
            "rotate_command": "/home/u/s/<1>/mt_db_rotate", "mt_share_status": "shared with group <mtclass>"}
    html = render_view(ood_site, view, conn)
    assert "Sharing: shared with group &lt;mtclass&gt;" in html
    if kind == "database":  # the rotate operation, named on the publisher's own card
        assert "run <code>/home/u/s/&lt;1&gt;/mt_db_rotate</code>" in html, html


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_client_views_render(built_apps: Path, ood_site: OodSite, kind: str) -> None:
    html = render_view(ood_site, built_apps / f"mt_{kind}",
                       {"host": "n1", "port": "7000", "password": "p\"<x"})
    assert "/n1/7000/" in html and '"<x' not in html
    if kind == "cloudbeaver":  # its own administrator's password, on the receiver's own card
        assert "Log in as <code>cbadmin</code> with password <code>p&quot;&lt;x</code>" in html, html
