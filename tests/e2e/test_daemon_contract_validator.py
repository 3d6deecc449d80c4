"""The response validator itself: it must reject what the contract forbids (otherwise every other
check in this suite would pass vacuously), and it must understand every schema in the spec."""
import json

import pytest

from openapi_validate import ContractViolation, SchemaValidator

KEY = {"key_id": "key-0123456789abcdef", "name": "ci", "tenant": "team-a", "admin": False, "prefix": "alk_Zq3xT1",
       "created_at": "2026-11-21T09:00:00.000Z", "last_used_at": None, "revoked_at": None}
JSON = {"content-type": "application/json"}


def body(value):
    return json.dumps(value).encode()


def test_accepts_a_valid_response(contract):
    assert contract.check("GET", "/v1/keys", 200, JSON, body({"keys": [KEY], "next_cursor": None}))


@pytest.mark.parametrize("mutate", [
    lambda k: k.pop("prefix"),                       # required
    lambda k: k.update(extra=1),                     # additionalProperties: false
    lambda k: k.update(admin="false"),               # type
    lambda k: k.update(key_id="key-UPPERCASE00000"),  # pattern
    lambda k: k.update(tenant="Team"),               # pattern through $ref
    lambda k: k.update(created_at="yesterday"),      # format date-time
    lambda k: k.update(revoked_at=5),                # type list [string, null]
])
def test_rejects_contract_violations(contract, mutate):
    key = dict(KEY)
    mutate(key)
    with pytest.raises(ContractViolation):
        contract.check("GET", "/v1/keys", 200, JSON, body({"keys": [key], "next_cursor": None}))


def test_rejects_wrong_status_code_pairs(contract):
    err = {"error": {"code": "forbidden", "message": "needs an admin key"}}
    contract.check("GET", "/v1/keys", 403, JSON, body(err))
    with pytest.raises(ContractViolation):
        contract.check("GET", "/v1/keys", 400, JSON, body(err))  # forbidden is a 403
    with pytest.raises(ContractViolation):
        contract.check("GET", "/v1/keys", 201, JSON, body({"keys": [], "next_cursor": None}))  # undeclared 2xx
    with pytest.raises(ContractViolation):
        contract.check("GET", "/v1/keys", 401, JSON, body({"error": {"code": "unauthenticated", "message": "x"}}))
    with pytest.raises(ContractViolation):
        contract.check("PUT", "/v1/keys", 405, JSON, body({"error": {"code": "method_not_allowed", "message": "x"}}))
    with pytest.raises(ContractViolation):
        contract.check("GET", "/nope", 200, JSON, body({}))
    with pytest.raises(ContractViolation):
        contract.check("GET", "/healthz", 200, {"content-type": "text/plain"}, b"ok")


def test_rejects_errors_outside_the_one_shape(contract):
    for bad in ({"error": "nope"}, {"error": {"code": "teapot", "message": "x"}},
                {"error": {"code": "internal", "message": ""}}, {"error": {"code": "internal"}},
                {"error": {"code": "internal", "message": "x", "stack": []}}, {"message": "x"}):
        with pytest.raises(ContractViolation):
            contract.check("GET", "/v1/version", 500, JSON, body(bad))


def test_combinators():
    v = SchemaValidator({})
    one = {"oneOf": [{"type": "integer"}, {"type": "number"}]}
    with pytest.raises(ContractViolation):
        v.validate(one, 3)  # both match
    v.validate(one, 3.5)
    v.validate({"anyOf": [{"type": "string"}, {"type": "null"}]}, None)
    with pytest.raises(ContractViolation):
        v.validate({"allOf": [{"minimum": 1}, {"maximum": 2}]}, 3)
    with pytest.raises(ContractViolation):
        v.validate({"type": "integer"}, True)
    with pytest.raises(ContractViolation):
        v.validate({"type": "string", "unknownKeyword": 1}, "x")
    with pytest.raises(ContractViolation):
        v.validate({"type": "array", "uniqueItems": True}, [1, 1])
    with pytest.raises(ContractViolation):
        v.validate({"type": "string", "maxLength": 2}, "abc")
    v.validate({"type": "string", "maxLength": 2}, "éé")  # characters, not bytes


def test_every_example_in_the_spec_validates(contract):
    """Walks every schema of the spec through the validator via its examples, so an unsupported keyword
    anywhere in the contract fails here rather than being skipped."""
    spec = contract.spec
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for resp in op["responses"].values():
                while "$ref" in resp:
                    resp = contract.schemas.resolve(resp["$ref"])
                media = resp.get("content", {}).get("application/json")
                if not media:
                    continue
                examples = []
                if "example" in media:
                    examples.append(media["example"])
                for ex in media.get("examples", {}).values():
                    while "$ref" in ex:
                        ex = contract.schemas.resolve(ex["$ref"])
                    examples.append(ex["value"])
                for ex in examples:
                    contract.schemas.validate(media["schema"], ex)
                    checked += 1
    assert checked >= 10
    # And every named schema can at least be walked (no unsupported keyword anywhere).
    for name, schema in spec["components"]["schemas"].items():
        contract.schemas.errors(schema, None)


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_spec_has_no_stray_schema_keys(contract):
    """A flow-style YAML mapping splits an unquoted description at ", ": `{description: a, b}` gives the
    schema a key "b" with a null value. Harmless to validation but a defect of the contract (which this
    suite may not edit): reported as an expected failure until the spec quotes those descriptions."""
    from openapi_validate import ANNOTATIONS, ASSERTIONS
    stray = sorted({k for node in _walk(contract.spec["components"]["schemas"]) for k, v in node.items()
                    if v is None and k not in ASSERTIONS and k not in ANNOTATIONS and "type" in node})
    if stray:
        pytest.xfail(f"api/openapi.yaml: unquoted descriptions split into stray keys: {stray}")
