"""Site file loading and validation.

A site file is YAML with one top-level variable, ``multitenant``. Ansible reads it as
group_vars and ``ood-mt build`` reads it here, so the site has one source of truth.

The rules for every key (type, default, one-line description, allowed values) are the
JSON Schema ``site.schema.json`` next to this module; the roles check the same schema
through the filter ``ood_mt_site_problems``. Python adds only what a schema cannot say:
defaults filled in, values that must be literal, and the rules that involve more than one
key (``_cross_checks``). Validation collects every problem (not just the first) and
reports each as ``<file>: <key path>: <what is wrong> (got <value>). Fix: <how>`` so an
admin can mend the file in one pass.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import yaml

from ood_mt.app_templates import builtin_kinds

if TYPE_CHECKING:
    import jsonschema

TOP_KEY = "multitenant"
# Where the deployment puts the public site summary on every host (role ood_mt_keys), and
# where `ood-mt build` writes it inside its output directory.
SITE_JSON_PATH = Path("/etc/ood-mt/site.json")
SITE_JSON_IN_BUILD = Path("etc") / "site.json"
# Format of site.json (public_summary); readers refuse other formats.
SITE_JSON_FORMAT = 3
# The dashboard env (dotenv) variable that switches the initializer on, and the line
# pattern the roles manage it by (an optional `export`, spaces around `=`). Copies in YAML
# and Ruby are pinned to these by tests/build/test_contract_copies.py.
ENABLE_VARIABLE = "MULTITENANT_ENABLE"
ENABLE_LINE_REGEXP = r"^\s*(export\s+)?MULTITENANT_ENABLE\s*="
APP_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a site file."""

    path: str
    message: str
    fix: str
    value: Any = None
    has_value: bool = True

    def render(self, file: str) -> str:
        got = f" (got {self.value!r})" if self.has_value else ""
        return f"{file}: {self.path}: {self.message}{got}. Fix: {self.fix}"


class SiteConfigError(Exception):
    """The site file is unreadable or invalid; ``problems`` lists every issue found."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems
        super().__init__("\n".join(p.render(file) for p in problems))


# The built-in app kinds: the kind choices of each app template's cookiecutter.json, the one
# list of them (ood_mt.app_templates).
SERVICE_APPS = builtin_kinds("service")
CLIENT_APPS = builtin_kinds("client")
DELIVERY_APPS = builtin_kinds("delivery")
# Which delivery app renders a share of each preset on receivers' sessions pages; a preset
# not listed here uses "default".
PRESET_DELIVERY = {"debug": "debug", "document": "readfile"}
DEFAULT_DELIVERY = "default"


def preset_delivery_words() -> str:
    """PRESET_DELIVERY as the service jobs read it (MT_PRESET_DELIVERY: `preset=app ... *=app`)."""
    pairs = [f"{preset}=mt_delivery_{kind}" for preset, kind in sorted(PRESET_DELIVERY.items())]
    return " ".join([*pairs, f"*=mt_delivery_{DEFAULT_DELIVERY}"])

# How long a host program waits for squeue before giving up on that refresh.
SQUEUE_TIMEOUT_SECONDS = 10


# ---------------------------------------------------------------- the schema


@lru_cache(maxsize=1)
def site_schema() -> dict[str, Any]:
    """The site file's JSON Schema (package data ``site.schema.json``)."""
    text = resources.files("ood_mt").joinpath("site.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with its local ``$ref`` merged in (the property's own keywords win)."""
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = site_schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    merged = {**_resolve(target), **node}
    merged.pop("$ref")
    return merged


def _is_int(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # 1.0 and YAML 'yes' are no integers


@lru_cache(maxsize=1)
def validator_class() -> Any:
    """Draft 2020-12, with integers that are ints (imported here: hosts reading site.json need no jsonschema)."""
    import jsonschema

    draft = jsonschema.Draft202012Validator
    return jsonschema.validators.extend(draft, type_checker=draft.TYPE_CHECKER.redefine("integer", _is_int))


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = site_schema()
    validator_class().check_schema(schema)
    return validator_class()(schema, format_checker=jsonschema.FormatChecker(["regex"]))


# ---------------------------------------------------------------- defaults


def _with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """``value`` with every absent (or empty, ``key:``) key set to its default, in schema order.

    Keys the schema does not know are kept (after the known ones) so validation reports them."""
    node = _resolve(schema)
    if value is None:
        if "default" in node:
            return copy.deepcopy(node["default"])
        if node.get("type") == "object":
            value = {}
        else:
            return None
    if node.get("type") == "object" and isinstance(value, dict):
        props = node.get("properties", {})
        out: dict[str, Any] = {}
        for key, sub in props.items():
            filled = _with_defaults(sub, value.get(key))
            if filled is not None:
                out[key] = filled
        out.update({k: copy.deepcopy(v) for k, v in value.items() if k not in props})
        return out
    if node.get("type") == "array" and isinstance(value, list) and "items" in node:
        return [_with_defaults(node["items"], item) for item in value]
    return copy.deepcopy(value)


# ---------------------------------------------------------------- problems


_TYPE_WORDS = {"string": "a string", "integer": "an integer", "boolean": "true or false", "array": "a list",
               "object": "a mapping"}
_TYPE_FIX = {"object": ("must be a mapping of keys", "indent its keys under it"),
             "array": ("must be a list", "write one '- ' entry per item")}


def _dotted(path: Iterator[Any] | Any) -> str:
    out = TOP_KEY
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _fill(template: str, schema: dict[str, Any], value: Any) -> str:
    """A schema's x-message/x-fix with {value}, {lower}, {abs}, {enum}, {minimum}, {maximum} filled."""
    text = value if isinstance(value, str) else ""
    names = {"value": value, "lower": text.lower(), "abs": "/" + text.lstrip("./"),
             "enum": ", ".join(map(str, schema.get("enum", []))),
             "minimum": schema.get("minimum"), "maximum": schema.get("maximum")}
    return template.format_map(names)


def _problem(error: jsonschema.ValidationError) -> list[Problem]:
    """The site-file problem(s) one schema error stands for."""
    where = _dotted(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    kind = error.validator
    if kind == "additionalProperties":
        known = list(schema.get("properties", {}))
        out = []
        for key in value:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"remove it; known keys here: {', '.join(sorted(known))}"
            out.append(Problem(f"{where}.{key}", "unknown key", fix, has_value=False))
        return out
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        out = []
        for key in missing:
            doc = _resolve(schema.get("properties", {}).get(key, {})).get("description")
            out.append(Problem(f"{where}.{key}", "is required",
                               f"add '{key}: ...' ({doc or 'see the example site file'})", has_value=False))
        return out
    if kind == "type":
        want = error.validator_value
        if want in _TYPE_FIX:
            message, fix = _TYPE_FIX[want]
            return [Problem(where, message, fix, value)]
        words = _TYPE_WORDS.get(want, str(want))
        doc = schema.get("description")
        return [Problem(where, f"must be {words}", f"write {words}" + (f" ({doc})" if doc else ""), value)]
    if kind in ("minimum", "maximum") and "x-message" not in schema:
        lo, hi = schema.get("minimum"), schema.get("maximum")
        return [Problem(where, f"must be between {lo} and {hi}", f"choose a value in {lo}..{hi}", value)]
    if "x-message" in schema:
        message = _fill(schema["x-message"], schema, value)
        if error.cause is not None:
            message += f" ({error.cause})"
        return [Problem(where, message, _fill(schema.get("x-fix", "see the example site file"), schema, value),
                        value)]
    return [Problem(where, error.message, "see `ood-mt validate --explain` and the example site file", value)]


def _literal_problems(value: Any, path: list[Any]) -> Iterator[Problem]:
    """Every string of a site file is a literal, one-line value: Ansible would evaluate Jinja,
    `ood-mt build` cannot, and no setting holds a line break."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _literal_problems(sub, [*path, key])
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _literal_problems(sub, [*path, i])
    elif isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield Problem(_dotted(path), "contains a Jinja expression, which `ood-mt build` cannot evaluate",
                          "write the literal value", value)
        elif "\n" in value or "\r" in value:
            yield Problem(_dotted(path), "must be on one line", "remove the line break", value)


def _schema_problems(data: dict[str, Any]) -> list[Problem]:
    """Problems of the defaults-filled ``multitenant`` mapping; one per key path (the first rule it breaks)."""
    problems = list(_literal_problems(data, []))
    seen = {p.path for p in problems}
    for error in _validator().iter_errors(data):
        for problem in _problem(error):
            if problem.path not in seen:
                seen.add(problem.path)
                problems.append(problem)
    return problems


# ---------------------------------------------------------------- rules a schema cannot say


def _audience_problems(data: dict[str, Any]) -> list[Problem]:
    if data["tenant_groups"] or data["tenant_group_pattern"]:
        return []
    return [Problem(f"{TOP_KEY}.tenant_groups", "no audience group is allowed",
                    "list at least one group in tenant_groups or set tenant_group_pattern", has_value=False)]


def _limit_problems(data: dict[str, Any]) -> list[Problem]:
    return [Problem(f"{TOP_KEY}.resources.{name}.default", "is larger than max",
                    f"lower default or raise max ({limits['max']})", limits["default"])
            for name, limits in data["resources"].items() if limits["default"] > limits["max"]]


def _engine_problems(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, engine in enumerate(data["apps"]["database"]["engines"]):
        key = f"{engine['name']}-{engine['version']}"
        if key in seen:
            problems.append(Problem(f"{TOP_KEY}.apps.database.engines[{i}]", "duplicates an earlier engine",
                                    "remove the duplicate", key))
        seen.add(key)
    return problems


def _service_problems(data: dict[str, Any]) -> list[Problem]:
    if any(data["apps"][a]["enabled"] for a in SERVICE_APPS):
        return []
    return [Problem(f"{TOP_KEY}.apps", "no service app is enabled",
                    "set enabled: true on at least one of " + ", ".join(SERVICE_APPS), has_value=False)]


def builtin_app_names() -> tuple[str, ...]:
    """The directory names of every built-in app (enabled or not): no site-local app may take one."""
    return (*(f"mt_{kind}" for kind in (*SERVICE_APPS, *CLIENT_APPS)),
            *(f"mt_delivery_{kind}" for kind in DELIVERY_APPS))


def _local_app_problems(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    builtin = builtin_app_names()
    seen: set[str] = set()
    for i, entry in enumerate(data["local_apps"]):
        name, where = entry["name"], f"{TOP_KEY}.local_apps[{i}].name"
        if name in builtin or name.startswith("mt_delivery_"):
            problems.append(Problem(where, "is the name of a built-in app (the mt_delivery_ names are the "
                                    "kit's card views)", "rename the app directory and this entry "
                                    "(`ood-mt new-app` another NAME); built-in names: " + ", ".join(builtin), name))
        elif name in seen:
            problems.append(Problem(where, "is listed twice", "remove the duplicate entry", name))
        seen.add(name)
    return problems


# (top-level keys a rule reads, the rule): a rule runs once the schema holds for its keys.
_CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[dict[str, Any]], list[Problem]]], ...] = (
    (("tenant_groups", "tenant_group_pattern"), _audience_problems),
    (("resources",), _limit_problems),
    (("apps",), _engine_problems),
    (("apps",), _service_problems),
    (("local_apps",), _local_app_problems),
)


def _under(path: str, keys: tuple[str, ...]) -> bool:
    """Is a problem's key path one of the top-level ``keys`` or inside one of them?"""
    return any(path == f"{TOP_KEY}.{key}" or path.startswith((f"{TOP_KEY}.{key}.", f"{TOP_KEY}.{key}["))
               for key in keys)


def site_problems(value: Any, only: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[Problem]]:
    """The ``multitenant`` mapping with defaults filled, and every problem it has.

    With ``only`` (top-level keys, e.g. ``("keys", "tenant_groups")``), the problems of those
    keys alone: what a role checks of the settings it reads."""
    data = _with_defaults(site_schema(), value)
    if not isinstance(data, dict):
        return {}, [Problem(TOP_KEY, "must be a mapping of keys", "indent its keys under it", value)]
    problems = _schema_problems(data)
    for keys, rule in _CROSS_CHECKS:
        if not any(_under(p.path, keys) for p in problems) and (not only or set(keys) & set(only)):
            problems += rule(data)
    if only:
        problems = [p for p in problems if _under(p.path, only)]
    return data, problems


def site_problem_lines(value: Any, only: tuple[str, ...] = (), file: str = "site file") -> list[str]:
    """``site_problems`` as printed lines, for the roles' filter ``ood_mt_site_problems``."""
    return [p.render(file) for p in site_problems(value, only)[1]]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which YAML would silently collapse."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def inventory_dir(site_file: Path) -> Path:
    """The directory ``local_apps`` paths are relative to: the parent of the ``group_vars``
    directory holding SITE_FILE (``inventories/<site>/`` for
    ``inventories/<site>/group_vars/all/multitenant.yml``, Ansible's inventory_dir); for a site
    file in no ``group_vars`` directory, the site file's own directory."""
    folder = Path(site_file).absolute().parent
    for parent in (folder, *folder.parents):
        if parent.name == "group_vars":
            return parent.parent
    return folder


def local_app_dir(site_file: Path, entry: dict[str, Any]) -> Path:
    """Where a ``local_apps`` ENTRY's app directory is: its ``path`` (default ``apps/<name>``)
    relative to ``inventory_dir(SITE_FILE)``, or as written when absolute."""
    path = Path(entry.get("path") or f"apps/{entry['name']}")
    return path if path.is_absolute() else inventory_dir(site_file) / path


@dataclass(frozen=True)
class LocalApp:
    """One enabled entry of ``local_apps``: its index in the list, name and directory."""

    index: int
    name: str
    source: Path

    @property
    def key(self) -> str:
        """Its key path in the site file, for messages."""
        return f"{TOP_KEY}.local_apps[{self.index}]"


@dataclass(frozen=True)
class SiteConfig:
    """A validated site: ``data`` is the ``multitenant`` mapping with every default filled."""

    path: Path
    data: dict[str, Any]

    @property
    def site(self) -> str:
        return self.data["site"]

    def app(self, name: str) -> dict[str, Any]:
        return self.data["apps"][name]

    def enabled(self, name: str) -> bool:
        return bool(self.data["apps"][name].get("enabled", True))

    def local_apps(self) -> list[LocalApp]:
        """The enabled site-local services (``local_apps``), their directories resolved
        (``local_app_dir``)."""
        return [LocalApp(i, entry["name"], local_app_dir(self.path, entry))
                for i, entry in enumerate(self.data["local_apps"]) if entry["enabled"]]

    def public_summary(self) -> dict[str, Any]:
        """What hosts may know about the site: no secret and no controller path."""
        d = self.data
        return {
            "format": SITE_JSON_FORMAT,
            "site": d["site"],
            "cluster": d["cluster"],
            "wckey": d["wckey"],
            "publisher_group": d["publisher_group"],
            "tenant_groups": list(d["tenant_groups"]),
            "tenant_group_pattern": d["tenant_group_pattern"],
            "key_dir": d["keys"]["dir"],
            "key_version": d["keys"]["current_version"],
            "refresh_seconds": d["refresh_seconds"],
            "discovery_interval_seconds": d["discovery"]["interval_seconds"],
            "spool_dir": d["discovery"]["spool_dir"],
            "card_cluster": d["discovery"]["card_cluster"] or d["cluster"],
            # Derived values: every host program reads these here instead of keeping a copy.
            "squeue": "squeue",
            "squeue_timeout_seconds": SQUEUE_TIMEOUT_SECONDS,
            "delivery_apps": [f"mt_delivery_{kind}" for kind in DELIVERY_APPS],
            "preset_delivery": dict(PRESET_DELIVERY),
        }


def validate(raw: Any, file: str = "<site file>") -> SiteConfig:
    """Validate an already-parsed site document; raise SiteConfigError listing every problem."""
    if not isinstance(raw, dict) or TOP_KEY not in raw:
        raise SiteConfigError(file, [Problem(TOP_KEY, "is missing: the site file holds one top-level "
                                             "variable 'multitenant'", "start the file with 'multitenant:' "
                                             "and indent the settings under it", has_value=False)])
    problems = [Problem(str(key), "unexpected top-level key",
                        "keep other Ansible variables in another group_vars file", has_value=False)
                for key in raw if key != TOP_KEY]
    data, found = site_problems(raw[TOP_KEY])
    problems += found
    if problems:
        raise SiteConfigError(file, problems)
    return SiteConfig(Path(file), data)


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteConfigError(name, [Problem("(file)", "does not exist", "pass --site with the path of "
                                             "inventories/<site>/group_vars/all/multitenant.yml",
                                             has_value=False)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteConfigError(name, [Problem("(file)", f"cannot be read ({exc})",
                                             "check its permissions and encoding (UTF-8)",
                                             has_value=False)]) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(exc, "problem", None) or str(exc)
        raise SiteConfigError(name, [Problem(where, f"is not valid YAML: {reason}",
                                             "correct the YAML syntax there", has_value=False)]) from None
    return validate(raw, name)


def schema_doc() -> list[tuple[str, str, Any]]:
    """(key path, description, default) for every setting, for `ood-mt validate --explain`.

    Mappings are walked into; every other key (lists included) is one row."""
    rows: list[tuple[str, str, Any]] = []

    def walk(node: dict[str, Any], path: str, required: bool) -> None:
        node = _resolve(node)
        if node.get("type") == "object" and "properties" in node:
            for key, sub in node["properties"].items():
                walk(sub, f"{path}.{key}", key in node.get("required", ()))
            return
        rows.append((path, node.get("description", ""), "(required)" if required else node.get("default")))

    walk(site_schema(), TOP_KEY, True)
    return rows


# ---------------------------------------------------------------- cookiecutter answers

# cookiecutter answer -> site key path it is validated as (same rules, same messages)
_ANSWER_PATHS = {
    "cluster": "multitenant.cluster",
    "wckey": "multitenant.wckey",
    "publisher_group": "multitenant.publisher_group",
    "tenant_groups": "multitenant.tenant_groups",
    "tenant_group_pattern": "multitenant.tenant_group_pattern",
    "key_dir": "multitenant.keys.dir",
    "gate_python": "multitenant.gate_python",
    "resources": "multitenant.resources",
}
SERVICE_KINDS = ("custom", *SERVICE_APPS)


def _ints(value: Any) -> Any:
    """cookiecutter renders nested dict values to strings; turn digit strings back into ints."""
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def validate_app_answers(answers: dict[str, Any], file: str = "cookiecutter answers",
                         kinds: Optional[tuple[str, ...]] = SERVICE_KINDS) -> list[str]:
    """Check the answers of cookiecutter-mt-app with the site-file rules; return error lines.
    KINDS: the service kinds allowed; None when cookiecutter has checked service_kind against the
    choices of the template it renders (the template's pre_gen hook)."""
    lines: list[str] = []
    slug = str(answers.get("app_slug", ""))
    if not APP_SLUG_RE.match(slug):
        lines.append(f"{file}: app_slug: is not a valid OOD app directory name (got {slug!r}). Fix: use "
                     "lower-case letters, digits and '_', starting with a letter, e.g. 'mt_my_service'")
    kind = answers.get("service_kind")
    if kinds is not None and kind not in kinds:
        lines.append(f"{file}: service_kind: is not a known service kind (got {kind!r}). "
                     f"Fix: use one of {', '.join(kinds)}")
    groups = answers.get("tenant_groups", "")
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    doc = {
        TOP_KEY: {
            "site": "answers",
            "cluster": answers.get("cluster"),
            "wckey": answers.get("wckey"),
            "publisher_group": answers.get("publisher_group"),
            "tenant_groups": groups,
            "tenant_group_pattern": answers.get("tenant_group_pattern", ""),
            "keys": {"dir": answers.get("key_dir"), "master_secret_file": "~/unused"},
            "resources": _ints(answers.get("resources")),
            "gate_python": answers.get("gate_python", "/opt/ood-mt/venv/bin/python"),
        }
    }
    try:
        validate(doc, file)
    except SiteConfigError as exc:
        reverse = {v: k for k, v in _ANSWER_PATHS.items()}
        for problem in exc.problems:
            path = problem.path
            for site_path, answer in reverse.items():
                if path == site_path or path.startswith(site_path + ".") or path.startswith(site_path + "["):
                    path = answer + path[len(site_path):]
                    break
            lines.append(Problem(path, problem.message, problem.fix, problem.value, problem.has_value)
                         .render(file))
    return lines
