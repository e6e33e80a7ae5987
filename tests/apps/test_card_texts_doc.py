"""docs/apps.md's "Card text per preset" section is exactly what the generator
(tests/apps/render_card_texts.py: real build, card bodies rendered by OOD's own code) prints now."""

from __future__ import annotations

import yaml

from tests.apps import render_card_texts
from tests.apps.app_render import SERVICE_KINDS
from tests.ood.oodsite import OodSite


def test_card_text_section_is_current(ood_site: OodSite) -> None:
    generated = render_card_texts.generate(ood_site)
    in_doc = render_card_texts.doc_section(render_card_texts.DOC.read_text(encoding="utf-8"))
    assert in_doc, f"{render_card_texts.DOC} lacks the generated section markers"
    assert in_doc == generated, ("docs/apps.md's card text is stale; run: "
                                 ".venv/bin/python -m tests.apps.render_card_texts --write")


def test_every_preset_has_a_known_card(ood_site: OodSite) -> None:
    apps = ood_site.apps
    text = render_card_texts.section(ood_site)
    for kind in SERVICE_KINDS:
        title = yaml.safe_load((apps / f"mt_{kind}" / "manifest.yml").read_text())["name"]
        for preset in render_card_texts.presets(ood_site, kind):
            assert f"### {title}: preset `{preset}`" in text
    assert "does not know" not in text
    # This site sets no web_apps_origin, so a shared web app is named, never linked on the dashboard.
    assert "no separate address for shared web apps" in text and "(opens /rnode/" not in text
