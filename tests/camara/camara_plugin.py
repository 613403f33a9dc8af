"""The CAMARA conformance run's pytest plugin: the platform fixture, the manifest applied at
collection, and the closing count.

A plugin rather than ``tests/camara/conftest.py``: the tests are not a package, so a second
``conftest`` module would take the root one's name (``from conftest import ...`` elsewhere would
break). ``tests/conftest.py`` registers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from manifest import ALIASES, reason_for

HERE = Path(__file__).resolve().parent
OUTCOMES: dict[str, str] = {}  # node id -> passed / failed / skipped, one per case
FAILURES: dict[str, str] = {}  # node id -> "tag: the assertion's first line"
TAGS: dict[str, str] = {}  # node id -> the scenario's tag (and outline row)


def _is_camara(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().parent == HERE


def pytest_bdd_apply_tag(tag: str, function: Any) -> Any:
    """CAMARA's tags are scenario ids, not markers: the manifest reads them (see below)."""
    return function


def _scenario_of(item: pytest.Item) -> tuple[str, dict[str, str]]:
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    function = getattr(item, "obj", None)
    template = scenario_wrapper_template_registry.get(function) if function is not None else None
    tags = sorted(template.tags) if template is not None else []
    callspec = getattr(item, "callspec", None)
    example = dict(callspec.params.get("_pytest_bdd_example", {})) if callspec is not None else {}
    return (tags[0] if tags else item.name), example


def _feature_operation(item: pytest.Item) -> str:
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    template = scenario_wrapper_template_registry.get(getattr(item, "obj", None))
    filename = template.feature.filename if template is not None else ""
    return Path(filename).stem.rsplit("-", 1)[-1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Name each case by its tag, and skip, with the reason, what the manifest lists."""
    for item in items:
        if not _is_camara(item):
            continue
        tag, example = _scenario_of(item)
        item.camara_tag = tag  # type: ignore[attr-defined]
        # The feature files are named carrier-billing[-refund]-<operationId>.feature.
        item.camara_operation = _feature_operation(item)  # type: ignore[attr-defined]
        TAGS[item.nodeid] = tag + (f"[{','.join(example.values())}]" if example else "")
        reason = reason_for(tag, example)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"CAMARA manifest: {reason}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One outcome per case (a failure in set-up or teardown is a failure)."""
    if Path(report.fspath).resolve().parent != HERE:
        return
    if report.failed:
        OUTCOMES[report.nodeid] = "failed"
        crash = getattr(report.longrepr, "reprcrash", None)
        message = (crash.message if crash is not None else str(report.longrepr)).splitlines()[0][:160]
        FAILURES.setdefault(report.nodeid, message)
    elif report.skipped and report.when in ("setup", "call"):
        OUTCOMES.setdefault(report.nodeid, "skipped")
    elif report.passed and report.when == "call":
        OUTCOMES.setdefault(report.nodeid, "passed")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """``CAMARA conformance: P passed, F failed, S skipped of N``, and the aliases used."""
    if not OUTCOMES:
        return
    from camara_spec import camara_dir, candidate_dirs
    from camara_steps import ALIAS_USES, NOTES

    counts = {
        kind: sum(1 for outcome in OUTCOMES.values() if outcome == kind) for kind in ("passed", "failed", "skipped")
    }
    write = terminalreporter.write_line
    write("")
    write("CAMARA aliases (the features' spelling -> the YAMLs'):")
    for alias, why in ALIASES.items():
        write(f"  {alias}  [{ALIAS_USES.get(alias, 0)} uses]  {why}")
    for note in sorted(NOTES):
        write(f"CAMARA note: {note}")
    if FAILURES:
        write("CAMARA failures (tag: first line of the assertion):")
        for nodeid, message in sorted(FAILURES.items(), key=lambda pair: TAGS.get(pair[0], pair[0])):
            write(f"  {TAGS.get(nodeid, nodeid)}: {message}")
    if camara_dir() is None:
        write(f"CAMARA folder absent; looked in: {', '.join(map(str, candidate_dirs()))}")
    write(
        f"CAMARA conformance: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped of {len(OUTCOMES)}"
    )


@pytest.fixture(scope="module")
def camara_platform(migrated: str) -> Iterator[Any]:
    """One platform (``camara_platform.Platform``) for every case of the run, on a database
    emptied once. Module-scoped: the cases are one module, and the platform's worker must be gone
    before the rest of the suite runs its own."""
    from camara_platform import Platform
    from camara_spec import alias_problems, feature_files

    from conftest import BROKER_URL, OPS_TOKEN, REDIS_URL, empty_database, flush_rate_limits
    from models.clock import clock
    from settings import Settings

    assert feature_files(), "the CAMARA folder is absent"
    problems = alias_problems()
    assert not problems, f"manifest.ALIASES no longer match the YAMLs: {problems}"
    empty_database(migrated)
    flush_rate_limits()
    clock.configure(test_clock=True)
    settings = Settings(
        database_url=migrated,
        broker_url=BROKER_URL,
        ops_token=OPS_TOKEN,
        secret_key="test-secret-key-0123456789-0123456789",
        test_clock=True,
        log_format="console",
        redis_url=REDIS_URL,
    )
    platform = Platform(settings, OPS_TOKEN)
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        clock.configure(test_clock=False)
