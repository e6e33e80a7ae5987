"""Adding a service kind is one folder plus one line: a kind that exists only as a fixture folder
(tests/apps/fixtures/service_kinds/echo: its files and kind.json) plus its name in the service
template's cookiecutter.json renders with the kit's own code, and passes the static checks of
the built-in apps, its form and staging done by OOD's own dashboard code."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from ood_mt import app_templates, render
from tests.apps import forms
from tests.apps.app_render import lab_site
from tests.apps.ood_app import HOSTILE, form_attributes, render_view
from tests.apps.slurm_jobs import shared_render_dir
from tests.apps.static_checks import check_manifest, check_staged_service
from tests.ood.oodsite import OodSite

FIXTURE = Path(__file__).parent / "fixtures" / "service_kinds" / "echo"
KIND = FIXTURE.name


def templates_with_kind(dest: Path, kind_folder: Path) -> Path:
    """A copy of the kit's templates home with KIND_FOLDER added: the folder, and the one line
    (its name among the service template's kinds). Returns the service template."""
    home = Path(shutil.copytree(app_templates.TEMPLATES, dest, symlinks=True))
    shutil.copytree(kind_folder, home / "shared" / "services" / kind_folder.name)
    cc_json = home / "service" / "cookiecutter.json"
    answers = json.loads(cc_json.read_text())
    answers["service_kind"].append(kind_folder.name)
    cc_json.write_text(json.dumps(answers, indent=2) + "\n")
    return home / "service"


def render_new_kind(tmp: Path, out: Path) -> Path:
    """Render mt_<kind> from the fixture exactly as `ood-mt build` renders a built-in service."""
    template = templates_with_kind(tmp / "templates", FIXTURE)
    assert KIND in app_templates.kind_choices("service", template)
    meta = app_templates.kind_meta("service", KIND, shared=template.parent / "shared")
    context = render.service_context(lab_site(), KIND, f"mt_{KIND}", meta["title"], meta["description"])
    spec = render.AppSpec(f"mt_{KIND}", "service", template, context)
    (out / "apps").mkdir(parents=True)
    with render._quiet_cookiecutter_config(tmp) as cfg:
        app = render.render_app(spec, out / "apps", cfg)
    render.stage_share_contract(app / "template")
    render._normalise_modes(out)
    return app


@pytest.fixture(scope="module")
def new_kind_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = shared_render_dir()
    try:
        yield render_new_kind(tmp_path_factory.mktemp("new-kind"), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_new_kind_renders_with_its_title_and_description(new_kind_app: Path) -> None:
    manifest = check_manifest(new_kind_app)
    meta = json.loads((FIXTURE / "kind.json").read_text())
    assert manifest["name"] == meta["title"]
    assert manifest["description"].strip() == meta["description"]
    assert "--wckey=multitenant" in (new_kind_app / "submit.yml.erb").read_text()
    staged_lib = (new_kind_app / "template" / "mt_share.sh").read_text()
    assert staged_lib == app_templates.service_library_text()


def test_new_kind_form_staging_and_view_in_ood(new_kind_app: Path, ood_site: OodSite) -> None:
    apps = new_kind_app.parent
    attrs = form_attributes(ood_site, new_kind_app)
    assert attrs["cluster"]["value"] == "lab"
    assert attrs["mt_serve_dir"]["value"] == "~/public"
    assert [v for _label, v in attrs["mt_share_preset"]["options"]] == ["weblink", "debug"]

    values = {**forms.COMMON, **forms.SHARING, "mt_share_preset": "weblink", "mt_serve_dir": HOSTILE}
    staged = ood_site.stage("mtpub", "4.2.3", new_kind_app.name, values, apps_dir=apps)
    assert "--wckey=multitenant" in staged["native"]
    session = Path(staged["staged_root"])
    check_staged_service(session, secret_text="touch CANARY")
    assert base64.b64encode(HOSTILE.encode()).decode() in (session / "before.sh").read_text()

    html = render_view(ood_site, new_kind_app, {"host": "n1", "port": "7000",
                                                "mt_share_status": "shared with group <mtclass>"})
    assert 'action="/rnode/n1/7000/"' in html
    assert "Sharing: shared with group &lt;mtclass&gt;" in html


def test_kind_folder_without_title_is_refused_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    (broken / "kind.json").write_text('{"description": "no title"}\n')
    template = templates_with_kind(tmp_path / "templates", broken)
    with pytest.raises(app_templates.TemplateError) as info:
        app_templates.kind_meta("service", "broken", shared=template.parent / "shared")
    message = str(info.value)
    assert str(template.parent / "shared" / "services" / "broken" / "kind.json") in message
    assert "title" in message and "Fix" in message


def test_every_builtin_kind_has_its_folder_and_kind_json() -> None:
    for role in app_templates.ROLES:
        for kind in app_templates.builtin_kinds(role):
            assert app_templates.kind_dir(role, kind).is_dir(), (role, kind)
            assert app_templates.kind_meta(role, kind)["title"]
        folders = {p.name for p in app_templates.kind_dir(role, "x").parent.iterdir() if p.is_dir()}
        assert folders == set(app_templates.kind_choices(role)), f"{role}: folders and cookiecutter.json disagree"
