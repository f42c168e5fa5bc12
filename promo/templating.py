"""Jinja2 environments, one per language, with gettext installed (newstyle) so templates
use {% trans %} and _(); found from specific to general as in Datasette."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_eval_context, select_autoescape
from jinja2.nodes import EvalContext
from markupsafe import Markup

from promo.i18n import Localizer, in_language, languages, translations

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def _direct_gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    """`_()` as Jinja's newstyle gettext does it (autoescaped, always %-formatted), minus its
    two indirections (a context lookup of `gettext`, then a second context call): a page
    calls `_()` twenty times, and those made up a third of its render time."""
    @pass_eval_context
    def gettext(eval_ctx: EvalContext, string: str, **variables: Any) -> str:
        text: str = Markup(translate(string)) if eval_ctx.autoescape else translate(string)
        return text % variables

    return gettext


class Templates:
    def __init__(self, directory: Path = TEMPLATES_DIR, *, auto_reload: bool = True):
        self.directory = directory
        self.auto_reload = auto_reload  # re-read changed templates (development); off saves a stat per render

    @cached_property
    def _environments(self) -> dict[str, Environment]:
        envs = {}
        for lang in languages():
            env = Environment(
                loader=FileSystemLoader(self.directory),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
                auto_reload=self.auto_reload,
            )
            # added to Environment at run time by the i18n extension, so jinja2's types do not have it
            env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
            env.globals["_"] = _direct_gettext(translations(lang).gettext)
            env.filters["say"] = partial(in_language, gettext=translations(lang).gettext)  # a Phrase or marked message
            envs[lang] = env
        return envs

    def render(self, names: str | list[str], lang: str, **context: Any) -> str:
        env = self._environments.get(lang) or self._environments["en"]
        template = env.select_template([names] if isinstance(names, str) else names)
        return template.render(lang=lang, l10n=Localizer(lang), **context)

    def fragment(self, name: str, lang: str, **context: Hashable) -> Markup:
        """A template whose output depends only on its (hashable) arguments, rendered once per
        argument set and kept: a form's 38 country options cost a quarter of its page."""
        if self.auto_reload:  # development: templates change under us
            return Markup(self.render(name, lang, **context))
        return self._fragment(name, lang, tuple(sorted(context.items())))

    @lru_cache(maxsize=1024)  # noqa: B019 - one Templates per app, alive as long as the app
    def _fragment(self, name: str, lang: str, context: tuple[tuple[str, Hashable], ...]) -> Markup:
        return Markup(self.render(name, lang, **dict(context)))
