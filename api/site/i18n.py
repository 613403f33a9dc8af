"""Page text in Japanese (the default) and English, from Babel message catalogues.

Templates are written with English message ids (``{% trans %}``, ``_()``); the Japanese text is
in ``api/locale/ja/LC_MESSAGES/*.po``, one catalogue file per site, read when the app starts
(nothing to compile). The language is ``?lang=ja|en``, then the ``lang`` cookie the switch
sets, then Japanese. Python code names problems by code; only templates hold words.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_COOKIE",
    "LOCALE",
    "RENDERING_LANGUAGE",
    "catalogue_files",
    "chosen_language",
    "install_gettext",
    "language_links",
    "language_of",
    "translations",
]

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"
LANGUAGE_COOKIE = "lang"
LOCALE = web.RequestKey("locale", str)
ONE_YEAR = 365 * 24 * 3600


def catalogue_files(language: str) -> list[Path]:
    """The ``.po`` files of ``language``, every site's."""
    return sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po"))


@cache
def translations(language: str) -> NullTranslations:
    """Every catalogue of ``language`` merged into one; English is the message ids themselves."""
    merged: NullTranslations = NullTranslations()
    for path in catalogue_files(language):
        with path.open("rb") as source:
            catalogue = read_po(source, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalogue)
        compiled.seek(0)
        loaded = Translations(compiled)
        if isinstance(merged, Translations):
            merged.merge(loaded)
        else:
            merged = loaded
    return merged


# The language of the page being rendered, set by ``pages.render``: a macro imported without
# context does not see the page's ``locale`` variable, but it runs in the same task.
RENDERING_LANGUAGE: ContextVar[str] = ContextVar("rendering_language", default=DEFAULT_LANGUAGE)


def language_of(context: Context) -> str:
    """The page's language: its ``locale`` variable, else the language being rendered."""
    language = context.get("locale") or RENDERING_LANGUAGE.get()
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(language_of(context)).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    return translations(language_of(context)).ngettext(singular, plural, count)


@pass_context
def _pgettext(context: Context, message_context: str, message: str) -> str:
    return str(translations(language_of(context)).pgettext(message_context, message))


@pass_context
def _npgettext(context: Context, message_context: str, singular: str, plural: str, count: int) -> str:
    return translations(language_of(context)).npgettext(message_context, singular, plural, count)


def install_gettext(env: Environment) -> None:
    """Make ``_()``, ``gettext``, ``pgettext`` (one English word, two meanings: ``pgettext("subscription",
    "Canceled")``) and ``{% trans %}`` translate into the page's ``locale``."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True, pgettext=_pgettext, npgettext=_npgettext
    )


def chosen_language(request: web.Request) -> tuple[str, bool]:
    """(language, asked now): the ``lang`` query parameter, else the cookie, else Japanese."""
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked, True
    remembered = request.cookies.get(LANGUAGE_COOKIE)
    return (remembered if remembered in LANGUAGES else DEFAULT_LANGUAGE), False


def language_links(request: web.Request) -> list[dict[str, Any]]:
    """The language switch: this page's URL in each language."""
    links = []
    for language in LANGUAGES:
        query = dict(request.query)
        query["lang"] = language
        links.append({"language": language, "url": str(request.rel_url.with_query(query))})
    return links
