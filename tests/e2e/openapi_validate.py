"""Checks HTTP responses against api/openapi.yaml (standard library + PyYAML only).

`SchemaValidator` is a small JSON Schema validator for the subset the contract uses: type (with type lists
for nullable values), properties, required, additionalProperties, min/maxProperties, propertyNames, enum,
const, items, min/maxItems, uniqueItems, minimum/maximum, exclusiveMinimum/Maximum, min/maxLength, pattern,
format (date-time), $ref, oneOf/anyOf/allOf/not. A keyword it does not know is an error, never skipped,
so a schema feature added to the spec later cannot pass unchecked. (A null-valued unknown key is
not a keyword but a YAML quoting slip in the spec; it is recorded in `stray_keys` and reported by a test.)

`ContractChecker` finds the operation for (method, path), picks the response for the status (or
`default`), and validates the body against its schema. It also checks what the schema alone cannot:
error codes carry the status the spec's error table gives them, 401 names the Bearer scheme, 405 lists
Allow, 2xx statuses are declared explicitly.
"""
import datetime
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "api" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Keywords that only annotate: nothing to check.
ANNOTATIONS = {"description", "default", "example", "examples", "title", "discriminator", "deprecated",
               "readOnly", "writeOnly", "summary", "$comment", "contentMediaType", "contentEncoding"}
ASSERTIONS = {"$ref", "type", "properties", "required", "additionalProperties", "maxProperties",
              "minProperties", "propertyNames", "enum", "const", "items", "minItems", "maxItems",
              "uniqueItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
              "maxLength", "pattern", "format", "oneOf", "anyOf", "allOf", "not"}

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class ContractViolation(AssertionError):
    pass


def load_spec(path=SPEC_PATH):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _same(a, b):
    """JSON equality: true is not 1, 1.0 is 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _is_type(value, name):
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ContractViolation(f"unknown type {name!r} in schema")


class SchemaValidator:
    def __init__(self, spec):
        self.spec = spec
        self._patterns = {}
        self.stray_keys = set()  # null-valued non-keywords met in the spec (a YAML quoting slip)

    def resolve(self, ref):
        if not ref.startswith("#/"):
            raise ContractViolation(f"only local $refs are supported: {ref}")
        node = self.spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validate(self, schema, value, where="$"):
        """Raises ContractViolation naming the first mismatch."""
        problems = self.errors(schema, value, where)
        if problems:
            raise ContractViolation(problems[0])

    def errors(self, schema, value, where="$"):
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{where}: no value is allowed here"]
        out = []
        for key, arg in schema.items():
            if key in ASSERTIONS or key in ANNOTATIONS or key.startswith("x-"):
                continue
            if arg is None:
                # Not a keyword: every JSON Schema keyword has a value. This is YAML splitting an unquoted
                # flow-style description at its comma ("description: a, b" -> key "b"). Reported by
                # test_spec_has_no_stray_schema_keys; it constrains nothing, so validation goes on.
                self.stray_keys.add(key)
                continue
            raise ContractViolation(f"validator does not support schema keyword {key!r} (at {where})")
        if "$ref" in schema:
            out += self.errors(self.resolve(schema["$ref"]), value, where)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_is_type(value, t) for t in types):
                return out + [f"{where}: expected {'/'.join(types)}, got {type(value).__name__} {value!r:.80}"]
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            out.append(f"{where}: {value!r:.80} is not one of {schema['enum']}")
        if "const" in schema and not _same(value, schema["const"]):
            out.append(f"{where}: {value!r:.80} is not {schema['const']!r}")
        if isinstance(value, dict):
            out += self._object_errors(schema, value, where)
        if isinstance(value, list):
            out += self._array_errors(schema, value, where)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out += self._number_errors(schema, value, where)
        if isinstance(value, str):
            out += self._string_errors(schema, value, where)
        for sub in schema.get("allOf", []):
            out += self.errors(sub, value, where)
        if "anyOf" in schema and all(self.errors(s, value, where) for s in schema["anyOf"]):
            out.append(f"{where}: matches none of anyOf")
        if "oneOf" in schema:
            matching = [i for i, s in enumerate(schema["oneOf"]) if not self.errors(s, value, where)]
            if len(matching) != 1:
                out.append(f"{where}: matches {len(matching)} of oneOf (exactly one needed): {matching}")
        if "not" in schema and not self.errors(schema["not"], value, where):
            out.append(f"{where}: matches a schema it must not")
        return out

    def _object_errors(self, schema, value, where):
        out = []
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{where}: required property {name!r} is missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                out += self.errors(props[name], item, f"{where}.{name}")
            elif extra is False:
                out.append(f"{where}: property {name!r} is not in the schema")
            elif isinstance(extra, dict):
                out += self.errors(extra, item, f"{where}.{name}")
            if "propertyNames" in schema:
                out += self.errors(schema["propertyNames"], name, f"{where}[{name!r}] (name)")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            out.append(f"{where}: more than {schema['maxProperties']} properties")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            out.append(f"{where}: fewer than {schema['minProperties']} properties")
        return out

    def _array_errors(self, schema, value, where):
        out = []
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                out += self.errors(schema["items"], item, f"{where}[{i}]")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{where}: more than {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{where}: fewer than {schema['minItems']} items")
        if schema.get("uniqueItems"):
            for i, a in enumerate(value):
                if any(_same(a, b) for b in value[:i]):
                    out.append(f"{where}: item {i} repeats an earlier one")
        return out

    def _number_errors(self, schema, value, where):
        out = []
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where}: {value} > maximum {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{where}: {value} <= exclusiveMinimum {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            out.append(f"{where}: {value} >= exclusiveMaximum {schema['exclusiveMaximum']}")
        return out

    def _string_errors(self, schema, value, where):
        out = []
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{where}: longer than {schema['maxLength']} characters")
        if "pattern" in schema:
            pattern = self._patterns.get(schema["pattern"])
            if pattern is None:
                pattern = self._patterns[schema["pattern"]] = re.compile(schema["pattern"])
            if not pattern.search(value):
                out.append(f"{where}: {value!r:.80} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            ok = bool(RFC3339.match(value))
            if ok:
                try:
                    datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    ok = False
            if not ok:
                out.append(f"{where}: {value!r} is not an RFC 3339 date-time")
        return out


class ContractChecker:
    """Validates whole HTTP responses against the operations of the spec."""

    def __init__(self, spec=None):
        self.spec = spec if spec is not None else load_spec()
        self.schemas = SchemaValidator(self.spec)
        self.error_status = {code: int(status) for status, code in re.findall(
            r"^\| (\d{3}) \| `([a-z_]+)` \|", self.spec["info"]["description"], re.MULTILINE)}
        self._routes = []
        for template, item in self.spec["paths"].items():
            literal = 0
            parts = []
            for seg in template.strip("/").split("/"):
                if seg.startswith("{") and seg.endswith("}"):
                    parts.append("[^/]+")
                else:
                    parts.append(re.escape(seg))
                    literal += 1
            self._routes.append((re.compile("^/" + "/".join(parts) + "$"), -literal, template, item))
        self._routes.sort(key=lambda r: r[1])  # most literal segments first
        self.checked = 0  # responses validated, for the suite's own sanity checks

    def find(self, path):
        """(template, path item) for a request path, or (None, None)."""
        for regex, _, template, item in self._routes:
            if regex.match(path):
                return template, item
        return None, None

    def check(self, method, target, status, headers, body):
        """Validates one response; returns the parsed JSON body (or None). headers: lower-case names."""
        path = urlsplit(target).path if target.startswith("/") else target
        template, item = self.find(path)
        op = item.get(method.lower()) if item else None
        name = f"{method} {template or path} -> {status}"
        if op is None:
            # Unknown path, or a known path with another method: only an error can come back.
            if status < 400:
                raise ContractViolation(f"{name}: success for an operation the spec does not have")
            response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        else:
            responses = {str(k): v for k, v in op["responses"].items()}
            response = responses.get(str(status))
            if response is None:
                if status < 400:
                    raise ContractViolation(f"{name}: status {status} is not declared for this operation")
                response = responses.get("default")
            if response is None:
                raise ContractViolation(f"{name}: status {status} is not declared and there is no default")
            while "$ref" in response:
                response = self.schemas.resolve(response["$ref"])
        if method.upper() == "HEAD":
            if body:
                raise ContractViolation(f"{name}: a response to HEAD has a body")
            return None
        return self._check_body(name, response, status, headers, body)

    def check_error(self, status, headers, body, what="response"):
        """For responses to requests that name no operation (raw garbage): the Error shape only."""
        response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if status < 400:
            raise ContractViolation(f"{what}: expected an error, got {status}")
        return self._check_body(f"{what} -> {status}", response, status, headers, body)

    def _check_body(self, name, response, status, headers, body):
        content = response.get("content", {})
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if not content:
            if body:
                raise ContractViolation(f"{name}: the spec declares no body, got {len(body)} bytes")
            return None
        if media not in content:
            raise ContractViolation(f"{name}: Content-Type {media!r} is not one of {sorted(content)}")
        self.checked += 1
        if media != "application/json":
            return None
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ContractViolation(f"{name}: body is not UTF-8 JSON ({e}): {body[:200]!r}") from None
        schema = content[media].get("schema", {})
        try:
            self.schemas.validate(schema, value)
        except ContractViolation as e:
            raise ContractViolation(f"{name}: {e}\nbody: {json.dumps(value)[:2000]}") from None
        if status >= 400:
            code = value["error"]["code"]
            expected = self.error_status.get(code)
            if expected != status:
                raise ContractViolation(f"{name}: error code {code!r} belongs with status {expected}, not {status}")
            if status == 401 and not headers.get("www-authenticate", "").lower().startswith("bearer"):
                raise ContractViolation(f"{name}: 401 without WWW-Authenticate: Bearer")
            if status == 405 and not headers.get("allow"):
                raise ContractViolation(f"{name}: 405 without Allow")
        return value
