"""API keys end to end: the secret is shown once, listings never show it, pages and filters, the admin
key file and the `airlockd keys` subcommands."""
import json
import os
import re
import stat


def test_create_returns_the_secret_once(admin):
    r = admin.post("/v1/keys", json={"name": "ci-runner", "tenant": "team-keys"})
    assert r.status == 201
    key = r.json
    assert re.fullmatch(r"alk_[A-Za-z0-9_-]{43}", key["secret"])
    assert key["secret"].startswith(key["prefix"])
    assert key["tenant"] == "team-keys" and key["admin"] is False and key["name"] == "ci-runner"
    assert key["revoked_at"] is None
    assert r.headers.get("cache-control") == "no-store"

    listed = admin.get("/v1/keys?tenant=team-keys&include_revoked=true")
    assert listed.status == 200
    assert [k["key_id"] for k in listed.json["keys"]] == [key["key_id"]]
    assert "secret" not in listed.json["keys"][0]
    assert key["secret"] not in listed.body.decode()
    assert key["secret"][len(key["prefix"]):] not in listed.body.decode()


def test_the_new_key_works_with_its_tenant(admin):
    key = admin.post("/v1/keys", json={"name": "mine", "tenant": "team-works"}).json
    assert admin.get("/v1/version", key=key["secret"]).status == 200


def test_tenant_defaults_to_the_callers(admin):
    r = admin.post("/v1/keys", json={"name": "same-tenant"})
    assert r.status == 201 and r.json["tenant"] == "default"


def test_list_pages_newest_first(admin):
    ids = [admin.post("/v1/keys", json={"name": f"k{i}", "tenant": "team-pages"}).json["key_id"] for i in range(5)]
    seen = []
    cursor = None
    for _ in range(5):
        path = "/v1/keys?tenant=team-pages&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = admin.get(path).json
        seen += [k["key_id"] for k in page["keys"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_cursor_is_tied_to_its_filters(admin):
    for i in range(3):
        admin.post("/v1/keys", json={"name": f"c{i}", "tenant": "team-cursor"})
    cursor = admin.get("/v1/keys?tenant=team-cursor&limit=1").json["next_cursor"]
    assert cursor
    for path in (f"/v1/keys?tenant=team-other&limit=1&cursor={cursor}",
                 f"/v1/keys?tenant=team-cursor&include_revoked=true&cursor={cursor}",
                 "/v1/keys?cursor=not-a-cursor"):
        r = admin.get(path)
        assert r.status == 400 and r.error_code == "invalid_parameter", (path, r)
        assert r.json["error"]["field"] == "cursor"


def test_revoked_keys_are_hidden_unless_asked(admin):
    key = admin.post("/v1/keys", json={"name": "gone", "tenant": "team-hidden"}).json
    admin.delete(f"/v1/keys/{key['key_id']}")
    assert admin.get("/v1/keys?tenant=team-hidden").json["keys"] == []
    shown = admin.get("/v1/keys?tenant=team-hidden&include_revoked=true").json["keys"]
    assert shown[0]["key_id"] == key["key_id"] and shown[0]["revoked_at"]


def test_revoke_is_idempotent_and_404_for_unknown(admin):
    key = admin.post("/v1/keys", json={"name": "twice", "tenant": "team-idem"}).json
    first = admin.delete(f"/v1/keys/{key['key_id']}")
    second = admin.delete(f"/v1/keys/{key['key_id']}")
    assert first.status == second.status == 200
    assert first.json["revoked_at"] == second.json["revoked_at"]
    r = admin.delete("/v1/keys/key-0000000000000000")
    assert r.status == 404 and r.error_code == "key_not_found"
    r = admin.delete("/v1/keys/" + "x" * 65)
    assert r.status == 400 and r.error_code == "invalid_parameter"


def test_bad_query_parameters(admin):
    for query in ("limit=0", "limit=1001", "limit=ten", "include_revoked=yes", "tenant=Not_Valid",
                  "unknown=1", "limit=1&limit=2", "tenant=%zz"):
        r = admin.get(f"/v1/keys?{query}")
        assert r.status == 400 and r.error_code == "invalid_parameter", (query, r)
        assert r.json["error"].get("field"), r


def test_admin_key_file(daemon):
    path = daemon.data_dir / "admin-key"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(os.stat(daemon.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(daemon.data_dir / "airlock.db").st_mode) == 0o600
    secret = daemon.admin_key
    assert re.fullmatch(r"alk_[A-Za-z0-9_-]{43}", secret)
    log = daemon.log()
    assert "admin-key" in log and "0600" in log
    assert secret not in log and secret[4:] not in log


def test_keys_cli_against_a_running_daemon(make_daemon):
    d = make_daemon()
    made = d.keys_cli("create", "--tenant", "cli-team", "--name", "from-cli")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert re.fullmatch(r"alk_[A-Za-z0-9_-]{43}", secret)
    assert d.client(secret).get("/v1/version").status == 200
    assert d.client(secret).get("/v1/keys").status == 403  # not an admin key

    listed = d.keys_cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)
    mine = [k for k in keys if k["tenant"] == "cli-team"]
    assert len(mine) == 1 and "secret" not in mine[0] and secret not in listed.stdout
    table = d.keys_cli("list")
    assert mine[0]["key_id"] in table.stdout

    revoked = d.keys_cli("revoke", mine[0]["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert d.client(secret).get("/v1/version").status == 401
    assert d.keys_cli("revoke", "key-nope").returncode != 0

    admin = d.keys_cli("create", "--admin", "--name", "ops", "--json")
    record = json.loads(admin.stdout)
    assert record["admin"] is True and d.client(record["secret"]).get("/v1/keys").status == 200
    assert d.keys_cli("create", "--tenant", "Bad Tenant").returncode != 0
