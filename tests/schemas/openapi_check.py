#!/usr/bin/env python3
"""openapi_check.py — proves that schemas/openapi.yaml is a valid OpenAPI 3.0
document describing the routes of schemas/http.md, and that the JSON examples
of schemas/http.md fit it.

How:
  - the document is validated against the official OpenAPI 3.0 JSON Schema
    (Debian's openapi-specification package) with python3-jsonschema;
  - every local $ref resolves (the JSON Schema does not check that);
  - its paths and methods are exactly the routes of the HTTP API;
  - every curl body (-d '...') in schemas/http.md is a Command (or an array
    of them) and every reply line of its json blocks is a Reply, an
    EventImage or an Error, by the document's own schemas;
  - --self-test: broken copies of the document (no info, a dangling $ref, a
    missing route, a wrong type, an extra route) and of an example are each
    refused, so the checks above can fail.

usage: openapi_check.py [--self-test] SCHEMAS_DIR [OAS_SCHEMA_JSON]
Exit 0 valid, 1 invalid, 77 (skip) when the validator or schema is missing.
"""
import copy
import json
import os
import re
import sys

OAS_SCHEMA = "/usr/share/openapi-specification/schemas/v3.0/schema.json"

# The routes of schemas/http.md section 1 (and COMMON's contract).
ROUTES = {
    "/v1/command": {"post"},
    "/v1/batch": {"post"},
    "/v1/events/{event}/availability": {"get"},
    "/v1/events/{event}/seats": {"get"},
    "/v1/events/{event}/state": {"get"},
    "/metrics": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

try:
    import jsonschema
    import yaml
except ImportError as e:  # scripts/setup installs both
    print(f"openapi_check: SKIP: {e} (install python3-jsonschema python3-yaml)")
    sys.exit(77)


def refs(node, path="#"):
    """Yields (where, ref) for every $ref in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield path, v
            else:
                yield from refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs(v, f"{path}/{i}")


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_doc(doc, oas):
    """Returns a list of problems (empty: valid)."""
    problems = []
    validator = jsonschema.validators.validator_for(oas)(oas)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path)
        problems.append(f"OpenAPI 3.0 schema: at '{where}': {err.message[:200]}")
    if problems:
        return problems
    for where, ref in refs(doc):
        if resolve(doc, ref) is None:
            problems.append(f"{where}: $ref '{ref}' does not resolve")
    paths = doc.get("paths", {})
    for route, methods in ROUTES.items():
        have = {m for m in paths.get(route, {}) if m in METHODS}
        if have != methods:
            problems.append(f"route {route}: methods {sorted(have)}, want {sorted(methods)}")
    for route in paths:
        if route not in ROUTES:
            problems.append(f"route {route} is not in the HTTP API")
    return problems


def schema_of(doc, name, array=False):
    """A JSON Schema (draft 4) for components/schemas/name of doc."""
    s = {"components": doc["components"], "$ref": f"#/components/schemas/{name}"}
    if array:
        s = {"components": doc["components"], "type": "array",
             "items": {"$ref": f"#/components/schemas/{name}"}}
    return jsonschema.Draft4Validator(s)


def examples(md):
    """(kind, value, line) for each curl body and reply line of http.md."""
    out = []
    for m in re.finditer(r"-d '([^']*)'", md):
        line = md.count("\n", 0, m.start()) + 1
        out.append(("request", json.loads(m.group(1)), line))
    for m in re.finditer(r"```json\n(.*?)```", md, re.S):
        start = md.count("\n", 0, m.start()) + 2
        text = m.group(1)
        # A block is one value over several lines, or one value a line.
        try:
            out.append(("reply", json.loads(text), start))
            continue
        except json.JSONDecodeError:
            pass
        for i, ln in enumerate(text.splitlines()):
            if ln.strip():
                out.append(("reply", json.loads(ln), start + i))
    return out


def check_examples(doc, md):
    problems = []
    cmd, cmds = schema_of(doc, "Command"), schema_of(doc, "Command", array=True)
    replies = [schema_of(doc, n) for n in ("Reply", "EventImage", "Error")]
    try:
        found = examples(md)
    except json.JSONDecodeError as e:
        return [f"http.md: an example is not JSON: {e}"]
    if sum(1 for k, _, _ in found if k == "request") < 5:
        problems.append("http.md: fewer than 5 curl bodies found")
    for kind, value, line in found:
        if kind == "request":
            v = cmds if isinstance(value, list) else cmd
            errs = list(v.iter_errors(value))
            if errs:
                problems.append(f"http.md:{line}: request body: {errs[0].message[:160]}")
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "status" not in item:  # a command shown alone
                errs = list(cmd.iter_errors(item))
                if errs:
                    problems.append(f"http.md:{line}: command: {errs[0].message[:160]}")
            elif not any(r.is_valid(item) for r in replies):
                problems.append(f"http.md:{line}: reply fits no schema: {json.dumps(item)[:120]}")
    return problems


def self_test(doc, oas, md):
    """Each broken copy must be refused; returns the list of failures."""
    def drop_info(d):
        del d["info"]

    def dangling(d):
        d["paths"]["/v1/batch"]["post"]["responses"]["200"]["content"]["application/json"][
            "schema"]["items"]["$ref"] = "#/components/schemas/Nope"

    def missing_route(d):
        del d["paths"]["/v1/events/{event}/state"]

    def wrong_type(d):
        d["paths"]["/v1/command"]["post"]["responses"] = "none"

    def extra_route(d):
        d["paths"]["/v1/sell"] = copy.deepcopy(d["paths"]["/metrics"])

    failures = []
    for broken in (drop_info, dangling, missing_route, wrong_type, extra_route):
        d = copy.deepcopy(doc)
        broken(d)
        if not check_doc(d, oas):
            failures.append(f"self-test: {broken.__name__} was accepted")
    bad_md = md.replace('"seats":[3,4],"ttl_ms":60000', '"seats":"3,4","ttl_ms":60000', 1)
    if bad_md == md or not check_examples(doc, bad_md):
        failures.append("self-test: a request body with seats as a string was accepted")
    bad_md = md.replace('"status":"ok","op":"confirm"', '"status":"fine","op":"confirm"', 1)
    if bad_md == md or not check_examples(doc, bad_md):
        failures.append("self-test: a reply with an unknown status was accepted")
    return failures


def main(argv):
    self = "--self-test" in argv
    args = [a for a in argv if a != "--self-test"]
    if not args:
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    schemas = args[0]
    oas_path = args[1] if len(args) > 1 else OAS_SCHEMA
    if not os.path.exists(oas_path):
        print(f"openapi_check: SKIP: no {oas_path} (install openapi-specification)")
        return 77
    with open(oas_path) as f:
        oas = json.load(f)
    with open(os.path.join(schemas, "openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    with open(os.path.join(schemas, "http.md")) as f:
        md = f.read()
    problems = check_doc(doc, oas) + check_examples(doc, md)
    if self and not problems:
        problems = self_test(doc, oas, md)
    for p in problems:
        print(f"openapi_check: {p}")
    if problems:
        return 1
    print(f"openapi_check: {schemas}/openapi.yaml is valid OpenAPI {doc['openapi']}"
          f" with {len(doc['paths'])} routes; http.md examples fit it"
          + ("; self-test refused every broken copy" if self else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
