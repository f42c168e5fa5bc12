"""Catalogs: complete for every language, in step with the code, placeholders intact."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2 import Environment

from promo.i18n import Localizer, languages, negotiate, translations
from promo.templating import Templates

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "promo" / "locale"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalog(lang: str):  # type: ignore[no-untyped-def]
    with open(LOCALES / lang / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=lang)


def test_english_danish_and_norwegian_are_available() -> None:
    assert languages() == ("en", "da", "nb")


def test_the_template_is_in_step_with_the_code(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    pybabel = str(Path(sys.executable).parent / "pybabel")
    subprocess.run([pybabel, "extract", "-F", "babel.cfg", "-k", "N_", "-k", "_", "-k", "gettext", "--no-location",
                    "--omit-header", "--sort-output", "-o", str(fresh), "."], cwd=ROOT, check=True, capture_output=True)
    with open(fresh, "rb") as handle:
        extracted = {m.id for m in read_po(handle) if m.id}
    for lang in ("da", "nb"):
        translated = {m.id for m in catalog(lang) if m.id}
        assert extracted - translated == set(), f"{lang}: run scripts/i18n extract and translate the new strings"


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_every_string_is_translated_with_the_same_placeholders(lang: str) -> None:
    for message in catalog(lang):
        if not message.id:
            continue
        assert message.string, f"{lang}: {message.id!r} is not translated"
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), message.id


@pytest.mark.parametrize(("choice", "header", "expected"), [
    ("da", "en-GB,en;q=0.9", "da"),  # the user's choice wins
    (None, "nb-NO,nb;q=0.9,en;q=0.5", "nb"),
    (None, "no", "nb"),  # Norwegian readers get Bokmål
    (None, "nn-NO", "nb"),
    (None, "fr-FR,da;q=0.5", "da"),
    (None, "fr-FR,de;q=0.5", "en"),
    ("xx", None, "en"),
    (None, "da;q=0,en", "en"),
])
def test_language_negotiation(choice: str | None, header: str | None, expected: str) -> None:
    assert negotiate(choice, header) == expected


def test_dates_and_country_names_follow_the_language() -> None:
    from datetime import date
    assert Localizer("da").date(date(2014, 10, 31)) == "31. oktober 2014"
    assert Localizer("nb").date(date(2014, 10, 31)) == "31. oktober 2014"
    assert Localizer("en").date(date(2014, 10, 31)) == "October 31, 2014"
    assert (Localizer("da").country("DE"), Localizer("nb").country("DE"), Localizer("en").country("DE")) == \
        ("Tyskland", "Tyskland", "Germany")
    assert translations("da").gettext("Product key") == "Produktnøgle"
    assert translations("nb").gettext("Product key") == "Produktnøkkel"


@pytest.mark.parametrize("lang", ["en", "da", "nb"])
@pytest.mark.parametrize("autoescape", [True, False])
def test_the_direct_gettext_renders_as_jinjas_newstyle_gettext(lang: str, autoescape: bool) -> None:
    """Pages use a faster `_()` (promo/templating.py); it must escape and format exactly as
    Jinja's own newstyle gettext, in HTML (escaped) and in plain-text emails (not escaped)."""
    source = ('{{ _("Signed in as %(email)s", email=who) }}|{{ _("Sign out") }}|{{ _("100%% sure") }}'
              '|{% trans %}Redeem{% endtrans %}')
    ours = Templates(auto_reload=False)._environments[lang].overlay(autoescape=autoescape)
    stock = Environment(extensions=["jinja2.ext.i18n"], autoescape=autoescape)
    stock.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    values = {"who": "<b>a&b@example.com</b>"}
    rendered = ours.from_string(source).render(values)
    assert rendered == stock.from_string(source).render(values)
    assert ("&lt;b&gt;" in rendered) is autoescape


def test_fragments_are_rendered_once_per_argument_set_in_production() -> None:
    """The redeem form's country options come from a cache keyed by language, country list
    and choice; each key renders its own output, and development renders afresh."""
    templates = Templates(auto_reload=False)
    countries = Localizer("da").countries(("DK", "NO", "SE"))
    first = templates.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO")
    assert templates.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO") is first
    assert '<option value="NO" selected>Norge</option>' in first and "Vælg et land" in first
    other = templates.fragment("consumer/_country_options.html", "da", countries=countries, selected="DK")
    assert '<option value="DK" selected>Danmark</option>' in other and '<option value="NO" selected>' not in other
    english = templates.fragment("consumer/_country_options.html", "en", countries=Localizer("en").countries(("NO",)), selected="")
    assert "Norway" in english and "selected" not in english
    development = Templates(auto_reload=True)
    assert development.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO") == first
    assert development.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO") is not first
