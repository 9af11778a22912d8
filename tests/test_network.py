"""The ISP's network as its platform syncs it: sites, nodes, devices, links and services, each
ISP's a tree of at most 32 levels. Admins (and keys with network:write) sync and retire objects,
staff read them, subscribers name the objects that serve them; no route shows, counts, accepts
or changes another ISP's. (Who may call each route, its key scope and its input hygiene are the
endpoint catalogue's: tests/support/catalogue.py.)"""

import json

import pytest
from support.client import assert_error, assert_success, call, get
from support.database import session, stamp
from support.urls import SUBSCRIBERS

from tickets_service.models import NetworkObject, SubscriberNetwork, TicketLink

NETWORK = "/api/v1/network"
NOT_FOUND = "Network object not found."
ITEM_KEYS = ["id", "kind", "external_id", "name", "parent", "branch_id", "attributes", "depth"]
ITEM_KEYS += ["created_at", "updated_at"]
OBJECT_KEYS = [*ITEM_KEYS, "children_count", "subscribers_count"]


def ref(target: str) -> dict:
    """The object named "kind:external_id", as a body names it."""
    kind, external_id = target.split(":", 1)
    return {"kind": kind, "external_id": external_id}


def object_url(target: str) -> str:
    return f"{NETWORK}/{target.replace(':', '/', 1)}"


def put(client, account, target: str, **body):
    return call(client, account, "PUT", object_url(target), body)


def place(client, account, target: str, under: str | None = None, **body) -> int:
    """Sync an object (under `under`, or as a root when new); its id."""
    body = {"name": target, **body}
    if under is not None:
        body["parent"] = ref(under)
    response = put(client, account, target, **body)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()["data"]["id"]


def retire(client, account, target: str):
    return call(client, account, "DELETE", object_url(target))


def shown(client, account, target: str) -> dict:
    return assert_success(get(client, account, object_url(target)), 200)["data"]


def listed(client, account, **query) -> list[str]:
    body = assert_success(get(client, account, NETWORK, **query), 200)
    return [f"{item['kind']}:{item['external_id']}" for item in body["data"]]


def stored(rows, target: str, isp_id: int = 1) -> dict:
    """The row of ISP `isp_id`'s object named "kind:external_id"."""
    kind, external_id = target.split(":", 1)
    [row] = [
        row
        for row in rows(NetworkObject)
        if (row["isp_id"], row["kind"], row["external_id"]) == (isp_id, kind, external_id)
    ]
    return row


def serve(client, admin, subscriber_id: int, *targets: str):
    """Name the objects that serve a subscriber (replacing the ones it had)."""
    body = {"network": [ref(target) for target in targets]}
    response = call(client, admin, "PUT", f"{SUBSCRIBERS}/{subscriber_id}", body)
    assert_success(response, 200)


def served(rows, subscriber_id: int) -> set[int]:
    return {r["object_id"] for r in rows(SubscriberNetwork) if r["subscriber_id"] == subscriber_id}


def refused_on(assert_refused, request, status: int, field: str) -> dict:
    """assert_refused, with `errors` naming only `field` or fields inside it ("parent.kind")."""
    body = assert_refused(request, status).get_json()
    assert body["errors"]
    assert all(name == field or name.startswith(field + ".") for name in body["errors"]), body
    return body


def chain(client, admin, length: int, prefix: str = "c") -> list[str]:
    """node:c1 (a root) down to node:c<length>, each under the one before it."""
    targets = [f"node:{prefix}{n}" for n in range(1, length + 1)]
    for parent, target in zip([None, *targets], targets, strict=False):
        place(client, admin, target, under=parent)
    return targets


# ISP 1's network, parents first: (object, parent, name). Two share a name, so the list orders
# them by id. ISP 2 has a north site of its own, and an east site ISP 1 lacks.
TREE = [
    ("site:north", None, "North POP"),
    ("node:n1", "site:north", "Alpha OLT"),
    ("device:d1", "node:n1", "Zeta Splitter"),
    ("service:svc1", "device:d1", "Fibre 100"),
    ("node:n2", "site:north", "Beta OLT"),
    ("device:old", "node:n2", "Old Switch"),
    ("site:south", None, "South POP"),
    ("link:l1", "site:south", "Beta OLT"),
]
IN_NAME_ORDER = ["node:n1", "node:n2", "link:l1", "service:svc1", "site:north", "site:south"]
IN_NAME_ORDER += ["device:d1"]


@pytest.fixture
def tree(client, admin, other_admin) -> dict:
    """ISP 1's network (device:old retired) and ISP 2's: target -> id, ISP 1's."""
    ids = {target: place(client, admin, target, under, name=name) for target, under, name in TREE}
    assert_success(retire(client, admin, "device:old"), 200)
    place(client, other_admin, "site:north", name="North POP")
    place(client, other_admin, "site:east", name="East POP")
    return ids


# --- Syncing an object ------------------------------------------------------------------------


def test_a_put_creates_an_object_and_a_second_updates_it_in_place(client, admin, tree, rows):
    body = {"name": " Core Switch ", "parent": ref("node:n1"), "branch_id": 2}
    body["attributes"] = {"vendor": "Huawei", "ports": 48}
    created = assert_success(put(client, admin, "device:sw1", **body), 201)

    assert created["message"] == "Network object synced successfully"
    assert list(created["data"]) == ["id"]
    row = stored(rows, "device:sw1")
    assert row["id"] == created["data"]["id"]
    assert (row["name"], row["parent_id"], row["branch_id"]) == ("Core Switch", tree["node:n1"], 2)
    assert (row["attributes"], row["depth"], row["retired_at"]) == (body["attributes"], 3, None)

    updated = assert_success(put(client, admin, "device:sw1", name="Core Switch B"), 200)

    assert updated["message"] == "Network object synced successfully"
    assert updated["data"] == {"id": row["id"]}
    after = stored(rows, "device:sw1")
    assert (after["name"], after["parent_id"], after["attributes"]) == (
        "Core Switch B",
        tree["node:n1"],
        body["attributes"],
    )
    assert len(rows(NetworkObject)) == len(TREE) + 3


def test_repeating_a_put_changes_nothing(client, admin, tree, snapshot):
    body = {"name": "Core", "parent": ref("node:n1"), "branch_id": 1, "attributes": {"a": [1]}}
    first = assert_success(put(client, admin, "device:sw1", **body), 201)["data"]
    before = snapshot()

    again = put(client, admin, "device:sw1", **body)

    assert assert_success(again, 200, "Network object synced successfully")["data"] == first
    assert snapshot() == before  # updated_at included


@pytest.mark.parametrize(
    ("change", "parent", "depth"),
    [
        ({}, "node:n1", 3),
        ({"parent": None}, None, 1),
        ({"parent": ref("site:south")}, "site:south", 2),
    ],
    ids=["parent-left-out-is-kept", "null-makes-a-root", "another-parent"],
)
def test_an_update_keeps_moves_or_unhangs_the_parent(
    client, admin, tree, rows, change, parent, depth
):
    assert_success(put(client, admin, "device:d1", name="Zeta Splitter", **change), 200)

    row = stored(rows, "device:d1")
    assert (row["parent_id"], row["depth"]) == (tree.get(parent), depth)
    assert stored(rows, "service:svc1")["depth"] == depth + 1


def test_the_answers_show_the_object_as_stored(client, staff, admin, tree, rows):
    place(client, admin, "device:d1", "node:n1", name="Zeta Splitter", attributes={"ports": 8})
    row = stored(rows, "device:d1")
    expected = {
        "id": row["id"],
        "kind": "device",
        "external_id": "d1",
        "name": "Zeta Splitter",
        "parent": {"kind": "node", "external_id": "n1"},
        "branch_id": row["branch_id"],
        "attributes": {"ports": 8},
        "depth": 3,
        "created_at": stamp(row["created_at"]),
        "updated_at": stamp(row["updated_at"]),
    }

    one = shown(client, staff, "device:d1")
    items = assert_success(get(client, staff, NETWORK, kind="device"), 200)["data"]

    assert list(one) == OBJECT_KEYS
    assert one == {**expected, "children_count": 1, "subscribers_count": 0}
    assert [list(item) for item in items] == [ITEM_KEYS]
    assert items == [expected]
    assert shown(client, staff, "site:north")["parent"] is None


BAD_BODIES = {
    "no name": ({}, "name"),
    "empty name": ({"name": " "}, "name"),
    "long name": ({"name": "x" * 256}, "name"),
    "two-line name": ({"name": "Two\nLines"}, "name"),
    "parent as text": ({"parent": "site:north"}, "parent"),
    "parent without id": ({"parent": {"kind": "site"}}, "parent"),
    "parent of unknown kind": ({"parent": {"kind": "router", "external_id": "r1"}}, "parent"),
    "parent id with a slash": ({"parent": {"kind": "site", "external_id": "a/b"}}, "parent"),
    "attributes as a list": ({"attributes": [1]}, "attributes"),
    "attributes as text": ({"attributes": "{}"}, "attributes"),
    "branch as text": ({"branch_id": "2"}, "branch_id"),
    "unknown field": ({"notes": "x"}, "notes"),
}


@pytest.mark.parametrize("target", ["device:new", "device:d1"], ids=["create", "update"])
@pytest.mark.parametrize(("body", "field"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_body_is_422_on_its_field_and_changes_nothing(
    client, admin, tree, assert_refused, target, body, field
):
    body = {"name": "Valid", **body} if field != "name" else body
    refused_on(assert_refused, lambda: put(client, admin, target, **body), 422, field)


# At the limit whichever separators the server measures with: json.dumps writes ", " and ": ".
AT_THE_LIMIT = {"k": "x" * (4096 - len(json.dumps({"k": ""})))}
OVER_THE_LIMIT = {"k": "x" * (4097 - len(json.dumps({"k": ""}, separators=(",", ":"))))}


def test_attributes_are_at_most_4096_bytes_of_json(client, admin, assert_refused, rows):
    assert len(json.dumps(AT_THE_LIMIT)) == 4096
    assert_success(put(client, admin, "site:s1", name="S", attributes=AT_THE_LIMIT), 201)
    assert stored(rows, "site:s1")["attributes"] == AT_THE_LIMIT

    over = {"name": "S", "attributes": OVER_THE_LIMIT}
    assert_refused(lambda: put(client, admin, "site:s2", **over), 422, "attributes")


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ("router:r1", "kind"),
        ("site:" + "x" * 256, "external_id"),
        ("site:a%01b", "external_id"),
        ("site:%20", "external_id"),
    ],
    ids=["unknown-kind", "long-id", "control-character", "blank-id"],
)
def test_a_bad_kind_or_external_id_in_the_path_is_422(client, admin, assert_refused, target, field):
    assert_refused(lambda: put(client, admin, target, name="X"), 422, field)


def test_a_parent_unknown_retired_or_of_another_isps_gets_one_answer(
    client, admin, other_admin, assert_refused
):
    """site:x unknown, then another ISP's, then retired here: the same 422 each time, so
    nothing tells an ISP's admin that another ISP has the object."""
    body = {"name": "X", "parent": ref("site:x")}

    def answer() -> dict:
        refused = assert_refused(lambda: put(client, admin, "service:s", **body), 422, "parent")
        return refused.get_json()

    unknown = answer()
    place(client, other_admin, "site:x")
    another_isps = answer()
    place(client, admin, "site:x")
    assert_success(retire(client, admin, "site:x"), 200)
    assert unknown == another_isps == answer()


# --- The tree: no cycle, at most 32 levels ----------------------------------------------------


@pytest.mark.parametrize("parent", ["node:n1", "device:d1", "service:svc1"])
def test_an_object_cannot_hang_under_itself_or_anything_below_it(
    client, admin, tree, assert_refused, parent
):
    assert_refused(lambda: put(client, admin, "node:n1", name="N", parent=ref(parent)), 409)


def test_an_object_may_sit_at_depth_32(client, admin, rows):
    targets = chain(client, admin, 32)
    assert [stored(rows, target)["depth"] for target in targets] == list(range(1, 33))


@pytest.mark.parametrize("target", ["node:new", "node:lone"], ids=["created", "moved"])
def test_an_object_may_not_sit_at_depth_33(client, admin, assert_refused, target):
    deepest = chain(client, admin, 32)[-1]
    place(client, admin, "node:lone")
    body = {"name": "X", "parent": ref(deepest)}
    refused_on(assert_refused, lambda: put(client, admin, target, **body), 422, "parent")


def test_a_subtree_moves_with_its_depths_and_paths_rewritten(client, admin, rows):
    chain(client, admin, 30)
    subtree = chain(client, admin, 3, prefix="r")  # node:r1 > node:r2 > node:r3

    assert_success(put(client, admin, "node:r1", name="R", parent=ref("node:c29")), 200)

    moved = [stored(rows, target) for target in subtree]
    assert [row["depth"] for row in moved] == [30, 31, 32]
    assert all(row["path"].startswith(stored(rows, "node:c29")["path"]) for row in moved)


def test_a_subtree_whose_deepest_object_would_pass_32_stays_put(client, admin, assert_refused):
    chain(client, admin, 30)
    chain(client, admin, 3, prefix="r")  # r1 itself would sit at 31, r3 at 33
    body = {"name": "R", "parent": ref("node:c30")}
    refused_on(assert_refused, lambda: put(client, admin, "node:r1", **body), 422, "parent")


# --- Counts, and a move carrying its subscribers ----------------------------------------------


@pytest.fixture
def subscribers(client, admin, tree, make_subscriber, other_admin) -> dict:
    """Who is served where: ann at svc1 and d1 (counted once), bob (branch 2) at d1, cy at n2;
    and ISP 2's dee at its own north site."""
    people = {
        "ann": make_subscriber(name="Ann"),
        "bob": make_subscriber(branch_id=2, name="Bob"),
        "cy": make_subscriber(name="Cy"),
        "dee": make_subscriber(isp_id=2, name="Dee"),
    }
    serve(client, admin, people["ann"], "service:svc1", "device:d1")
    serve(client, admin, people["bob"], "device:d1")
    serve(client, admin, people["cy"], "node:n2")
    serve(client, other_admin, people["dee"], "site:north")
    return people


@pytest.mark.parametrize(
    ("who", "target", "count"),
    [
        ("admin", "site:north", 3),
        ("admin", "device:d1", 2),
        ("admin", "service:svc1", 1),
        ("admin", "site:south", 0),
        ("staff", "site:north", 2),
        ("staff", "device:d1", 1),
        ("staff_branch2", "site:north", 1),
        ("other_admin", "site:north", 1),
    ],
)
def test_subscribers_count_is_distinct_below_the_object_within_the_callers_reach(
    request, client, subscribers, who, target, count
):
    assert shown(client, request.getfixturevalue(who), target)["subscribers_count"] == count


def test_a_move_carries_its_subscribers_and_children_to_the_new_parent(client, admin, subscribers):
    assert_success(put(client, admin, "node:n1", name="Alpha OLT", parent=ref("site:south")), 200)

    counts = {t: shown(client, admin, t)["subscribers_count"] for t in ("site:north", "site:south")}
    assert counts == {"site:north": 1, "site:south": 2}
    assert shown(client, admin, "site:south")["children_count"] == 2
    assert shown(client, admin, "site:north")["children_count"] == 1  # n2 alone
    assert listed(client, admin, parent="node:n1") == ["device:d1"]


# --- Listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, IN_NAME_ORDER),
        ({"kind": "node"}, ["node:n1", "node:n2"]),
        ({"parent": "site:north"}, ["node:n1", "node:n2"]),
        ({"parent": "node:n2"}, []),  # its only child is retired
        ({"q": "olt"}, ["node:n1", "node:n2", "link:l1"]),
        ({"q": "SVC"}, ["service:svc1"]),
        ({"q": "North"}, ["site:north"]),
        ({"q": "old"}, []),
        ({"kind": "link", "q": "beta"}, ["link:l1"]),
        ({"per_page": 2, "page": 2}, ["link:l1", "service:svc1"]),
    ],
)
def test_the_list_shows_the_isps_live_objects_by_name(client, staff, tree, query, expected):
    body = assert_success(get(client, staff, NETWORK, **query), 200)

    assert [f"{item['kind']}:{item['external_id']}" for item in body["data"]] == expected
    total = len(IN_NAME_ORDER) if "page" in query else len(expected)
    pages = -(-total // query.get("per_page", 50))
    assert body["meta"] == {
        "page": query.get("page", 1),
        "per_page": query.get("per_page", 50),
        "total": total,
        "pages": pages,
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("kind", "router"),
        ("parent", "site:nowhere"),
        ("parent", "north"),
        ("parent", "device:old"),
        ("parent", "site:east"),
        ("per_page", "0"),
        ("q", ""),
    ],
)
def test_a_bad_list_parameter_is_422_on_it(client, admin, tree, name, value):
    assert_error(get(client, admin, NETWORK, **{name: value}), 422, name)


# --- Retiring ---------------------------------------------------------------------------------


def test_retiring_hides_the_object_and_keeps_its_links(
    app, client, admin, subscribers, make_ticket, rows
):
    ticket_id = make_ticket(admin)
    svc1 = stored(rows, "service:svc1")["id"]
    with session(app) as own:
        own.add(TicketLink(ticket_id=ticket_id, object_id=svc1, isp_id=1, position=0))
        own.commit()
    links, served_by = rows(TicketLink), rows(SubscriberNetwork)

    response = retire(client, admin, "service:svc1")

    assert_success(response, 200, "Network object retired successfully")
    assert stored(rows, "service:svc1")["retired_at"] is not None
    assert (rows(TicketLink), rows(SubscriberNetwork)) == (links, served_by)
    assert assert_error(get(client, admin, object_url("service:svc1")), 404)["message"] == NOT_FOUND
    assert "service:svc1" not in listed(client, admin)
    assert shown(client, admin, "device:d1")["children_count"] == 0


def test_an_object_with_live_children_is_not_retired(client, admin, tree, assert_refused):
    assert_refused(lambda: retire(client, admin, "device:d1"), 409)

    assert_success(retire(client, admin, "service:svc1"), 200)
    assert_success(retire(client, admin, "device:d1"), 200)


@pytest.mark.parametrize("target", ["device:nowhere", "device:old", "site:east"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_object_unknown_retired_or_of_another_isp_is_404(
    client, admin, tree, assert_refused, method, target
):
    response = assert_refused(lambda: call(client, admin, method, object_url(target)), 404)
    assert response.get_json()["message"] == NOT_FOUND


def test_a_retired_object_synced_again_comes_back_as_it_was(client, admin, tree, rows):
    body = {"name": "Old Switch", "parent": ref("node:n2")}

    response = put(client, admin, "device:old", **body)

    assert assert_success(response, 201)["data"] == {"id": tree["device:old"]}
    assert stored(rows, "device:old")["retired_at"] is None
    assert "device:old" in listed(client, admin, parent="node:n2")


# --- Who may sync ------------------------------------------------------------------------------


def test_a_key_bound_to_a_branch_reads_the_network_but_may_not_sync_it(
    client, admin, staff_branch2, tree, make_key, assert_refused
):
    scopes = ["network:read", "network:write"]
    branch_key = make_key(admin, scopes=scopes, branch_id=2)
    isp_key = make_key(admin, scopes=scopes, name="ISP-wide")

    assert "site:north" in listed(client, branch_key)
    assert_refused(lambda: put(client, branch_key, "site:west", name="West"), 403)
    assert_refused(lambda: retire(client, branch_key, "link:l1"), 403)
    assert_success(put(client, isp_key, "site:west", name="West"), 201)


# --- Subscribers name the objects that serve them ---------------------------------------------

SERVING = [ref("service:svc1"), ref("site:south"), ref("device:d1")]
IN_KIND_ORDER = [ref("device:d1"), ref("service:svc1"), ref("site:south")]


def test_a_subscriber_shows_the_objects_that_serve_it_last(client, admin, tree, rows):
    body = {"name": "Ann", "network": SERVING}
    made = call(client, admin, "POST", SUBSCRIBERS, body)
    subscriber_id = assert_success(made, 201)["data"]["id"]

    one = assert_success(get(client, admin, f"{SUBSCRIBERS}/{subscriber_id}"), 200)["data"]
    [item] = assert_success(get(client, admin, SUBSCRIBERS), 200)["data"]

    assert (list(one)[-1], one["network"]) == ("network", IN_KIND_ORDER)
    assert item == one
    wanted = {tree[t] for t in ("service:svc1", "site:south", "device:d1")}
    assert served(rows, subscriber_id) == wanted
    assert {r["isp_id"] for r in rows(SubscriberNetwork)} == {1}


SYNC_URL = f"{SUBSCRIBERS}/by-external-id/crm-5"


@pytest.mark.parametrize("how", ["by-id", "by-external-id"])
@pytest.mark.parametrize(
    ("network", "expected"),
    [([ref("node:n2")], {"node:n2"}), ([], set()), (None, {"service:svc1", "device:d1"})],
    ids=["replaced", "cleared", "left-out-kept"],
)
def test_the_network_sent_replaces_the_set(client, admin, tree, rows, how, network, expected):
    first = {"name": "Ann", "external_id": "crm-5", "network": SERVING[::2]}
    created = call(client, admin, "POST", SUBSCRIBERS, first)
    subscriber_id = assert_success(created, 201)["data"]["id"]
    url = SYNC_URL if how == "by-external-id" else f"{SUBSCRIBERS}/{subscriber_id}"
    body = {"name": "Ann B"} | ({} if network is None else {"network": network})

    assert_success(call(client, admin, "PUT", url, body), 200)

    assert served(rows, subscriber_id) == {tree[target] for target in expected}


BAD_NETWORK = {
    "unknown": [ref("device:nowhere")],
    "retired": [ref("device:old")],
    "another isp's": [ref("site:east")],
    "named twice": [ref("device:d1"), ref("device:d1")],
    "unknown kind": [{"kind": "router", "external_id": "r1"}],
    "slash in the id": [{"kind": "site", "external_id": "a/b"}],
    "no id": [{"kind": "site"}],
    "not a list": ref("device:d1"),
    "twenty-one": [ref("device:d1")] + [ref(f"node:x{n}") for n in range(20)],
}


@pytest.mark.parametrize("how", ["create", "update", "sync"])
@pytest.mark.parametrize("network", BAD_NETWORK.values(), ids=BAD_NETWORK.keys())
def test_a_bad_network_is_422_and_changes_nothing(
    client, admin, tree, make_subscriber, assert_refused, how, network
):
    if network == BAD_NETWORK["twenty-one"]:
        for n in range(20):
            place(client, admin, f"node:x{n}", under="site:south")
    url = {
        "create": SUBSCRIBERS,
        "update": f"{SUBSCRIBERS}/{make_subscriber()}",
        "sync": SYNC_URL,
    }[how]
    method = "POST" if how == "create" else "PUT"
    body = {"name": "Ann", "network": network}
    refused_on(assert_refused, lambda: call(client, admin, method, url, body), 422, "network")


def test_twenty_objects_may_serve_a_subscriber(client, admin, make_subscriber, rows):
    targets = [f"node:x{n}" for n in range(20)]
    ids = {place(client, admin, target) for target in targets}
    subscriber_id = make_subscriber()

    serve(client, admin, subscriber_id, *targets)

    assert served(rows, subscriber_id) == ids


# --- Another ISP's network does not exist -----------------------------------------------------


def test_another_isps_admin_lists_and_syncs_only_its_own(client, other_admin, tree, rows):
    isp_one = [row for row in rows(NetworkObject) if row["isp_id"] == 1]

    assert listed(client, other_admin) == ["site:east", "site:north"]
    assert listed(client, other_admin, q="olt") == []
    made = put(client, other_admin, "node:n1", name="Mine", parent=ref("site:north"))
    assert_success(made, 201)
    renamed = put(client, other_admin, "site:north", name="Renamed")
    assert assert_success(renamed, 200)["data"]["id"] != tree["site:north"]

    assert [row for row in rows(NetworkObject) if row["isp_id"] == 1] == isp_one
    mine = stored(rows, "node:n1", isp_id=2)
    assert mine["parent_id"] == stored(rows, "site:north", isp_id=2)["id"]


FOREIGN = [
    pytest.param("GET", object_url("node:n1"), None, None, 404, None, id="fetch"),
    pytest.param("DELETE", object_url("site:south"), None, None, 404, None, id="retire"),
    pytest.param("GET", NETWORK, {"parent": "node:n1"}, None, 422, "parent", id="list-under"),
    pytest.param(
        *("PUT", object_url("node:z"), None, {"name": "Z", "parent": ref("link:l1")}),
        *(422, "parent"),
        id="hang-under",
    ),
    pytest.param(
        *("PUT", SYNC_URL, None, {"name": "Dee", "network": [ref("service:svc1")]}),
        *(422, "network"),
        id="serve-from",
    ),
]


@pytest.mark.parametrize(("method", "url", "query", "body", "status", "field"), FOREIGN)
def test_another_isps_admin_reaches_none_of_isp_ones_objects(
    client, other_admin, tree, assert_refused, method, url, query, body, status, field
):
    refused = assert_refused(
        lambda: call(client, other_admin, method, url, body, query), status, field
    )
    if status == 404:
        assert refused.get_json()["message"] == NOT_FOUND
