"""docs/apps.md's "Card text per preset" section is exactly what the generator
(tests/apps/render_card_texts.py: real build, card bodies rendered by OOD's own code) prints now."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from tests.apps import render_card_texts
from tests.apps.app_render import SERVICE_KINDS
from tests.ood.oodsite import OodSite


@dataclass(frozen=True)
class Cards:
    offered: dict[str, list[str]]  # each service kind's presets, from its form in OOD
    text: str  # the generated section


@pytest.fixture(scope="module")
def cards(ood_site: OodSite) -> Cards:
    """The section generated once for both tests (each card is a run of OOD's code; the site is
    only read, so the text is the same for both)."""
    offered = render_card_texts.presets_by_kind(ood_site)
    return Cards(offered, render_card_texts.section(ood_site, offered))


def test_card_text_section_is_current(cards: Cards) -> None:
    generated = cards.text
    in_doc = render_card_texts.doc_section(render_card_texts.DOC.read_text(encoding="utf-8"))
    assert in_doc, f"{render_card_texts.DOC} lacks the generated section markers"
    assert in_doc == generated, ("docs/apps.md's card text is stale; run: "
                                 ".venv/bin/python -m tests.apps.render_card_texts --write")


def test_every_preset_has_a_known_card(ood_site: OodSite, cards: Cards) -> None:
    apps = ood_site.apps
    text = cards.text
    assert set(cards.offered) == set(SERVICE_KINDS) and all(cards.offered.values()), cards.offered
    for kind in SERVICE_KINDS:
        title = yaml.safe_load((apps / f"mt_{kind}" / "manifest.yml").read_text())["name"]
        for preset in cards.offered[kind]:
            assert f"### {title}: preset `{preset}`" in text
    assert "does not know" not in text
    # This site sets no web_apps_origin, so a shared web app is named, never linked on the dashboard.
    assert "no separate address for shared web apps" in text and "(opens /rnode/" not in text
