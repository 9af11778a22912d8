"""Issue 9, point 10: who can be assigned (staff see their branch's staff and the ISP's
admins; admins the whole ISP), and admins managing their ISP's users. An admin cannot
deactivate or demote themselves; no answer ever carries a password or its hash."""

import pytest
from desk_helpers import USER_KEYS, USERS, call, desk_state, ids

from tickets_service.models import User

from conftest import PASSWORD, assert_error, assert_success

LOGIN = "/api/v1/auth/login"
USER_ORDER = ["id", "name", "email", "role", "isp_id", "branch_id", "is_active"]
NEW_USER = {"name": "Nina New", "email": "Nina@Example.test", "role": "staff"}
NEW_USER["password"] = "a long enough secret"


def user_url(user_id) -> str:
    return f"{USERS}/{user_id}"


def log_in(client, email, password):
    return client.post(LOGIN, json={"email": email, "password": password})


def assert_no_password(response) -> None:
    text = response.get_data(as_text=True).lower()
    assert "password" not in text
    assert "scrypt" not in text


@pytest.fixture
def team(make_user, admin, staff, staff_branch2, other_admin, other_staff) -> dict:
    return {
        "admin": admin.id,
        "admin of branch 2": make_user(isp_id=1, branch_id=2, role="admin", name="Bea").id,
        "staff": staff.id,
        "inactive staff": make_user(isp_id=1, branch_id=1, name="Zed", active=False).id,
        "staff of branch 2": staff_branch2.id,
        "other isp": other_admin.id,
        "other isp staff": other_staff.id,
    }


def names(team, *wanted) -> list[int]:
    return sorted(team[name] for name in wanted)


# --- Reading ----------------------------------------------------------------------------------

ISP_ONE = ["admin", "admin of branch 2", "staff", "inactive staff", "staff of branch 2"]
BRANCH_ONE = ["admin", "admin of branch 2", "staff", "inactive staff"]
LISTS = [
    ("admin", {}, ISP_ONE),
    ("admin", {"branch_id": 2}, ["admin", "admin of branch 2", "staff of branch 2"]),
    ("admin", {"role": "admin"}, ["admin", "admin of branch 2"]),
    ("admin", {"role": "staff", "branch_id": 1}, ["staff", "inactive staff"]),
    ("staff", {}, BRANCH_ONE),
    ("staff", {"role": "staff"}, ["staff", "inactive staff"]),
    ("staff_branch2", {}, ["admin", "admin of branch 2", "staff of branch 2"]),
    ("other_admin", {}, ["other isp", "other isp staff"]),
]


@pytest.mark.parametrize(("caller", "query", "expected"), LISTS)
def test_users_list_shows_who_the_caller_may_see(request, client, team, caller, query, expected):
    account = request.getfixturevalue(caller)

    response = client.get(USERS, query_string=query, headers=account.headers)

    body = assert_success(response, 200)
    assert sorted(ids(body)) == names(team, *expected)
    assert body["meta"]["total"] == len(expected)
    assert_no_password(response)


def test_users_are_shown_as_the_me_user_plus_is_active(client, staff, admin, team):
    me = assert_success(client.get("/api/v1/auth/me", headers=staff.headers), 200)["data"]

    response = client.get(user_url(staff.id), headers=admin.headers)

    shown = assert_success(response, 200)["data"]
    assert list(shown) == USER_ORDER
    assert set(shown) == USER_KEYS
    assert shown == {**me, "is_active": True}
    assert_no_password(response)


def test_users_list_is_ordered_by_name_and_paged(client, admin, team):
    pages = [
        assert_success(
            client.get(USERS, query_string={"per_page": 2, "page": p}, headers=admin.headers), 200
        )
        for p in (1, 2, 3)
    ]

    shown = [item["name"] for page in pages for item in page["data"]]
    assert shown == sorted(shown)
    assert len(shown) == 5
    assert {page["meta"]["pages"] for page in pages} == {3}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"role": "root"}, "role"),
        ({"role": ""}, "role"),
        ({"is_active": "true"}, "is_active"),
        ({"per_page": "0"}, "per_page"),
        ({"branch_id": "two"}, "branch_id"),
    ],
)
def test_bad_users_query_is_422(client, admin, query, field):
    assert_error(client.get(USERS, query_string=query, headers=admin.headers), 422, field)


# --- Creating (admins) ------------------------------------------------------------------------


@pytest.mark.parametrize(("branch", "expected_branch"), [({}, 1), ({"branch_id": 2}, 2)])
def test_admin_creates_a_user_who_can_log_in(client, admin, fetch, branch, expected_branch):
    response = call(client, admin, "POST", USERS, {**NEW_USER, **branch})

    created = assert_success(response, 201, "User created successfully")
    assert_no_password(response)
    row = fetch(User, created["data"]["id"])
    assert (row["isp_id"], row["branch_id"], row["role"]) == (1, expected_branch, "staff")
    assert (row["name"], row["email"], row["is_active"]) == ("Nina New", "nina@example.test", True)
    assert NEW_USER["password"] not in row["password_hash"]
    assert_success(log_in(client, "nina@example.test", NEW_USER["password"]), 200)


@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_creating_a_user_with_a_taken_email_is_409(client, admin, staff, rows, spelling):
    email = spelling(staff.email)
    before = desk_state(rows)

    assert_error(call(client, admin, "POST", USERS, {**NEW_USER, "email": email}), 409)

    assert desk_state(rows) == before


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
def test_bad_new_user_is_422_and_creates_nothing(client, admin, rows, change, field):
    body = {k: v for k, v in {**NEW_USER, **change}.items() if v is not None}
    before = desk_state(rows)

    assert_error(call(client, admin, "POST", USERS, body), 422, field)

    assert desk_state(rows) == before


# --- Updating (admins) ------------------------------------------------------------------------

UPDATES = [
    ({"name": "Renamed"}, {"name": "Renamed"}),
    ({"role": "admin"}, {"role": "admin"}),
    ({"branch_id": 2}, {"branch_id": 2}),
    ({"is_active": False}, {"is_active": False}),
    ({"name": "Both", "is_active": False}, {"name": "Both", "is_active": False}),
]


@pytest.mark.parametrize(("body", "expected"), UPDATES)
def test_admin_updates_a_user(client, admin, staff, fetch, body, expected):
    before = fetch(User, staff.id)

    assert_success(
        call(client, admin, "PUT", user_url(staff.id), body), 200, "User updated successfully"
    )

    assert fetch(User, staff.id) | {"updated_at": None} == before | expected | {"updated_at": None}


def test_admin_sets_a_new_password(client, admin, staff):
    body = {"password": "a brand new secret"}

    assert_success(call(client, admin, "PUT", user_url(staff.id), body), 200)

    assert_error(log_in(client, staff.email, PASSWORD), 401)
    assert_success(log_in(client, staff.email, "a brand new secret"), 200)


@pytest.mark.parametrize("body", [{"is_active": False}, {"branch_id": 2}, {"role": "admin"}])
def test_a_changed_users_old_token_stops_working(client, admin, staff, body):
    assert_success(call(client, admin, "PUT", user_url(staff.id), body), 200)

    assert_error(client.get(USERS, headers=staff.headers), 401)


@pytest.mark.parametrize(
    "body", [{"is_active": False}, {"role": "staff"}, {"role": "staff", "name": "Me"}]
)
def test_admin_cannot_deactivate_or_demote_themselves(client, admin, make_user, rows, body):
    make_user(isp_id=1, branch_id=2, role="admin")  # not the last admin: the rule is personal
    before = desk_state(rows)

    assert_error(call(client, admin, "PUT", user_url(admin.id), body), 409)

    assert desk_state(rows) == before


def test_admin_may_rename_themselves(client, admin, fetch):
    assert_success(call(client, admin, "PUT", user_url(admin.id), {"name": "Chief"}), 200)

    assert fetch(User, admin.id)["name"] == "Chief"


@pytest.mark.parametrize("body", [{"is_active": False}, {"role": "staff"}])
def test_admin_may_deactivate_or_demote_another_admin(client, admin, make_user, fetch, body):
    second = make_user(isp_id=1, branch_id=1, role="admin")

    assert_success(call(client, admin, "PUT", user_url(second.id), body), 200)

    row = fetch(User, second.id)
    assert {k: row[k] for k in body} == body


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
def test_bad_user_update_is_422_and_changes_nothing(client, admin, staff, rows, body, field):
    before = desk_state(rows)

    assert_error(call(client, admin, "PUT", user_url(staff.id), body), 422, field)

    assert desk_state(rows) == before


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", None, NEW_USER),
        ("PUT", "admin", {"name": "Hacked"}),
        ("PUT", "self", {"role": "admin"}),
    ],
)
def test_staff_managing_users_is_403(client, staff, admin, rows, method, target, body):
    url = USERS if target is None else user_url(admin.id if target == "admin" else staff.id)
    before = desk_state(rows)

    assert_error(call(client, staff, method, url, body), 403)

    assert desk_state(rows) == before
