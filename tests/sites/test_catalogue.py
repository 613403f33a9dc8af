"""The page text catalogue: every message a template uses has its Japanese words, once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from api.site.i18n import catalogue_files, translations

ROOT = Path(__file__).resolve().parents[2]


def _template_messages() -> set[tuple[str | None, str]]:
    """(context, message id) of every message the templates use."""
    method_map = [("api/templates/**.html", "jinja2")]
    options = {"api/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _, _, message, _, context in extract_from_dir(str(ROOT), method_map, options_map=options):
        found.add((context, message if isinstance(message, str) else message[0]))
    return found


def test_every_template_message_has_japanese_words() -> None:
    """Each message id of every template is translated in the Japanese catalogue (no English leaks)."""
    japanese = translations("ja")
    missing = sorted(
        (context or "", message)
        for context, message in _template_messages()
        if (japanese.pgettext(context, message) if context else japanese.gettext(message)) in (message, "")
    )
    assert not missing, f"add these to api/locale/ja/LC_MESSAGES/*.po: {missing}"


def test_each_message_is_translated_in_one_catalogue_file_only() -> None:
    """No message id is in two site catalogues, where one would silently win over the other."""
    counts: Counter[tuple[str | None, str]] = Counter()
    for path in catalogue_files("ja"):
        with path.open("rb") as source:
            counts.update((message.context, message.id) for message in read_po(source) if message.id)
    twice = sorted(message for message, count in counts.items() if count > 1)
    assert not twice, f"translated in more than one .po file: {twice}"


def test_every_catalogue_entry_is_used_by_a_template() -> None:
    """No Japanese is kept for a message no template shows any more (it would hide a later typo)."""
    from api.site.formatting import YEN_MESSAGE  # the one message Python formats (the yen filter)

    used = _template_messages() | {(None, YEN_MESSAGE)}
    unused = []
    for path in catalogue_files("ja"):
        with path.open("rb") as source:
            unused += [(path.name, m.context, m.id) for m in read_po(source) if m.id and (m.context, m.id) not in used]
    assert not unused, f"remove these from the catalogue: {sorted(unused, key=str)}"


def test_english_pages_show_the_message_ids() -> None:
    """English is the message ids themselves: a message reads the same through the English catalogue."""
    assert translations("en").gettext("Sign in") == "Sign in"
    assert translations("ja").gettext("Sign in") == "ログイン"


def test_one_english_word_may_mean_two_things_in_japanese() -> None:
    """A message with a context has its own words: a canceled subscription is not a canceled purchase."""
    japanese = translations("ja")
    assert japanese.pgettext("subscription", "Canceled") != japanese.gettext("Canceled")
    assert translations("en").pgettext("subscription", "Canceled") == "Canceled"


def test_a_macro_imported_without_context_speaks_the_pages_language() -> None:
    """The language being rendered reaches macros that cannot see the page's variables (and the yen filter)."""
    from jinja2 import DictLoader, Environment

    from api.site.formatting import FILTERS
    from api.site.i18n import RENDERING_LANGUAGE, install_gettext

    env = Environment(
        loader=DictLoader(
            {
                "macros.html": '{% macro word() %}{{ _("Sign in") }} {{ 1200 | yen }}{% endmacro %}',
                "page.html": '{% from "macros.html" import word %}{{ word() }}',
            }
        ),
        autoescape=True,
    )
    env.filters.update(FILTERS)
    install_gettext(env)
    rendered = {}
    for language in ("en", "ja"):
        token = RENDERING_LANGUAGE.set(language)
        try:
            rendered[language] = env.get_template("page.html").render()
        finally:
            RENDERING_LANGUAGE.reset(token)
    assert rendered == {"en": "Sign in ¥1,200", "ja": "ログイン 1,200円"}
