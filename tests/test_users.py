"""Who can be assigned (staff see their branch's staff and the ISP's admins,
admins the whole ISP), and admins managing their ISP's users. An admin cannot deactivate or
demote themselves; no answer ever carries a password or its hash."""

import pytest
from support.client import PASSWORD, assert_error, assert_success, call, get, ids
from support.urls import USERS

from tickets_service.models import User

USER_KEYS = ["id", "name", "email", "role", "isp_id", "branch_id", "is_active"]
NEW = {"name": "Nina New", "email": "Nina@Example.test", "role": "staff", "password": "8 chars!"}


def user_url(user_id) -> str:
    return f"{USERS}/{user_id}"


def log_in(client, email, password):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def assert_no_password(response) -> None:
    text = response.get_data(as_text=True).lower()
    assert "password" not in text
    assert "scrypt" not in text


# --- Reading ----------------------------------------------------------------------------------


@pytest.fixture
def team(make_user, admin, staff, staff_branch2, other_admin, other_staff) -> dict:
    return {
        "admin": admin.id,
        "admin 2": make_user(isp_id=1, branch_id=2, role="admin", name="Bea").id,
        "staff": staff.id,
        "inactive": make_user(isp_id=1, branch_id=1, name="Zed", active=False).id,
        "staff 2": staff_branch2.id,
        "other isp": other_admin.id,
        "other isp staff": other_staff.id,
    }


# Admins see everyone of their ISP; a branch's assignables (staff's list, or branch_id) are
# active users only: an inactive user cannot be assigned.
LISTS = [
    ("admin", {}, ["admin", "admin 2", "staff", "inactive", "staff 2"]),
    ("admin", {"branch_id": 2}, ["admin", "admin 2", "staff 2"]),
    ("admin", {"role": "admin"}, ["admin", "admin 2"]),
    ("admin", {"role": "staff", "branch_id": 1}, ["staff"]),
    ("staff", {}, ["admin", "admin 2", "staff"]),
    ("staff", {"role": "staff"}, ["staff"]),
    ("staff_branch2", {}, ["admin", "admin 2", "staff 2"]),
    ("other_admin", {}, ["other isp", "other isp staff"]),
]


@pytest.mark.parametrize(("caller", "query", "expected"), LISTS)
def test_the_users_list_shows_whom_the_caller_may_see(
    request, client, team, caller, query, expected
):
    response = get(client, request.getfixturevalue(caller), USERS, **query)

    body = assert_success(response, 200)
    assert sorted(ids(body)) == sorted(team[name] for name in expected)
    assert body["meta"]["total"] == len(expected)
    assert {tuple(user) for user in body["data"]} == {tuple(USER_KEYS)}
    assert_no_password(response)


def test_a_user_is_shown_as_the_me_user_plus_is_active(client, staff, admin):
    me = assert_success(get(client, staff, "/api/v1/auth/me"), 200)["data"]

    response = get(client, admin, user_url(staff.id))

    assert assert_success(response, 200)["data"] == {**me, "is_active": True}
    assert list(response.get_json()["data"]) == USER_KEYS
    assert_no_password(response)


def test_the_users_list_is_by_name_a_page_at_a_time(client, admin, team):
    pages = [assert_success(get(client, admin, USERS, per_page=2, page=p), 200) for p in (1, 2, 3)]

    shown = [item["name"] for page in pages for item in page["data"]]
    assert (shown, len(shown)) == (sorted(shown), 5)
    assert {page["meta"]["pages"] for page in pages} == {3}


@pytest.mark.parametrize(
    ("name", "value"),
    [("role", "root"), ("role", ""), ("is_active", "true"), ("per_page", "0"), ("branch_id", "2x")],
)
def test_a_bad_users_query_is_422_on_that_parameter(client, admin, name, value):
    assert_error(get(client, admin, USERS, **{name: value}), 422, name)


# --- Creating (admins) ------------------------------------------------------------------------


@pytest.mark.parametrize("branch", [{}, {"branch_id": 2}])
def test_an_admin_creates_a_user_who_can_log_in(client, admin, fetch, branch):
    response = call(client, admin, "POST", USERS, {**NEW, **branch})

    user_id = assert_success(response, 201, "User created successfully")["data"]["id"]
    assert_no_password(response)
    row = fetch(User, user_id)
    assert (row["isp_id"], row["branch_id"]) == (1, branch.get("branch_id", 1))
    assert (row["role"], row["name"], row["is_active"]) == ("staff", "Nina New", True)
    assert row["email"] == "nina@example.test"
    assert NEW["password"] not in row["password_hash"]
    assert_success(log_in(client, "nina@example.test", NEW["password"]), 200)


def test_a_new_users_email_is_trimmed_and_lowercased_like_a_login(client, admin, fetch):
    response = call(client, admin, "POST", USERS, {**NEW, "email": "  Nina.New@Example.TEST\t"})

    row = fetch(User, assert_success(response, 201)["data"]["id"])
    assert row["email"] == "nina.new@example.test"
    assert_success(log_in(client, " nina.new@example.test ", NEW["password"]), 200)


@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_creating_a_user_with_a_taken_email_is_409(client, admin, staff, assert_refused, spelling):
    body = {**NEW, "email": spelling(staff.email)}
    assert_refused(lambda: call(client, admin, "POST", USERS, body), 409)


BAD_NEW_USER = [
    ({"name": None}, "name"),
    ({"name": "Two\nLines"}, "name"),
    ({"email": "not an email"}, "email"),
    ({"role": "root"}, "role"),
    ({"role": "Admin"}, "role"),
    ({"password": "seven77"}, "password"),
    ({"password": "long enough\x00"}, "password"),
    ({"password": 12345678}, "password"),
    ({"is_active": False}, "is_active"),
    ({"password_hash": "scrypt:x"}, "password_hash"),
    ({"branch_id": 0}, "branch_id"),
]


@pytest.mark.parametrize(("change", "field"), BAD_NEW_USER)
def test_a_bad_new_user_is_422_and_creates_nothing(client, admin, assert_refused, change, field):
    body = {k: v for k, v in {**NEW, **change}.items() if v is not None}
    assert_refused(lambda: call(client, admin, "POST", USERS, body), 422, field)


# --- Updating (admins) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Renamed"},
        {"role": "admin"},
        {"branch_id": 2},
        {"is_active": False},
        {"name": "Both", "is_active": False},
    ],
)
def test_an_admin_updates_a_user(client, admin, staff, fetch, body):
    before = fetch(User, staff.id)

    response = call(client, admin, "PUT", user_url(staff.id), body)

    assert_success(response, 200, "User updated successfully")
    # A rename leaves the user's tokens alone; anything else ends its sessions.
    ends_sessions = body.keys() != {"name"}
    expected = before | body | {"token_version": before["token_version"] + ends_sessions}
    assert fetch(User, staff.id) | {"updated_at": 0} == expected | {"updated_at": 0}


def test_an_admin_sets_a_new_password(client, admin, staff):
    body = {"password": "a brand new secret"}

    assert_success(call(client, admin, "PUT", user_url(staff.id), body), 200)

    assert_error(log_in(client, staff.email, PASSWORD), 401)
    assert_success(log_in(client, staff.email, "a brand new secret"), 200)


@pytest.mark.parametrize("body", [{"is_active": False}, {"branch_id": 2}, {"role": "admin"}])
def test_a_changed_users_old_token_stops_working(client, admin, staff, body):
    assert_success(call(client, admin, "PUT", user_url(staff.id), body), 200)

    assert_error(get(client, staff, USERS), 401)


@pytest.mark.parametrize(
    ("target", "body", "status"),
    [
        ("self", {"is_active": False}, 409),
        ("self", {"role": "staff"}, 409),
        ("self", {"role": "staff", "name": "Me"}, 409),
        ("self", {"name": "Chief", "role": "admin", "is_active": True}, 200),
        ("other admin", {"is_active": False}, 200),
        ("other admin", {"role": "staff"}, 200),
    ],
)
def test_an_admin_cannot_deactivate_or_demote_themselves_but_may_another_admin(
    client, admin, make_user, fetch, assert_refused, target, body, status
):
    other = make_user(isp_id=1, branch_id=2, role="admin")  # never the last admin: it is personal
    user_id = admin.id if target == "self" else other.id
    request = lambda: call(client, admin, "PUT", user_url(user_id), body)  # noqa: E731

    if status == 409:
        assert_refused(request, 409)
    else:
        assert_success(request(), 200)
        assert {k: v for k, v in fetch(User, user_id).items() if k in body} == body


BAD_UPDATE = [
    ({}, "_schema"),
    ({"is_active": "false"}, "is_active"),
    ({"is_active": 0}, "is_active"),
    ({"role": "root"}, "role"),
    ({"password": "short"}, "password"),
    ({"name": ""}, "name"),
    ({"email": "new@example.test"}, "email"),
    ({"isp_id": "1"}, "isp_id"),
]


@pytest.mark.parametrize(("body", "field"), BAD_UPDATE)
def test_a_bad_user_update_is_422_and_changes_nothing(
    client, admin, staff, assert_refused, body, field
):
    assert_refused(lambda: call(client, admin, "PUT", user_url(staff.id), body), 422, field)


def test_staff_cannot_promote_themselves(client, staff, assert_refused):
    """Staff creating or editing users is 403 (test_tenancy's matrix); their own user too."""
    assert_refused(lambda: call(client, staff, "PUT", user_url(staff.id), {"role": "admin"}), 403)


def test_staff_cannot_read_an_inactive_user_whom_no_ticket_may_be_assigned(
    client, staff, make_user
):
    inactive = make_user(isp_id=1, branch_id=1, name="Gone", active=False)

    assert_error(get(client, staff, f"{USERS}/{inactive.id}"), 404)
