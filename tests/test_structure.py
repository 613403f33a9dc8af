"""The shape the architecture promises, held by the import graph and the declared actors:
handlers and pages never import workers/, billing/ is pure, models/ knows no surface, every
message an operation writes names a real actor, and every actor says which errors are permanent."""

from __future__ import annotations

import ast
from pathlib import Path

import dramatiq
import pytest

ROOT = Path(__file__).resolve().parent.parent
# The `matomete` command is the one place that composes the web app, the workers and the scheduler.
COMPOSER = ROOT / "api" / "cli.py"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _package(name: str) -> list[Path]:
    return sorted(path for path in (ROOT / name).rglob("*.py") if "migrations" not in path.parts)


def _offenders(package: str, forbidden: tuple[str, ...], *, allowed: tuple[Path, ...] = ()) -> dict[str, list[str]]:
    found = {}
    for path in _package(package):
        if path in allowed:
            continue
        bad = sorted(name for name in _imports(path) if name.split(".")[0] in forbidden)
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_request_handlers_and_pages_never_import_workers():
    """No module of api/ but the `matomete` command imports workers/ (actors are named in the outbox)."""
    assert _offenders("api", ("workers",), allowed=(COMPOSER,)) == {}


def test_billing_is_pure():
    """billing/ imports no storage, queue, web or settings module: plain functions over plain values."""
    forbidden = ("models", "api", "workers", "queues", "settings", "tortoise", "aiohttp", "dramatiq", "asyncpg")
    assert _offenders("billing", forbidden) == {}


def test_models_and_operations_know_no_surface_and_no_worker():
    """models/ (operations included) never imports api/, workers/ or the broker."""
    assert _offenders("models", ("api", "workers", "queues")) == {}


def test_the_import_check_sees_an_import_inside_a_function(tmp_path):
    """A late import counts: the check reads every import statement, not just the module head."""
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from workers.auth import verify_purchase\n")
    assert "workers.auth" in _imports(module)


def _actor_refs() -> list[object]:
    from models import outbox

    return [value for value in vars(outbox).values() if isinstance(value, outbox.ActorRef)]


def test_every_actor_named_by_an_operation_is_declared_on_its_queue():
    """Each ActorRef the operations send to names a declared actor of the same queue."""
    import workers  # noqa: F401 - declares the actors

    refs = _actor_refs()
    assert refs
    broker = dramatiq.get_broker()
    for ref in refs:
        actor = broker.get_actor(ref.actor_name)  # type: ignore[attr-defined]
        assert actor.queue_name == ref.queue_name, ref  # type: ignore[attr-defined]


def test_every_actor_declares_its_permanent_errors():
    """No actor retries an error no retry can mend: each passes throws=."""
    import workers  # noqa: F401 - declares the actors

    broker = dramatiq.get_broker()
    names = sorted(broker.get_declared_actors())
    assert names
    missing = [name for name in names if not broker.get_actor(name).options.get("throws")]
    assert missing == []


@pytest.mark.parametrize("package", ["api", "models", "workers"])
def test_no_actor_is_imported_to_be_called_directly(package):
    """Nothing outside the command calls an actor's function as if it were a function."""
    calls = []
    for path in _package(package):
        if path == COMPOSER:
            continue
        calls += [
            f"{path.name}:{node.lineno}"
            for node in ast.walk(ast.parse(path.read_text()))
            if (isinstance(node, ast.Attribute) and node.attr == "fn")
        ]
    assert calls == []


def test_workers_hold_no_money_rule():
    """Actors only call operations: no worker reaches for tax, ledger, bill status or a state machine."""
    rules = {"billing.tax", "billing.ledger", "billing.invoices", "billing.states", "models.ledger", "models.close_sql"}
    found = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imports(path) if name.rsplit(".", 1)[0] in rules or name in rules
        )
        for path in _package("workers")
    }
    assert {path: names for path, names in found.items() if names} == {}


def _wordy_strings(path: Path) -> list[str]:
    """String constants in ``path`` written in Japanese (user-facing words), docstrings aside."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and any("\u3040" <= char <= "\u9fff" for char in node.value)
    ]


@pytest.mark.parametrize("package", ["api/site", "api/merchant_site", "api/my_site"])
def test_site_code_holds_no_page_words(package):
    """The sites' Python names problems by code; the words (Japanese or English) are in templates and catalogues."""
    found = {str(p.relative_to(ROOT)): _wordy_strings(p) for p in sorted((ROOT / package).rglob("*.py"))}
    assert {path: words for path, words in found.items() if words} == {}
