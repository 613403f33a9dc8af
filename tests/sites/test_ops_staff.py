"""The console's foundation: staff sign-in and lockout, roles on every page, staff management,
`matomete create-staff`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from sites_support import SiteBrowser, ops_signed_in, staff_member

from conftest import BACKEND
from models.accounts import StaffUser
from models.audit_log import AuditEntry
from models.site_sessions import SiteSession


async def test_a_staff_member_signs_in_and_out(client: Any) -> None:
    """The first password opens /ops; signing out ends the session server-side."""
    email, password = await staff_member("support")
    browser = SiteBrowser(client)
    response = await browser.sign_in(email, password, prefix="/ops")
    assert response.status == 303
    assert response.headers["Location"] == "/ops"
    status, page = await browser.get("/ops")
    assert status == 200
    assert 'name="q"' in page
    response = await browser.post("/ops/logout")
    assert response.status == 303
    assert await SiteSession.filter(site="ops", ended_at=None).count() == 0
    response = await client.get("/ops", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/ops/login")


async def test_five_wrong_passwords_lock_a_staff_member(client: Any) -> None:
    """The fifth wrong password locks: the right one is then refused, and every attempt is audited."""
    email, password = await staff_member("admin")
    browser = SiteBrowser(client)
    for _ in range(4):
        response = await browser.sign_in(email, "not the password", prefix="/ops")
        assert response.status == 401
    response = await browser.sign_in(email, "not the password", prefix="/ops")
    assert response.status == 403
    response = await browser.sign_in(email, password, prefix="/ops")
    assert response.status == 403
    user = await StaffUser.get(email=email)
    assert user.locked_until is not None
    assert await AuditEntry.filter(target_id=user.id, action__startswith="sign_in.").count() == 6


async def test_the_ops_api_is_not_a_page_of_the_console(client: Any) -> None:
    """/ops/v1 keeps its bearer-token JSON answers: the console's sign-in guard does not cover it."""
    response = await client.get("/ops/v1/lines/CAF0000000001", allow_redirects=False)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_ops_token"


async def test_only_an_admin_manages_staff(client: Any) -> None:
    """Support and billing staff get 403 on the staff page and a forged add changes nothing."""
    for role in ("support", "billing"):
        browser = await ops_signed_in(client, role=role)
        status, _ = await browser.get("/ops/staff")
        assert status == 403
        before = await StaffUser.all().count()
        response = await browser.post("/ops/staff", {"email": "x@carrier.example.jp", "name": "X", "role": "admin"})
        assert response.status == 403
        assert await StaffUser.all().count() == before


async def test_an_admin_adds_staff_changes_a_role_and_stops_them_with_a_reason(client: Any) -> None:
    """The first password is shown once; a role change or stop needs a reason and is audited with it."""
    admin = await ops_signed_in(client, role="admin")
    form = {"email": "New.Hire@carrier.example.jp", "name": "新人", "role": "support"}
    response = await admin.post("/ops/staff", form)
    assert response.status == 201
    added = await StaffUser.get(email="new.hire@carrier.example.jp")
    assert 'id="initial-password"' in response.body_text
    response = await admin.post(f"/ops/staff/{added.id}/role", {"role": "billing", "reason": ""})
    assert response.status == 400
    assert (await StaffUser.get(id=added.id)).role == "support"
    response = await admin.post(f"/ops/staff/{added.id}/role", {"role": "billing", "reason": "moved to billing"})
    assert response.status == 303
    assert (await StaffUser.get(id=added.id)).role == "billing"
    response = await admin.post(f"/ops/staff/{added.id}/deactivate", {"reason": "left the company"})
    assert response.status == 303
    assert not (await StaffUser.get(id=added.id)).active
    entries = await AuditEntry.filter(target_type="staff_user", target_id=added.id).order_by("id")
    assert [entry.action for entry in entries] == ["staff.create", "staff.role", "staff.deactivate"]
    assert entries[1].details["reason"] == "moved to billing"
    assert entries[1].actor.startswith("staff:")


async def test_bad_staff_input_is_named_and_changes_nothing(client: Any) -> None:
    """A bad e-mail, an unknown role, a taken e-mail: 4xx pages naming the problem, no row written."""
    admin = await ops_signed_in(client, role="admin")
    before = await StaffUser.all().count()
    for form, status in (
        ({"email": "not-an-email", "name": "A", "role": "support"}, 400),
        ({"email": "a@carrier.example.jp", "name": "A", "role": "finance"}, 400),
        ({"email": "a@carrier.example.jp", "name": "", "role": "support"}, 400),
    ):
        response = await admin.post("/ops/staff", form)
        assert response.status == status, form
        assert 'class="field-error"' in response.body_text
    assert await StaffUser.all().count() == before
    response = await admin.post("/ops/staff/staff_nobody/deactivate", {"reason": "typo"})
    assert response.status == 404


async def test_the_last_admin_cannot_stop_being_one(client: Any) -> None:
    """With one active admin, changing their role is refused (409) and nothing changes."""
    await StaffUser.filter(role="admin").update(active=False)
    admin = await ops_signed_in(client, role="admin")
    me = await StaffUser.get(role="admin", active=True)
    # The page offers no button on one's own row; the operation refuses a posted form all the same.
    response = await admin.post(f"/ops/staff/{me.id}/role", {"role": "support", "reason": "test"})
    assert response.status == 409
    assert (await StaffUser.get(id=me.id)).role == "admin"


def test_create_staff_prints_a_first_password(tmp_path: Any) -> None:
    """`matomete create-staff EMAIL --role admin` adds an admin and prints a password that signs in."""
    if BACKEND == "services":
        return  # the embedded pass runs the command on its own SQLite file; the operation is shared
    database = tmp_path / "db.sqlite3"
    env = {"MATOMETE_DATABASE_URL": f"sqlite://{database}", "PATH": "/usr/bin:/bin"}

    def matomete(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "api.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - our own

    migrate = matomete("migrate")
    assert migrate.returncode == 0, migrate.stderr
    done = matomete("create-staff", "boss@carrier.example.jp", "--role", "admin")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("boss@carrier.example.jp (admin) first password: ")
    again = matomete("create-staff", "boss@carrier.example.jp", "--role", "admin")
    assert again.returncode == 2
    assert "already exists" in again.stderr
