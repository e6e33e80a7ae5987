"""Site file loading and validation.

A site file is YAML with one top-level variable, ``multitenant``. Ansible reads it as
group_vars and ``ood-mt build`` reads it here, so the site has one source of truth.

The schema below IS the documentation of every key: its type, default and the rule it
must follow. Validation collects every problem (not just the first) and reports each as
``<file>: <key path>: <what is wrong> (got <value>). Fix: <how>`` so an admin can mend
the file in one pass.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from ood_mt.app_templates import builtin_kinds

TOP_KEY = "multitenant"

# Slurm lower-cases WCKeys at submit time and rejects a leading '*'; '|' and ',' break
# sacct/sacctmgr list parsing. The kit accepts only values Slurm stores unchanged.
WCKEY_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,63}$")
# POSIX-portable group/user names (shadow-utils accepts these everywhere). ':' is never
# allowed: it separates fields of the share token.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
SITE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
APP_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
MODULE_RE = re.compile(r"^[A-Za-z0-9_.+/-]+$")
ENGINES = ("postgresql", "mariadb", "mysql")


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


Check = Callable[[Any], Optional[tuple[str, str]]]


@dataclass(frozen=True)
class Field:
    """A leaf value: its Python type(s), default and an optional rule."""

    types: tuple[type, ...]
    default: Any = None
    required: bool = False
    check: Optional[Check] = None
    item_check: Optional[Check] = None  # for lists: rule applied to each item
    doc: str = ""


@dataclass(frozen=True)
class Mapping:
    """A nested mapping with a fixed set of keys."""

    fields: dict[str, Any]
    doc: str = ""


@dataclass(frozen=True)
class ListOf:
    """A list whose items are mappings of one schema."""

    item: Mapping
    default: list = field(default_factory=list)
    min_items: int = 0
    doc: str = ""


# ---------------------------------------------------------------- rules


def _wckey(value: str) -> Optional[tuple[str, str]]:
    if not value:
        return "must not be empty", "use the default 'multitenant'"
    if value != value.lower():
        return (
            "Slurm lower-cases WCKeys at submit, so jobs would not match",
            f"write it in lower case: '{value.lower()}'",
        )
    if value.startswith("*"):
        return "Slurm rejects a WCKey that starts with '*'", "drop the leading '*'"
    if len(value) > 64:
        return "is longer than 64 characters", "use a shorter WCKey such as 'multitenant'"
    if not WCKEY_RE.match(value):
        return (
            "contains characters Slurm or sacct parsing would alter (whitespace, ',', '|', ...)",
            "use only lower-case letters, digits, '_', '.', '-'",
        )
    return None


def _name(kind: str) -> Check:
    def check(value: str) -> Optional[tuple[str, str]]:
        if not NAME_RE.match(value or ""):
            return (
                f"is not a valid POSIX {kind} name",
                f"use 1-32 characters: a letter or '_' first, then letters, digits, '_', '.', '-' "
                f"(no ':' or spaces), e.g. 'mt{kind}'",
            )
        return None

    return check


def _regex(pattern: str, what: str, example: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: str) -> Optional[tuple[str, str]]:
        if not compiled.match(value or ""):
            return f"is not a valid {what}", f"use something like '{example}'"
        return None

    return check


def _abs_path(value: str) -> Optional[tuple[str, str]]:
    if not value.startswith("/"):
        return "must be an absolute path", f"write the full path, e.g. '/{value.lstrip('./')}'"
    if "{{" in value or "{%" in value:
        return "contains a Jinja expression", "write the literal path"
    return None


def _home_or_abs_path(value: str) -> Optional[tuple[str, str]]:
    if value.startswith("~/") or value == "~":
        return None
    return _abs_path(value)


def _optional_abs_path(value: str) -> Optional[tuple[str, str]]:
    return None if value == "" else _abs_path(value)


def _pattern(value: str) -> Optional[tuple[str, str]]:
    if value == "":
        return None
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})", "fix the pattern or set it to ''"
    return None


def _range(lo: int, hi: int) -> Check:
    def check(value: int) -> Optional[tuple[str, str]]:
        if not lo <= value <= hi:
            return f"must be between {lo} and {hi}", f"choose a value in {lo}..{hi}"
        return None

    return check


def _module(value: str) -> Optional[tuple[str, str]]:
    if not MODULE_RE.match(value):
        return "is not a module name", "use 'name' or 'name/version' as `module load` takes it"
    return None


def _engine(value: str) -> Optional[tuple[str, str]]:
    if value not in ENGINES:
        return "is not a supported database engine", f"use one of: {', '.join(ENGINES)}"
    return None


WEB_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?")


def _web_origin(value: str) -> Optional[tuple[str, str]]:
    if value == "" or WEB_ORIGIN_RE.fullmatch(value):
        return None
    return ("is not an origin (scheme, host name and optional port, no path)",
            "write it like https://ood-apps.example.org, or leave it empty")


def _text(value: str) -> Optional[tuple[str, str]]:
    if not value.strip():
        return "must not be empty", "give a value"
    if "\n" in value:
        return "must be on one line", "remove the line break"
    return None


STR = (str,)
INT = (int,)
BOOL = (bool,)
LIST = (list,)
DICT = (dict,)


def _limits(default: int, maximum: int, hi: int, doc: str) -> Mapping:
    return Mapping(
        {
            "default": Field(INT, default, check=_range(0, hi), doc="value the form starts with"),
            "max": Field(INT, maximum, check=_range(0, hi), doc="largest value the form accepts"),
        },
        doc=doc,
    )


def _app(fields: dict[str, Any], doc: str) -> Mapping:
    base: dict[str, Any] = {
        "enabled": Field(BOOL, True, doc="build and install this app"),
        "modules": Field(LIST, [], item_check=_module, doc="`module load` lines run before the app"),
    }
    base.update(fields)
    return Mapping(base, doc=doc)


RESOURCES = Mapping(
    {
        "cores": _limits(1, 8, 1024, "CPU cores per job"),
        "memory_gb": _limits(4, 64, 8192, "memory per job in GiB"),
        "hours": _limits(2, 24, 720, "wall time in hours"),
        "gpus": _limits(0, 0, 64, "GPUs per job; max 0 hides the GPU field"),
    },
    doc="resource defaults and limits shown on service forms",
)

ENGINE = Mapping(
    {
        "name": Field(STR, required=True, check=_engine, doc="postgresql, mariadb or mysql"),
        "version": Field(STR, required=True, check=_text, doc="version shown to users"),
        "modules": Field(LIST, [], item_check=_module, doc="modules providing the server binaries"),
        "bin_dir": Field(STR, "", check=_optional_abs_path, doc="directory of the server binaries"),
    }
)

SCHEMA = Mapping(
    {
        "site": Field(STR, required=True, check=_regex(SITE_RE.pattern, "site name", "mysite"),
                      doc="short name of the site; names the build directory"),
        "cluster": Field(STR, required=True, check=_regex(CLUSTER_RE.pattern, "OOD cluster id", "owens"),
                         doc="OOD cluster id (clusters.d/<id>.yml) jobs are submitted to"),
        "wckey": Field(STR, "multitenant", check=_wckey, doc="Slurm WCKey that marks shared services"),
        "enforce_wckeys": Field(BOOL, True, doc="add 'wckeys' to AccountingStorageEnforce"),
        "publisher_group": Field(STR, required=True, check=_name("group"),
                                 doc="POSIX group whose members may run shared services"),
        "tenant_groups": Field(LIST, [], item_check=_name("group"),
                               doc="POSIX groups that may be the audience of a share"),
        "tenant_group_pattern": Field(STR, "", check=_pattern,
                                      doc="regex; groups whose WHOLE name matches it may also be audiences"),
        "refresh_seconds": Field(INT, 30, check=_range(5, 3600),
                                 doc="how often a dashboard looks for new or ended shares"),
        "web_apps_origin": Field(STR, "", check=_web_origin,
                                 doc="address (https://host[:port]) where receivers open shared web apps; "
                                     "a host name of its own, never the dashboard's (admin guide: shared web apps)"),
        "clients_group": Field(STR, "", doc="if set, client apps are gated to this POSIX group"),
        "keys": Mapping(
            {
                "dir": Field(STR, "/etc/ood-mt/keys", check=_abs_path, doc="key directory on cluster hosts"),
                "current_version": Field(INT, 1, check=_range(1, 9999), doc="key version new shares use"),
                "master_secret_file": Field(STR, required=True, check=_home_or_abs_path,
                                            doc="master secret on the Ansible controller; never on hosts"),
                "generate_master_if_missing": Field(BOOL, False,
                                                    doc="create the master secret if absent (labs only)"),
            }
        ),
        "paths": Mapping(
            {
                "ood_apps_dir": Field(STR, "/var/www/ood/apps/sys", check=_abs_path),
                "dashboard_config_dir": Field(STR, "/etc/ood/config/apps/dashboard", check=_abs_path),
            }
        ),
        "resources": RESOURCES,
        "apps": Mapping(
            {
                "llm": _app(
                    {
                        "binary": Field(STR, "ollama", check=_text, doc="the ollama executable"),
                        "models": Field(LIST, ["llama3.2:1b"], item_check=_text, doc="models offered"),
                        "model_dir": Field(STR, "/shared/models/ollama", check=_abs_path,
                                           doc="site model directory"),
                    },
                    "LLM service (Ollama)",
                ),
                "database": _app(
                    {
                        "engines": ListOf(ENGINE, default=[
                            {"name": "postgresql", "version": "15", "modules": [],
                             "bin_dir": "/usr/lib/postgresql/15/bin"},
                        ], min_items=1, doc="engines offered"),
                        "data_root": Field(STR, "~/ood-mt-databases", check=_home_or_abs_path,
                                           doc="where each user's persistent data directories live"),
                    },
                    "Database service",
                ),
                "dashboard": _app({"rscript": Field(STR, "Rscript", check=_text)}, "Dashboard service"),
                "instruction": _app(
                    {"max_file_kb": Field(INT, 256, check=_range(1, 4096))}, "Instruction service"
                ),
                "jupyter": _app({"command": Field(STR, "jupyter", check=_text)}, "Jupyter client"),
                "gradio": _app({"python": Field(STR, "python3", check=_text)}, "Gradio client"),
                "cloudbeaver": _app({"command": Field(STR, "cloudbeaver", check=_text)}, "CloudBeaver client"),
                "codeserver": _app({"command": Field(STR, "code-server", check=_text)}, "Code Server client"),
                "delivery_readfile": Mapping({"max_file_kb": Field(INT, 256, check=_range(1, 4096))}),
            }
        ),
    }
)

# The built-in app kinds: the kind choices of each app template's cookiecutter.json, the one
# list of them (ood_mt.app_templates).
SERVICE_APPS = builtin_kinds("service")
CLIENT_APPS = builtin_kinds("client")
DELIVERY_APPS = builtin_kinds("delivery")
# Which delivery app renders a share of each preset on receivers' sessions pages; a preset
# not listed here uses "default".
PRESET_DELIVERY = {"debug": "debug", "document": "readfile"}
# How long a host program waits for squeue before giving up on that refresh.
SQUEUE_TIMEOUT_SECONDS = 10


# ---------------------------------------------------------------- validation


def _type_name(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a mapping"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    if bool in types:
        return isinstance(value, bool)
    if int in types and isinstance(value, bool):
        return False  # YAML 'yes' must not pass as an integer
    return isinstance(value, types)


def _validate(schema: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    """Return ``value`` with defaults filled in; append problems found."""
    if isinstance(schema, Mapping):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.append(Problem(path, "must be a mapping of keys", "indent its keys under it", value))
            return {}
        out: dict[str, Any] = {}
        for key in value:
            if key not in schema.fields:
                close = difflib.get_close_matches(str(key), list(schema.fields), n=1)
                fix = f"did you mean '{close[0]}'?" if close else (
                    f"remove it; known keys here: {', '.join(sorted(schema.fields))}")
                problems.append(Problem(f"{path}.{key}", "unknown key", fix, has_value=False))
        for key, sub in schema.fields.items():
            out[key] = _validate(sub, value.get(key), f"{path}.{key}", problems)
        return out
    if isinstance(schema, ListOf):
        if value is None:
            value = copy.deepcopy(schema.default)
        if not isinstance(value, list):
            problems.append(Problem(path, "must be a list", "write one '- ' entry per item", value))
            return []
        if len(value) < schema.min_items:
            problems.append(Problem(path, f"needs at least {schema.min_items} entry", "add an entry", value))
        return [_validate(schema.item, item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    assert isinstance(schema, Field)
    if value is None:
        if schema.required:
            problems.append(Problem(path, "is required", f"add '{path.rsplit('.', 1)[-1]}: ...' "
                                    f"({schema.doc or 'see the example site file'})", has_value=False))
            return None
        return copy.deepcopy(schema.default)
    if not _is_type(value, schema.types):
        problems.append(Problem(path, f"must be {_type_name(schema.types)}",
                                f"write {_type_name(schema.types)}" + (f" ({schema.doc})" if schema.doc else ""),
                                value))
        return copy.deepcopy(schema.default)
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        problems.append(Problem(path, "contains a Jinja expression, which `ood-mt build` cannot evaluate",
                                "write the literal value", value))
        return value
    if schema.check is not None:
        result = schema.check(value)
        if result:
            problems.append(Problem(path, result[0], result[1], value))
    if schema.item_check is not None and isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                problems.append(Problem(f"{path}[{i}]", "must be a string", "quote the value", item))
                continue
            result = schema.item_check(item)
            if result:
                problems.append(Problem(f"{path}[{i}]", result[0], result[1], item))
    return copy.deepcopy(value)


def _cross_checks(data: dict[str, Any], problems: list[Problem]) -> None:
    """Rules that involve more than one key."""
    p = TOP_KEY
    if not data["tenant_groups"] and not data["tenant_group_pattern"]:
        problems.append(Problem(f"{p}.tenant_groups", "no audience group is allowed",
                                "list at least one group in tenant_groups or set tenant_group_pattern",
                                has_value=False))
    if data["clients_group"] and not NAME_RE.match(data["clients_group"]):
        problems.append(Problem(f"{p}.clients_group", "is not a valid POSIX group name",
                                "use a group name or ''", data["clients_group"]))
    for name, limits in data["resources"].items():
        if limits["default"] > limits["max"]:
            problems.append(Problem(f"{p}.resources.{name}.default", "is larger than max",
                                    f"lower default or raise max ({limits['max']})", limits["default"]))
    seen: set[str] = set()
    for i, engine in enumerate(data["apps"]["database"]["engines"]):
        key = f"{engine.get('name')}-{engine.get('version')}"
        if key in seen:
            problems.append(Problem(f"{p}.apps.database.engines[{i}]", "duplicates an earlier engine",
                                    "remove the duplicate", key))
        seen.add(key)
    if not any(data["apps"][a]["enabled"] for a in SERVICE_APPS):
        problems.append(Problem(f"{p}.apps", "no service app is enabled",
                                "set enabled: true on at least one of " + ", ".join(SERVICE_APPS),
                                has_value=False))


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

    def public_summary(self) -> dict[str, Any]:
        """What hosts may know about the site: no secret and no controller path."""
        d = self.data
        return {
            "format": 2,
            "site": d["site"],
            "cluster": d["cluster"],
            "wckey": d["wckey"],
            "publisher_group": d["publisher_group"],
            "tenant_groups": list(d["tenant_groups"]),
            "tenant_group_pattern": d["tenant_group_pattern"],
            "key_dir": d["keys"]["dir"],
            "key_version": d["keys"]["current_version"],
            "refresh_seconds": d["refresh_seconds"],
            # Derived values: every host program reads these here instead of keeping a copy.
            "squeue": "squeue",
            "squeue_timeout_seconds": SQUEUE_TIMEOUT_SECONDS,
            "delivery_apps": [f"mt_delivery_{kind}" for kind in DELIVERY_APPS],
            "preset_delivery": dict(PRESET_DELIVERY),
        }


def validate(raw: Any, file: str = "<site file>") -> SiteConfig:
    """Validate an already-parsed site document; raise SiteConfigError listing every problem."""
    problems: list[Problem] = []
    if not isinstance(raw, dict) or TOP_KEY not in raw:
        raise SiteConfigError(file, [Problem(TOP_KEY, "is missing: the site file holds one top-level "
                                             "variable 'multitenant'", "start the file with 'multitenant:' "
                                             "and indent the settings under it", has_value=False)])
    extra = [k for k in raw if k != TOP_KEY]
    for key in extra:
        problems.append(Problem(str(key), "unexpected top-level key",
                                "keep other Ansible variables in another group_vars file", has_value=False))
    data = _validate(SCHEMA, raw[TOP_KEY], TOP_KEY, problems)
    if not problems:
        _cross_checks(data, problems)
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
    """(key path, doc, default) for every leaf, for `ood-mt validate --explain`."""
    rows: list[tuple[str, str, Any]] = []

    def walk(schema: Any, path: str) -> None:
        if isinstance(schema, Mapping):
            for key, sub in schema.fields.items():
                walk(sub, f"{path}.{key}")
        elif isinstance(schema, ListOf):
            rows.append((path, schema.doc, schema.default))
        else:
            rows.append((path, schema.doc, "(required)" if schema.required else schema.default))

    walk(SCHEMA, TOP_KEY)
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
