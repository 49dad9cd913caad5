"""JSON Schema -> grammar (structured output): every sentence the grammar of a
schema can generate must be valid JSON that validates against the schema.

The oracle is Python's `jsonschema` (Debian python3-jsonschema), with format
checking on; formats it cannot check without optional packages (time,
date-time, hostname, uri) get checkers written here from RFC 3339 / RFC 1123 /
RFC 3986. Sentences come from volga-grammar-sample (random walks over the
grammar engine's next_bytes()), so the converter and the engine are tested
together.

  - many random schemas (seeded) mixing every supported keyword, nested;
  - real-world schemas: OpenAI structured-output examples, pydantic output
    with $defs/$ref/allOf/anyOf-null/discriminated unions, unicode enums;
  - unsupported schemas: the tool exits 2 with a message naming the keyword.

Run with Debian's /usr/bin/python3 -m unittest test_json_schema (from tests/e2e);
binary from VOLGA_GRAMMAR_SAMPLE (default build/bin/volga-grammar-sample).
Seed with VOLGA_SCHEMA_SEED, count with VOLGA_SCHEMA_COUNT."""
import datetime
import json
import math
import os
import random
import re
import subprocess
import tempfile
import unittest

import jsonschema

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SAMPLE = os.environ.get("VOLGA_GRAMMAR_SAMPLE", os.path.join(ROOT, "build", "bin", "volga-grammar-sample"))
SEED = int(os.environ.get("VOLGA_SCHEMA_SEED", "20240611"))
COUNT = int(os.environ.get("VOLGA_SCHEMA_COUNT", "1000"))
TMP = tempfile.mkdtemp(prefix="volga-schema-")

# ---- format checkers (independent of the converter) ---------------------------------

_TIME = r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))"


def _valid_time(m):
    hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if hh > 23 or mm > 59 or ss > 60:
        return False
    if m.group(5) not in ("Z", "z") and (int(m.group(6)) > 23 or int(m.group(7)) > 59):
        return False
    return True


def check_time(s):
    m = re.fullmatch(_TIME, s)
    return bool(m) and _valid_time(m)


def check_date_time(s):
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})[Tt]" + _TIME, s)
    if not m:
        return False
    try:
        datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return False
    return _valid_time(re.fullmatch(_TIME, s[11:]))


def check_date(s):
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        return False
    try:
        datetime.date(int(s[:4]), int(s[5:7]), int(s[8:]))
    except ValueError:
        return False
    return True


def check_hostname(s):
    if len(s) > 253 or not s:
        return False
    return all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in s.split("."))


_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:"
    r"(?://(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*@)?"
    r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::\d*)?"
    r"(?:/" + _PCHAR + r"*)*|/?(?:" + _PCHAR + r"+(?:/" + _PCHAR + r"*)*)?)"
    r"(?:\?(?:" + _PCHAR + r"|[/?])*)?(?:#(?:" + _PCHAR + r"|[/?])*)?")


def check_uri(s):
    return bool(_URI.fullmatch(s))


def check_uuid(s):
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", s))


def check_ipv4(s):
    parts = s.split(".")
    return len(parts) == 4 and all(re.fullmatch(r"0|[1-9]\d{0,2}", p) and int(p) <= 255 for p in parts)


def check_email(s):
    local, at, domain = s.rpartition("@")
    return bool(at) and bool(re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*", local)) \
        and check_hostname(domain)


def format_checker():
    """jsonschema's own checkers where it has them, and ours, both must pass."""
    builtin = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker()
    ours = {"time": check_time, "date-time": check_date_time, "date": check_date, "hostname": check_hostname,
            "uri": check_uri, "uuid": check_uuid, "ipv4": check_ipv4, "email": check_email}
    for name, fn in ours.items():
        def both(instance, fn=fn, name=name):
            if not isinstance(instance, str):
                return True
            if name in builtin.checkers and not builtin.conforms(instance, name):
                return False
            return fn(instance)
        checker.checks(name)(both)
    return checker


FORMAT_CHECKER = format_checker()

# ---- oracle schema ---------------------------------------------------------------------

SUBSCHEMA_KEYS = ("items", "additionalProperties", "additionalItems", "not")
SUBSCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
SUBSCHEMA_MAP_KEYS = ("properties", "$defs", "definitions")


def oracle_schema(s):
    """`nullable: true` (OpenAPI 3.0, which the converter honours) as JSON Schema."""
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k in SUBSCHEMA_KEYS or (k == "items" and isinstance(v, dict)):
            out[k] = oracle_schema(v)
        elif k in SUBSCHEMA_LIST_KEYS or (k == "items" and isinstance(v, list)):
            out[k] = [oracle_schema(x) for x in v]
        elif k in SUBSCHEMA_MAP_KEYS:
            out[k] = {n: oracle_schema(x) for n, x in v.items()}
        elif k != "nullable":
            out[k] = v
    if s.get("nullable") is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = types + (["null"] if "null" not in types else [])
    if "items" in s and isinstance(s["items"], list):
        out["items"] = [oracle_schema(x) for x in s["items"]]
    return out


def reject_constant(name):
    raise ValueError("non-JSON constant " + name)


def run_sample(schema, n=20, seed=1, max_bytes=6000):
    path = os.path.join(TMP, "schema-%d.json" % random.getrandbits(48))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(schema, f, ensure_ascii=False)
    proc = subprocess.run([SAMPLE, "--schema", path, "-n", str(n), "--seed", str(seed), "--max-bytes", str(max_bytes)],
                          capture_output=True, timeout=120)
    os.unlink(path)
    return proc


class Oracle:
    def __init__(self, test):
        self.test = test
        self.schemas = 0
        self.sentences = 0

    def check(self, schema, n=20, seed=1, label=""):
        return self.validate_output(schema, run_sample(schema, n=n, seed=seed), label)

    def validate_output(self, schema, proc, label):
        stderr = proc.stderr.decode("utf-8", "replace")
        self.test.assertEqual(proc.returncode, 0, "%s\nschema: %s\n%s" % (label, json.dumps(schema, ensure_ascii=False),
                                                                          stderr))
        sentences = [json.loads(line) for line in proc.stdout.decode("utf-8").split("\n") if line]
        self.test.assertTrue(sentences, "%s: no complete walk\nschema: %s\n%s" % (label, json.dumps(schema), stderr))
        oracle = oracle_schema(schema)
        cls = jsonschema.validators.validator_for(oracle, default=jsonschema.Draft202012Validator)
        validator = cls(oracle, format_checker=FORMAT_CHECKER)
        for text in sentences:
            try:
                value = json.loads(text, parse_constant=reject_constant)
            except ValueError as e:
                self.test.fail("%s: not JSON: %r (%s)\nschema: %s" % (label, text, e, json.dumps(schema, ensure_ascii=False)))
            errors = list(validator.iter_errors(value))
            if errors:
                self.test.fail("%s: sentence %r does not validate: %s\nschema: %s" % (
                    label, text, errors[0].message, json.dumps(schema, ensure_ascii=False)))
        self.schemas += 1
        self.sentences += len(sentences)
        return sentences


# ---- random schemas ------------------------------------------------------------------

NAMES = ["id", "name", "x_y", "with space", 'quo"te', "back\\slash", "Имя", "名字", "emoji🙂", "tab\tkey",
         "slash/key", "tilde~key", "a", "b", "c", "count", "items", "type", "$ref", "ünïcödé"]
STRINGS = ["", "plain", "Привет", "你好", 'say "hi"', "back\\slash", "line\nbreak", "tab\t", "\u0001ctl", "🙂",
           "\u2028sep", "ok", "Москва", "北京"]
# (pattern, lengths that combine with it: (min, max) choices)
PATTERNS = [
    "^[a-z]+$", r"^\d{3}-\d{4}$", "ab", "^(foo|bar)+$", "[А-Яа-я]+", "^[^,]*$", r"\w+@\w+\.com", r"^\S+$",
    "^.{2,5}$", "x|y$", '^"[^"]*"$', r"^\\d$", "^[\u4e00-\u9fff]{1,4}$", "^(?:[0-9a-f]{2}:){2}[0-9a-f]{2}$",
    r"^\D\W\s?$", r"[^\d\s]", r"^[A-Z][a-z]*( [A-Z][a-z]*)*$", r"^\+?[0-9]{7,15}$", r"^\d{5}(-\d{4})?$",
    "^[a-z0-9]+(?:-[a-z0-9]+)*$", r"^\u00e9+\t\x41$", "^(a|bc|def)*$", r"^[\]\-\\^]+$", r"^a{2}b{0,3}c*$",
    "^(\U0001F600|\u00a9)+$", "^$", "", "^[^\"\\\\]{3}$", "^.*$", r"\.", "^[.]+$", r"^(?:\s|\S){1,3}$",
]
FORMATS = ["date", "time", "date-time", "uuid", "email", "uri", "ipv4", "hostname"]
DEC_BOUNDS = [0, 1, -1, 0.5, -0.5, 0.1, 2.75, -3.25, 10, 100, -100, 1e-3, 123.456, 1e6, -1e6, 999, 0.01, 7]


class SchemaGen:
    def __init__(self, rng):
        self.rng = rng
        self.defs = {}

    def pick(self, xs):
        return self.rng.choice(xs)

    def chance(self, p):
        return self.rng.random() < p

    def annotate(self, s):
        if self.chance(0.2):
            s["description"] = self.pick(["Описание", "描述", "a value", ""])
        if self.chance(0.1):
            s["title"] = "T"
        return s

    def string(self):
        s = {"type": "string"}
        r = self.rng.random()
        if r < 0.25:
            s["format"] = self.pick(FORMATS)
        elif r < 0.55:
            s["pattern"] = self.pick(PATTERNS)
            if self.chance(0.3):
                s["maxLength"] = self.rng.randint(4, 40)
            if self.chance(0.2):
                s["minLength"] = self.rng.randint(0, 3)
        else:
            if self.chance(0.5):
                s["minLength"] = self.rng.randint(0, 5)
            if self.chance(0.5):
                s["maxLength"] = s.get("minLength", 0) + self.rng.randint(0, 40)
            if self.chance(0.05):
                s["maxLength"] = 10000
        return s

    def integer(self):
        s = {"type": "integer"}
        lo = hi = None
        if self.chance(0.6):
            lo = self.pick([self.rng.randint(-2000, 2000), self.pick(DEC_BOUNDS), -10**14, 0])
            s["exclusiveMinimum" if self.chance(0.3) else "minimum"] = lo
        if self.chance(0.6):
            hi = self.pick([self.rng.randint(-2000, 5000), self.pick(DEC_BOUNDS), 10**14])
            if lo is not None and hi < lo + 2:
                hi = math.floor(lo) + self.rng.randint(2, 5000)
            s["exclusiveMaximum" if self.chance(0.3) else "maximum"] = hi
        if self.chance(0.1):
            s["format"] = self.pick(["int32", "int64"])
        return s

    def number(self):
        s = {"type": "number"}
        lo = None
        if self.chance(0.6):
            lo = self.pick(DEC_BOUNDS + [self.rng.randint(-50, 50)])
            s["exclusiveMinimum" if self.chance(0.4) else "minimum"] = lo
        if self.chance(0.6):
            hi = self.pick(DEC_BOUNDS + [self.rng.randint(-50, 50)])
            if lo is not None and hi <= lo:
                hi = lo + self.pick([0.001, 0.5, 1, 10, 1000])
            s["exclusiveMaximum" if self.chance(0.4) else "maximum"] = hi
        return s

    def enum(self):
        pool = STRINGS + [0, 1, -7, 2.5, 1e20, True, False, None, {"k": [1, "v"]}, [1, 2], "Ёж", "日本"]
        values = []
        for _ in range(self.rng.randint(1, 5)):
            v = self.pick(pool)
            if v not in values:
                values.append(v)
        if len(values) == 1 and self.chance(0.5):
            return {"const": values[0]}
        s = {"enum": values}
        if self.chance(0.3) and all(isinstance(v, str) for v in values):
            s["type"] = "string"
        return s

    def obj(self, depth):
        s = {"type": "object"}
        if self.chance(0.15):  # free-form
            if self.chance(0.6):
                s["additionalProperties"] = self.schema(depth + 1)
            if self.chance(0.3):
                s["maxProperties"] = self.rng.randint(0, 3)
            if self.chance(0.2):
                s["minProperties"] = 1
                s["maxProperties"] = max(s.get("maxProperties", 1), 1)
            return s
        names = self.rng.sample(NAMES, self.rng.randint(1, 4))
        s["properties"] = {n: self.schema(depth + 1) for n in names}
        required = [n for n in names if self.chance(0.5)]
        if required:
            s["required"] = required
        r = self.rng.random()
        if r < 0.4:
            s["additionalProperties"] = False
        elif r < 0.5:
            s["additionalProperties"] = True
        elif r < 0.6:
            s["additionalProperties"] = self.schema(depth + 1)
        if self.chance(0.1):
            s["minProperties"] = len(required)
        if self.chance(0.1):
            s["maxProperties"] = len(required) + self.rng.randint(0, 2)
        return s

    def array(self, depth):
        s = {"type": "array"}
        if self.chance(0.3):
            s["prefixItems"] = [self.schema(depth + 1) for _ in range(self.rng.randint(1, 3))]
            if self.chance(0.4):
                s["items"] = False
            elif self.chance(0.5):
                s["items"] = self.schema(depth + 1)
        elif self.chance(0.85):
            s["items"] = self.schema(depth + 1)
        k = len(s.get("prefixItems", []))
        cap = k if s.get("items") is False else 6
        if self.chance(0.4):
            s["minItems"] = self.rng.randint(0, min(cap, 3))
        if self.chance(0.4):
            s["maxItems"] = self.rng.randint(s.get("minItems", 0), cap)
        if self.chance(0.05):
            s["maxItems"] = 1
            s["minItems"] = min(s.get("minItems", 0), 1)
            s["uniqueItems"] = True
        return s

    def one_of(self, depth):
        if self.chance(0.5):  # by type
            kinds = self.rng.sample(["string", "boolean", "null", "array", "object", "integer"], self.rng.randint(2, 3))
            return {"oneOf": [self.typed(t, depth + 1) for t in kinds]}
        branches = []
        for tag in self.rng.sample(["cat", "dog", "кот", "鱼"], self.rng.randint(2, 3)):
            b = self.obj(depth + 1)
            b.setdefault("properties", {})
            b["properties"] = {"kind": {"const": tag}, **b["properties"]}
            b["required"] = ["kind"] + [r for r in b.get("required", []) if r != "kind"]
            b.pop("minProperties", None)
            b.pop("maxProperties", None)
            if "additionalProperties" in b and not b.get("properties"):
                b.pop("additionalProperties")
            branches.append(b)
        return {"oneOf": branches}

    def all_of(self, depth):
        a, b = self.obj(depth + 1), self.obj(depth + 1)
        if "properties" in b:  # names apart from a's: same-named properties would merge two random schemas
            b["properties"] = {n + "2": v for n, v in b["properties"].items()}
            if "required" in b:
                b["required"] = [n + "2" for n in b["required"]]
        for part in (a, b):
            part.pop("additionalProperties", None)
            part.pop("minProperties", None)
            part.pop("maxProperties", None)
            part.setdefault("properties", {"p": {"type": "integer"}})
        if self.chance(0.3):
            b["additionalProperties"] = False
            for n in a.get("required", []):
                b["properties"].setdefault(n, {})
        return {"allOf": [a, b]}

    def typed(self, t, depth):
        if t == "string":
            return self.string()
        if t == "integer":
            return self.integer()
        if t == "number":
            return self.number()
        if t == "boolean":
            return {"type": "boolean"}
        if t == "null":
            return {"type": "null"}
        if t == "object":
            return self.obj(depth)
        return self.array(depth)

    def schema(self, depth=0):
        leaf = depth >= 3
        r = self.rng.random()
        if leaf or r < 0.45:
            s = self.typed(self.pick(["string", "integer", "number", "boolean", "null", "string", "integer"]), depth)
        elif r < 0.55:
            s = self.enum()
        elif r < 0.65:
            s = self.obj(depth)
        elif r < 0.72:
            s = self.array(depth)
        elif r < 0.78:
            s = {"anyOf": [self.schema(depth + 1) for _ in range(self.rng.randint(2, 3))]}
        elif r < 0.83:
            s = self.one_of(depth)
        elif r < 0.87:
            s = self.all_of(depth)
        elif r < 0.92:  # a definition used by $ref, sometimes recursive
            name = "Def%d" % len(self.defs)
            ref = {"$ref": "#/$defs/" + name}
            self.defs[name] = {}  # the name is taken before the body is made
            if self.chance(0.25):
                self.defs[name] = self.pick([
                    {"type": "object", "properties": {"v": self.schema(3), "next": ref}, "required": ["v"]},
                    {"type": "array", "items": ref, "maxItems": 2},
                    {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"kid": ref}, "required": ["kid"]}]}])
            else:
                self.defs[name] = self.schema(depth + 1)
            s = ref
            if self.chance(0.3):
                s = {"allOf": [s], "description": "wrapped"}
        elif r < 0.96:  # type list / nullable
            if self.chance(0.5):
                s = self.typed(self.pick(["string", "integer", "number", "object", "array"]), depth)
                s["nullable"] = True
            else:
                a = self.typed(self.pick(["string", "integer"]), depth)
                b = self.typed(self.pick(["boolean", "null", "number"]), depth)
                s = {**a, "type": [a["type"], b["type"]]}  # a's keywords apply to its type (bounds: to both numbers)
        elif r < 0.98:
            s = {}
        else:
            s = {"type": "object"}  # what response_format json_object asks for
        return self.annotate(s)

    def document(self):
        s = self.schema(0)
        if self.defs:
            s = dict(s) if isinstance(s, dict) else s
            s["$defs"] = self.defs
        return s


# ---- real-world schemas ----------------------------------------------------------------

REAL_WORLD = {
    "openai-math-reasoning": {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {
                "type": "object",
                "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                "required": ["explanation", "output"], "additionalProperties": False}},
            "final_answer": {"type": "string"}},
        "required": ["steps", "final_answer"], "additionalProperties": False},
    "openai-ui-recursive": {
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "The type of the UI component",
                     "enum": ["div", "button", "header", "section", "field", "form"]},
            "label": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
            "attributes": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                "required": ["name", "value"], "additionalProperties": False}}},
        "required": ["type", "label", "children", "attributes"], "additionalProperties": False},
    "openai-linked-list": {
        "type": "object",
        "properties": {"linked_list": {"$ref": "#/$defs/linked_list_node"}},
        "$defs": {"linked_list_node": {
            "type": "object",
            "properties": {"value": {"type": "number"},
                           "next": {"anyOf": [{"$ref": "#/$defs/linked_list_node"}, {"type": "null"}]}},
            "additionalProperties": False, "required": ["next", "value"]}},
        "additionalProperties": False, "required": ["linked_list"]},
    "openai-moderation": {
        "type": "object",
        "properties": {
            "is_violating": {"type": "boolean"},
            "category": {"type": ["string", "null"], "enum": ["violence", "sexual", "self_harm", None]},
            "explanation_if_violating": {"type": ["string", "null"]}},
        "required": ["is_violating", "category", "explanation_if_violating"], "additionalProperties": False},
    "openai-research-paper": {
        "type": "object",
        "properties": {"title": {"type": "string"}, "authors": {"type": "array", "items": {"type": "string"}},
                       "abstract": {"type": "string"}, "keywords": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "authors", "abstract", "keywords"], "additionalProperties": False},
    "function-get-weather": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"},
                       "units": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit"]}},
        "required": ["location", "units"], "additionalProperties": False, "strict": True},
    "pydantic-person": {
        "$defs": {
            "Address": {"properties": {"street": {"title": "Street", "type": "string"},
                                       "zip": {"pattern": r"^\d{5}(-\d{4})?$", "title": "Zip", "type": "string"},
                                       "country": {"default": "RU", "maxLength": 2, "minLength": 2, "type": "string"}},
                        "required": ["street", "zip"], "title": "Address", "type": "object"},
            "Color": {"enum": ["red", "green", "blue"], "title": "Color", "type": "string"}},
        "properties": {
            "name": {"title": "Name", "type": "string", "minLength": 1},
            "age": {"exclusiveMinimum": 0, "maximum": 150, "title": "Age", "type": "integer"},
            "address": {"$ref": "#/$defs/Address"},
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Nickname"},
            "favorite": {"allOf": [{"$ref": "#/$defs/Color"}], "default": "red"},
            "height_m": {"anyOf": [{"type": "number", "minimum": 0.3, "maximum": 2.8}, {"type": "null"}]},
            "tags": {"items": {"type": "string"}, "title": "Tags", "type": "array", "maxItems": 5}},
        "required": ["name", "age", "address"], "title": "Person", "type": "object"},
    "pydantic-discriminated-union": {
        "$defs": {
            "Cat": {"properties": {"pet_type": {"const": "cat", "title": "Pet Type", "type": "string"},
                                   "meows": {"title": "Meows", "type": "integer", "minimum": 0}},
                    "required": ["pet_type", "meows"], "title": "Cat", "type": "object"},
            "Dog": {"properties": {"pet_type": {"const": "dog", "title": "Pet Type", "type": "string"},
                                   "barks": {"title": "Barks", "type": "number"}},
                    "required": ["pet_type", "barks"], "title": "Dog", "type": "object"},
            "Lizard": {"properties": {"pet_type": {"enum": ["reptile", "lizard"], "type": "string"},
                                      "scales": {"type": "boolean"}},
                       "required": ["pet_type", "scales"], "type": "object"}},
        "properties": {
            "pet": {"discriminator": {"mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"},
                                      "propertyName": "pet_type"},
                    "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}, {"$ref": "#/$defs/Lizard"}],
                    "title": "Pet"},
            "n": {"title": "N", "type": "integer"}},
        "required": ["pet", "n"], "title": "Model", "type": "object"},
    "pydantic-inheritance-allof": {
        "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
                                                            "created": {"type": "string", "format": "date-time"}},
                           "required": ["id"]}},
        "allOf": [{"$ref": "#/$defs/Base"},
                  {"type": "object", "properties": {"title": {"type": "string", "maxLength": 80}},
                   "required": ["title"]}]},
    "unicode-enums": {
        "type": "object",
        "properties": {
            "город": {"type": "string", "enum": ["Москва", "Санкт-Петербург", "Нижний Новгород", "Казань"]},
            "城市": {"enum": ["北京", "上海", "深圳", "香港"]},
            "mood": {"const": "🙂"},
            "mixed": {"enum": ["Ёлка", "苹果", "naïve", 'quote"d', "back\\slash", "new\nline", 42, None]}},
        "required": ["город", "城市", "mood"], "additionalProperties": False},
    "openapi-nullable": {
        "type": "object",
        "properties": {"count": {"type": "integer", "nullable": True, "minimum": 1},
                       "note": {"type": "string", "nullable": True, "maxLength": 20},
                       "ratio": {"type": "number", "format": "double", "minimum": 0, "maximum": 1}},
        "required": ["count", "note", "ratio"]},
    "event-formats": {
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"}, "when": {"type": "string", "format": "date-time"},
                       "day": {"type": "string", "format": "date"}, "at": {"type": "string", "format": "time"},
                       "email": {"type": "string", "format": "email", "maxLength": 254},
                       "site": {"type": "string", "format": "uri", "maxLength": 2083},
                       "ip": {"type": "string", "format": "ipv4"}, "host": {"type": "string", "format": "hostname"}},
        "required": ["id", "when", "day", "at", "email", "site", "ip", "host"]},
    "prices-and-ranges": {
        "type": "object",
        "properties": {"price": {"type": "number", "minimum": 0.01, "exclusiveMaximum": 1000000},
                       "discount": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
                       "celsius": {"type": "number", "minimum": -273.15, "maximum": 1e4},
                       "percent": {"type": "integer", "minimum": 0, "maximum": 100},
                       "offset": {"type": "integer", "minimum": -12, "maximum": -1},
                       "big": {"type": "integer", "minimum": 1000000000000}},
        "required": ["price", "discount", "celsius", "percent", "offset", "big"]},
    "draft07-tuple": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"point": {"type": "array", "items": [{"type": "number"}, {"type": "number"}],
                                  "additionalItems": False, "minItems": 2}},
        "type": "object",
        "properties": {"path": {"type": "array", "items": {"$ref": "#/definitions/point"}, "minItems": 1},
                       "label": {"type": "string", "pattern": "^[A-Z]{2,4}-\\d+$"}},
        "required": ["path", "label"]},
    "dictionary": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    "json-object-mode": {"type": "object"},
    "any-value": {},
    "patterns": {
        "type": "object",
        "properties": {"phone": {"type": "string", "pattern": r"^\+?[0-9]{7,15}$"},
                       "slug": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$", "maxLength": 24},
                       "code": {"type": "string", "pattern": "[A-Z]{3}", "minLength": 5, "maxLength": 8},
                       "cyr": {"type": "string", "pattern": "^[А-ЯЁ][а-яё]+$"},
                       "long": {"type": "string", "maxLength": 10000},
                       "quoted": {"type": "string", "pattern": '^[^"\\\\]*"[a-z]+"$'}},
        "required": ["phone", "slug", "code", "cyr", "quoted"]},
    "tuple-2020": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}],
                   "items": False, "minItems": 2},
}

UNSUPPORTED = [
    ({"type": "integer", "multipleOf": 3}, "multipleOf"),
    ({"type": "object", "properties": {"x": {"type": "number", "multipleOf": 0.5}}}, "multipleOf"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
    ({"type": "object", "patternProperties": {"^x": {"type": "string"}}}, "patternProperties"),
    ({"type": "object", "propertyNames": {"maxLength": 3}}, "propertyNames"),
    ({"type": "object", "properties": {"a": {}}, "minProperties": 1}, "minProperties"),
    ({"type": "array", "contains": {"type": "integer"}}, "contains"),
    ({"not": {"type": "string"}}, "not"),
    ({"if": {"type": "string"}, "then": {"minLength": 2}}, "if"),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
    ({"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}}, "dependentSchemas"),
    ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties"),
    ({"type": "array", "unevaluatedItems": False}, "unevaluatedItems"),
    ({"$ref": "https://example.com/schema.json"}, "$ref"),
    ({"$ref": "#/$defs/missing"}, "$ref"),
    ({"type": "string", "format": "ipv6"}, "format"),
    ({"type": "string", "fancyKeyword": 1}, "fancyKeyword"),
    ({"type": "string", "pattern": "(?=a)b"}, "pattern"),
    ({"type": "string", "pattern": r"(a)\1"}, "pattern"),
    ({"type": "string", "pattern": r"\bword"}, "pattern"),
    ({"type": "string", "pattern": "^a$b"}, "pattern"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "oneOf"),
    ({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}, "oneOf"),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "minimum"),
    ({"type": "number", "exclusiveMinimum": True, "minimum": 1}, "exclusiveMinimum"),
    ({"type": "object", "properties": {"a": {"$ref": "#/properties/a"}}, "required": ["a"]}, "$ref"),
    ({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}, "required"),
]


class JsonSchemaGrammar(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(SAMPLE):
            raise unittest.SkipTest("no volga-grammar-sample at %s (set VOLGA_GRAMMAR_SAMPLE)" % SAMPLE)

    def test_random_schemas(self):
        rng = random.Random(SEED)
        oracle = Oracle(self)
        refused = []
        for i in range(COUNT):
            gen = SchemaGen(rng)
            schema = gen.document()
            proc = run_sample(schema, n=12, seed=i)
            if proc.returncode == 2:
                message = proc.stderr.decode("utf-8", "replace")
                # The one refusal a generated schema may meet: a pattern whose
                # matches the length split cannot fit.
                self.assertIn("cannot be combined with these minLength/maxLength", message,
                              "schema %d refused: %s\n%s" % (i, json.dumps(schema, ensure_ascii=False), message))
                refused.append(i)
                continue
            oracle.validate_output(schema, proc, "random schema %d" % i)
        print("\nrandom schemas: %d converted and validated (%d sentences), %d refused for pattern+length"
              % (oracle.schemas, oracle.sentences, len(refused)))
        self.assertLess(len(refused), COUNT // 20)

    def test_real_world_schemas(self):
        oracle = Oracle(self)
        for name, schema in REAL_WORLD.items():
            with self.subTest(schema=name):
                oracle.check(schema, n=40, seed=7, label=name)
        print("\nreal-world schemas: %d, %d sentences validated" % (oracle.schemas, oracle.sentences))

    def test_unicode_enum_values_are_generated(self):
        sentences = Oracle(self).check(REAL_WORLD["unicode-enums"], n=60, seed=3)
        cities = {json.loads(s)["город"] for s in sentences}
        self.assertTrue(cities <= {"Москва", "Санкт-Петербург", "Нижний Новгород", "Казань"})
        self.assertGreater(len(cities), 1)

    def test_oracle_catches_a_wrong_grammar(self):
        # The same checks on a hand-written grammar that breaks the schema
        # must fail: the oracle is not vacuous.
        path = os.path.join(TMP, "wrong.gbnf")
        with open(path, "w") as f:
            f.write('root ::= "{\\"a\\":" [0-9] "}"\n')
        proc = subprocess.run([SAMPLE, "--grammar", path, "-n", "30"], capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        schema = {"type": "object", "properties": {"a": {"type": "integer", "maximum": 4}}}
        with self.assertRaises(AssertionError):
            Oracle(self).validate_output(schema, proc, "wrong grammar")

    def test_unsupported_schemas_are_refused_naming_the_keyword(self):
        for schema, keyword in UNSUPPORTED:
            with self.subTest(keyword=keyword, schema=schema):
                proc = run_sample(schema, n=1)
                message = proc.stderr.decode("utf-8", "replace")
                self.assertEqual(proc.returncode, 2, message)
                self.assertIn(keyword, message)


if __name__ == "__main__":
    unittest.main()


VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
DEMO = os.path.join(ROOT, "models", "volga-demo-q8_0.gguf")


class CliConstrainedRun(unittest.TestCase):
    """`volga run --json-schema FILE` / `--grammar FILE` on the trained demo model (its
    byte-level vocabulary can spell any text): the output follows the constraint, and
    a bad schema or grammar is an error naming the problem, with a non-zero exit."""

    def run_volga(self, *args):
        return subprocess.run([VOLGA, "run", DEMO, "-t", "2", *args], capture_output=True, timeout=300)

    def write(self, name, text):
        path = os.path.join(TMP, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_json_schema_output_validates(self):
        schema = {"type": "object", "properties": {
            "city": {"enum": ["Москва", "北京", "Paris"]},
            "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3}},
            "required": ["city", "year", "tags"]}
        path = self.write("cli.schema.json", json.dumps(schema, ensure_ascii=False))
        for seed in ("1", "2", "3"):
            p = self.run_volga("-p", "Weather report:", "-n", "120", "--seed", seed, "--json-schema", path, "--json")
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            out = json.loads(p.stdout)
            self.assertTrue(out["stopped"], "the grammar did not finish within 120 tokens: %r" % out["text"])
            jsonschema.validate(json.loads(out["text"]), schema)

    def test_grammar_output_matches(self):
        path = self.write("yn.gbnf", 'root ::= ("да" | "нет" | "yes" | "no") "!"?\n')
        for seed in ("1", "2", "3", "4"):
            p = self.run_volga("-p", "Answer:", "-n", "10", "--temperature", "1.5", "--seed", seed, "--grammar", path)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            self.assertRegex(p.stdout.decode(), r"^(да|нет|yes|no)!?$")

    def test_bad_constraints_are_errors(self):
        bad_schema = self.write("bad.schema.json", '{"type": "number", "multipleOf": 3}')
        p = self.run_volga("-p", "x", "-n", "4", "--json-schema", bad_schema)
        self.assertEqual(p.returncode, 1)
        self.assertIn("multipleOf", p.stderr.decode())
        bad_grammar = self.write("bad.gbnf", 'root ::= item\n')
        p = self.run_volga("-p", "x", "-n", "4", "--grammar", bad_grammar)
        self.assertEqual(p.returncode, 1)
        self.assertIn("'item' is used but never defined", p.stderr.decode())
        empty = self.write("empty.gbnf", 'root ::= root\n')
        p = self.run_volga("-p", "x", "-n", "4", "--grammar", empty)
        self.assertEqual(p.returncode, 1)
        self.assertIn("matches no text", p.stderr.decode())
