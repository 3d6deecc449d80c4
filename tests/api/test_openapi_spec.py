"""Static checks of api/openapi.yaml, the REST contract of airlockd (standard library + PyYAML only).

These keep the contract internally consistent; a separate suite validates the daemon's responses against it.
"""
import re
from pathlib import Path

import pytest
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "api" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ERROR_REF = "#/components/schemas/Error"
STREAM_TYPES = ("application/x-ndjson", "text/event-stream")


@pytest.fixture(scope="module")
def spec():
    with SPEC_PATH.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve_pointer(spec, ref):
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node = spec
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        else:
            assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
            node = node[part]
    return node


def deref(spec, node):
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = resolve_pointer(spec, ref)
    return node


def walk(node, where="#"):
    """Yields (json-pointer-ish location, dict) for every mapping in the document."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item, item[method]


def op_name(path, method):
    return f"{method.upper()} {path}"


def effective_security(spec, op):
    return op.get("security", spec.get("security", []))


def test_parses_as_openapi_31(spec):
    assert isinstance(spec, dict)
    assert str(spec["openapi"]).startswith("3.1")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["paths"], "no paths"


def test_every_ref_resolves(spec):
    refs = [(where, node["$ref"]) for where, node in walk(spec) if isinstance(node.get("$ref"), str)]
    assert len(refs) > 100
    for where, ref in refs:
        try:
            deref(spec, {"$ref": ref})
        except AssertionError as e:
            pytest.fail(f"{where}: {e}")


def test_paths_are_versioned(spec):
    unversioned = {"/healthz", "/metrics"}
    for path in spec["paths"]:
        assert path in unversioned or path.startswith("/v1/"), path


def test_operation_ids_unique_and_summaries_present(spec):
    seen = {}
    for path, method, _, op in operations(spec):
        name = op_name(path, method)
        op_id = op.get("operationId")
        assert op_id and re.fullmatch(r"[a-z][A-Za-z0-9]+", op_id), f"{name}: operationId {op_id!r}"
        assert op_id not in seen, f"{name}: operationId {op_id} also used by {seen[op_id]}"
        seen[op_id] = name
        assert isinstance(op.get("summary"), str) and op["summary"].strip(), f"{name}: no summary"
        assert op.get("tags"), f"{name}: no tag"


def test_every_operation_has_a_success_response(spec):
    for path, method, _, op in operations(spec):
        codes = [str(c) for c in op["responses"]]
        success = [c for c in codes if c.startswith("2")]
        if op.get("x-airlock-websocket"):
            # A WebSocket upgrade succeeds with 101 Switching Protocols, never 2xx.
            assert "101" in codes, f"{op_name(path, method)}: WebSocket endpoint without 101"
            assert method == "get"
        else:
            assert success, f"{op_name(path, method)}: no 2xx response"


def test_error_responses_use_the_one_error_schema(spec):
    for path, method, _, op in operations(spec):
        for code, response in op["responses"].items():
            code = str(code)
            if not (code[0] in "45" or code == "default"):
                continue
            resolved = deref(spec, response)
            content = resolved.get("content", {})
            assert list(content) == ["application/json"], f"{op_name(path, method)} {code}: {list(content)}"
            schema = content["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, f"{op_name(path, method)} {code}: schema {schema}"
        assert "default" in op["responses"], f"{op_name(path, method)}: no default error response"


def test_required_error_responses(spec):
    for path, method, item, op in operations(spec):
        name = op_name(path, method)
        codes = {str(c) for c in op["responses"]}
        if effective_security(spec, op):
            assert "401" in codes, f"{name}: authenticated but no 401"
        if "{" in path:
            assert "404" in codes, f"{name}: path has an id but no 404"
        if "requestBody" in op:
            assert "400" in codes, f"{name}: has a body but no 400"
            if "application/json" in deref(spec, op["requestBody"])["content"]:
                assert "413" in codes, f"{name}: JSON body but no 413"
                assert "415" in codes, f"{name}: JSON body but no 415"
        if op.get("x-airlock-admin"):
            assert "403" in codes, f"{name}: admin-only but no 403"
        params = [deref(spec, p) for p in item.get("parameters", []) + op.get("parameters", [])]
        if any(p["in"] == "query" for p in params):
            assert "400" in codes, f"{name}: has query parameters but no 400"


def test_only_health_is_unauthenticated(spec):
    assert spec["security"] == [{"bearerAuth": []}]
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    open_ops = [op_name(p, m) for p, m, _, op in operations(spec) if not effective_security(spec, op)]
    assert open_ops == ["GET /healthz"]


def _request_body_schemas(spec):
    for path, method, _, op in operations(spec):
        if "requestBody" not in op:
            continue
        body = deref(spec, op["requestBody"])
        assert body.get("required") is True, f"{op_name(path, method)}: body not marked required"
        for media, media_type in body["content"].items():
            if media == "application/json":
                yield op_name(path, method), media_type["schema"]


def _object_schemas(spec, schema, where, seen):
    """Every object schema reachable from a request-body schema (through refs and combinators)."""
    if isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return
        seen.add(ref)
        yield from _object_schemas(spec, deref(spec, schema), ref, seen)
        return
    if not isinstance(schema, dict):
        return
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types or "properties" in schema:
        yield where, schema
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _object_schemas(spec, sub, f"{where}/{key}/{i}", seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _object_schemas(spec, sub, f"{where}/properties/{name}", seen)
    if isinstance(schema.get("items"), dict):
        yield from _object_schemas(spec, schema["items"], f"{where}/items", seen)


def test_request_body_objects_reject_unknown_fields(spec):
    checked = 0
    for name, schema in _request_body_schemas(spec):
        for where, obj in _object_schemas(spec, schema, name, set()):
            checked += 1
            extra = obj.get("additionalProperties")
            if "properties" in obj:
                assert extra is False, f"{name}: {where} must set additionalProperties: false"
            else:
                # A map (env, metadata): values must still be constrained by a schema.
                assert isinstance(extra, dict), f"{name}: {where} is an open object"
    assert checked >= 15


def test_path_parameters_declared(spec):
    for path, method, item, op in operations(spec):
        name = op_name(path, method)
        in_template = set(re.findall(r"{([^}]+)}", path))
        params = [deref(spec, p) for p in item.get("parameters", []) + op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert in_template == declared, f"{name}: template {in_template} vs declared {declared}"
        for p in params:
            assert "schema" in p, f"{name}: parameter {p['name']} has no schema"
            if p["in"] == "path":
                assert p.get("required") is True, f"{name}: path parameter {p['name']} not required"
        keys = [(p["name"], p["in"]) for p in params]
        assert len(keys) == len(set(keys)), f"{name}: duplicate parameters {keys}"


def test_streams_declare_their_item_schema(spec):
    streams = 0
    for path, method, _, op in operations(spec):
        for code, response in op["responses"].items():
            for media, media_type in deref(spec, response).get("content", {}).items():
                if media in STREAM_TYPES:
                    streams += 1
                    item = media_type.get("x-item-schema")
                    assert item and "$ref" in item, f"{op_name(path, method)} {media}: no x-item-schema"
                    events = deref(spec, item)
                    assert "oneOf" in events and events["discriminator"]["propertyName"] == "type"
                    mapping = events["discriminator"]["mapping"]
                    assert "error" in mapping and "keepalive" in mapping, f"{op_name(path, method)}: {mapping}"
    assert streams >= 8


def test_error_schema_shape(spec):
    schemas = spec["components"]["schemas"]
    error = schemas["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    detail = deref(spec, error["properties"]["error"])
    assert set(detail["required"]) == {"code", "message"}
    assert set(detail["properties"]) == {"code", "message", "field", "details"}
    assert detail["additionalProperties"] is False


def test_error_table_matches_error_codes(spec):
    """The table in info.description and the ErrorCode enum list the same codes, each with one status."""
    table = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", spec["info"]["description"], re.MULTILINE)
    codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
    assert sorted(code for _, code in table) == sorted(codes)
    assert len(codes) == len(set(codes))
    status = dict((code, int(s)) for s, code in table)
    required = {"invalid_json": 400, "invalid_field": 400, "unauthenticated": 401, "sandbox_not_found": 404,
                "sandbox_not_running": 409, "payload_too_large": 413, "quota_exceeded": 429, "no_capacity": 503}
    for code, expected in required.items():
        assert status[code] == expected, code
    assert {s for s in status.values()} >= {400, 401, 404, 409, 413, 422, 429, 503}


def test_quota_and_capacity_errors_carry_retry_after(spec):
    responses = spec["components"]["responses"]
    for name in ("TooManyRequests", "ServiceUnavailable"):
        assert "Retry-After" in responses[name]["headers"], name
    create = spec["paths"]["/v1/sandboxes"]["post"]["responses"]
    assert {"429", "503"} <= {str(c) for c in create}


def test_sandbox_states_and_stop_reasons(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["SandboxState"]["enum"] == ["starting", "running", "stopped", "terminated"]
    assert set(schemas["StopReason"]["enum"]) == {"timeout", "idle", "oom", "error", "exited", None}
    usage = schemas["Usage"]["properties"]
    assert {"cpu_seconds", "memory_peak_bytes"} <= set(usage)


def test_examples_match_schemas_when_jsonschema_is_available(spec):
    """Optional deeper check (jsonschema is not in Debian's default python3): examples validate."""
    jsonschema = pytest.importorskip("jsonschema")
    validator_cls = jsonschema.Draft202012Validator

    def validate(schema, value, where):
        schema = {"$ref": schema["$ref"]} if "$ref" in schema else schema
        root = dict(schema, components=spec["components"]) if "$ref" not in schema else {
            "$ref": schema["$ref"], "components": spec["components"]}
        errors = list(validator_cls(root).iter_errors(value))
        assert not errors, f"{where}: {errors[0].message}"

    for path, method, _, op in operations(spec):
        bodies = [deref(spec, op.get("requestBody", {}))] + [deref(spec, r) for r in op["responses"].values()]
        for body in bodies:
            media_type = body.get("content", {}).get("application/json")
            if not media_type:
                continue
            if "example" in media_type:
                validate(media_type["schema"], media_type["example"], op_name(path, method))
            for name, example in media_type.get("examples", {}).items():
                validate(media_type["schema"], deref(spec, example)["value"], f"{op_name(path, method)} {name}")
