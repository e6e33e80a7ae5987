"""Rendered apps: manifests, forms and submit files under real Ruby ERB, scripts under
bash -n and shellcheck, views for every preset. OOD itself is replaced by the harness in
tests/harness/ood_job_harness.rb (named so); everything else is real."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.apps import forms
from tests.apps.app_render import CLIENT_KINDS, SERVICE_KINDS
from tests.apps.ood_harness import HOSTILE, render_form, render_view, stage

MANIFEST_KEYS = {"name", "category", "subcategory", "role", "description"}
LLM_SHARE = {"101": {"label": "LLM from mtpub (job 101)", "app": "llm", "preset": "api", "owner": "mtpub",
                     "group": "mtclass", "mode": "form",
                     "conn": {"host": "node1", "port": "4000", "api_url": "http://node1:4000", "model": "m"}}}


def test_every_app_is_rendered(rendered_apps: dict[str, Path]) -> None:
    deliveries = [f"mt_delivery_{k}" for k in ("default", "debug", "readfile")]
    assert sorted(rendered_apps) == sorted([f"mt_{k}" for k in (*SERVICE_KINDS, *CLIENT_KINDS)] + deliveries)


def test_manifests_have_the_ood_keys(rendered_apps: dict[str, Path]) -> None:
    for name, app in rendered_apps.items():
        manifest = yaml.safe_load((app / "manifest.yml").read_text())
        missing = MANIFEST_KEYS - set(manifest)
        assert not missing, f"{name}/manifest.yml lacks {missing}"
        assert all(str(manifest[k]).strip() for k in MANIFEST_KEYS), name
        assert manifest["role"] == "batch_connect"


@pytest.mark.parametrize("with_initializer", [False, True])
def test_forms_render_under_ruby_erb_and_parse_as_yaml(
    rendered_apps: dict[str, Path], tmp_path: Path, with_initializer: bool
) -> None:
    for name, app in rendered_apps.items():
        if not (app / "form.yml.erb").exists():
            continue
        text = render_form(app, LLM_SHARE if with_initializer else None, tmp_path)
        form = yaml.safe_load(text)
        assert form["cluster"] == "lab", name
        for field in form["form"]:
            assert field in form["attributes"] or field.startswith("bc_"), f"{name}: {field} has no attributes"
        if name in ("mt_jupyter", "mt_gradio", "mt_codeserver"):
            share_select = form["attributes"]["mt_llm_share"]
            assert share_select["options"][0] == ["(none)", ""]
            if with_initializer:
                assert ["LLM from mtpub (job 101)", "101"] in share_select["options"]
            else:
                assert len(share_select["options"]) == 1
                assert "Ask the publisher" in share_select["help"]


def test_services_offer_their_presets(rendered_apps: dict[str, Path]) -> None:
    expected = {"llm": ["api", "codegen", "debug"], "database": ["connection", "jdbc", "debug"],
                "dashboard": ["weblink", "debug"], "instruction": ["document", "debug"]}
    for kind, presets in expected.items():
        form = yaml.safe_load(render_form(rendered_apps[f"mt_{kind}"]))
        assert [v for _label, v in form["attributes"]["mt_share_preset"]["options"]] == presets


def _staged_sessions(rendered_apps: dict[str, Path], root: Path) -> list[tuple[str, dict]]:
    sessions = []
    for kind in SERVICE_KINDS:
        form = forms.service_form(kind, **{f: HOSTILE for f in forms.TEXT_FIELDS[kind]})
        sessions.append((f"mt_{kind}", stage(rendered_apps[f"mt_{kind}"], form, root, f"s-{kind}")))
    for kind in CLIENT_KINDS:
        form = forms.client_form(kind, **{k: "101" for k in forms.CLIENT_FORMS[kind]})
        sessions.append((f"mt_{kind}", stage(rendered_apps[f"mt_{kind}"], form, root, f"c-{kind}", LLM_SHARE)))
    return sessions


def test_submit_files_render_with_wckey_and_signal(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    for name, staged in _staged_sessions(rendered_apps, tmp_path):
        native = staged["native"]
        assert "--cpus-per-task=1" in native and "--mem=1G" in native, name
        if name in (f"mt_{k}" for k in SERVICE_KINDS):
            assert "--wckey=multitenant" in native, name
        assert ("--signal=B:TERM@120" in native) == (name == "mt_database"), name


def test_every_rendered_script_passes_bash_n_and_shellcheck(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    scripts = []
    for _name, staged in _staged_sessions(rendered_apps, tmp_path):
        scripts += sorted(Path(staged["session_dir"]).glob("*.sh"))
    assert len(scripts) >= 4 * 5 + 4 * 2
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run(["shellcheck", "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_hostile_values_stay_base64_in_rendered_scripts(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    for _name, staged in _staged_sessions(rendered_apps, tmp_path):
        before = (Path(staged["session_dir"]) / "before.sh").read_text()
        assert "CANARY" not in before
    assert base64.b64encode(HOSTILE.encode()).decode() in (tmp_path / "s-llm" / "before.sh").read_text()


PRESET_CONNECTIONS = {
    "api": {"host": "n1", "port": "4000", "api_url": "http://n1:4000", "model": "llama3.2:1b",
            "models": "llama3.2:1b,qwen2.5-coder:1.5b"},
    "codegen": {"host": "n1", "port": "4000", "api_url": "http://n1:4000", "model": "qwen2.5-coder:1.5b",
                "models": "qwen2.5-coder:1.5b"},
    "connection": {"engine": "postgresql", "host": "n1", "port": "5000", "database": "shared", "user": "guest",
                   "password": "pw", "jdbc_url": "jdbc:postgresql://n1:5000/shared"},
    "jdbc": {"engine": "mariadb", "host": "n1", "port": "5001", "database": "shared", "user": "guest",
             "password": "pw", "jdbc_url": "jdbc:mariadb://n1:5001/shared"},
    "weblink": {"host": "n1", "port": "6000", "url": "/rnode/n1/6000/"},
}


def _hostile(conn: dict[str, str]) -> dict[str, str]:
    return {k: v + "<script>alert(1)</script>\"'&" for k, v in conn.items()}


@pytest.mark.parametrize("preset", sorted(PRESET_CONNECTIONS))
def test_default_view_renders_every_preset_escaped(rendered_apps: dict[str, Path], tmp_path: Path, preset: str) -> None:
    view = rendered_apps["mt_delivery_default"] / "view.html.erb"
    html = render_view(view, {**_hostile(PRESET_CONNECTIONS[preset]), "mt_preset": preset}, tmp_path)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html or "%3Cscript%3E" in html
    assert "does not know" not in html
    assert "\n    " not in html, "4-space indentation would become a Markdown code block"


def test_default_view_buttons(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    view = rendered_apps["mt_delivery_default"] / "view.html.erb"
    api = render_view(view, {**PRESET_CONNECTIONS["api"], "mt_preset": "api"}, tmp_path)
    assert "/batch_connect/sys/mt_jupyter/session_contexts/new" in api
    assert 'ollama.Client(host="http://n1:4000")' in api
    conn = render_view(view, {**PRESET_CONNECTIONS["connection"], "mt_preset": "connection"}, tmp_path)
    assert "/batch_connect/sys/mt_cloudbeaver/session_contexts/new" in conn
    web = render_view(view, {**PRESET_CONNECTIONS["weblink"], "mt_preset": "weblink"}, tmp_path)
    assert 'action="/rnode/n1/6000/"' in web


def test_debug_view_shows_everything_escaped_and_checks(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    view = rendered_apps["mt_delivery_debug"] / "view.html.erb"
    html = render_view(view, _hostile(PRESET_CONNECTIONS["connection"]), tmp_path)
    assert "&quot;jdbc_url&quot;" in html and "<script>" not in html
    assert "Checks passed: not recorded" in html
    html = render_view(view, {"host": "n1", "mt_checks": "tag, wckey, audience"}, tmp_path)
    assert "Checks passed: tag, wckey, audience" in html


def _doc(text: str, content_type: str) -> dict[str, str]:
    return {"filename": "notes.md", "content_type": content_type,
            "content": base64.b64encode(text.encode()).decode(), "mt_preset": "document"}


def test_readfile_view_markdown_is_safe(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    view = rendered_apps["mt_delivery_readfile"] / "view.html.erb"
    md = ("# Title <img src=x onerror=alert(1)>\n\n- **bold** and *em* and `code`\n- [ok](https://example.org/a)\n"
          "- [bad](javascript:alert(1))\n\n```\n<script>x</script>\n\n```\nü\n")
    html = render_view(view, _doc(md, "text/markdown"), tmp_path)
    assert "<h1>Title &lt;img src=x onerror=alert(1)&gt;</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html and "<code>code</code>" in html
    assert '<a href="https://example.org/a"' in html
    assert "javascript:" not in html.replace("[bad](javascript:alert(1))", "")
    assert 'href="javascript' not in html
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "\n\n" not in html.split("<div", 1)[1].split("</div>")[0], "a blank line would end the HTML block"
    assert "ü" in html


def test_readfile_view_html_is_shown_as_text_and_size_limited(rendered_apps: dict[str, Path], tmp_path: Path) -> None:
    view = rendered_apps["mt_delivery_readfile"] / "view.html.erb"
    html = render_view(view, _doc("<b>hi</b><script>alert(1)</script>", "text/html"), tmp_path)
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<script>" not in html
    big = render_view(view, _doc("x" * (257 * 1024), "text/plain"), tmp_path)
    assert "more than this site shows" in big


@pytest.mark.parametrize("kind", SERVICE_KINDS)
def test_service_views_render(rendered_apps: dict[str, Path], tmp_path: Path, kind: str) -> None:
    view = rendered_apps[f"mt_{kind}"] / "view.html.erb"
    conn = {"host": "n1", "port": "7000", "password": "", "db_engine": "postgresql", "db_name": "shared",
            "db_user": "guest", "instance_dir": "/home/u/db", "file_path": "/home/u/a.md",
            "mt_share_status": "shared with group <mtclass>"}
    html = render_view(view, conn, tmp_path)
    assert "Sharing: shared with group &lt;mtclass&gt;" in html


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_client_views_render(rendered_apps: dict[str, Path], tmp_path: Path, kind: str) -> None:
    html = render_view(rendered_apps[f"mt_{kind}"] / "view.html.erb",
                       {"host": "n1", "port": "7000", "password": "p\"<x"}, tmp_path)
    assert "/n1/7000/" in html and '"<x' not in html
