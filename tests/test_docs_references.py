"""The repository explains itself: what it cites is inside it, and every SYSTEM alarm
the code can raise has its entry in the runbook.

- Nothing cites the team's starting briefs (the design and reference notes that live
  outside the repository) or an issue number: a newcomer cannot follow either. The
  design is docs/architecture.md; the contract is docs/contract.md.
- Every ``docs/<file>.md#<anchor>`` (and every ``file.md#anchor`` / ``#anchor`` link in
  a Markdown file) names a file that exists and a heading it has, so a renamed heading
  cannot leave a citation pointing nowhere.
- Every SYSTEM alarm tag handed to ``system_condition`` anywhere in the service's
  packages — a literal, a module constant, a prefix like ``channel:`` — appears in
  docs/operations.md. A new SYSTEM alarm without a runbook entry fails here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
SKIP_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".nodered",
    "vendor",
    "var",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".conf", ".sh", ".txt"}
TEXT_NAMES = {"Makefile", "Dockerfile", "run", "test", "venv"}
SERVICE_PACKAGES = ("hazwatch", "ingest", "detectors", "alerting", "uplink", "dashboards")

_BRIEF = "|".join(re.escape(name) for name in ("DESIGN" + ".md", "REFERENCE" + ".md"))
FOREIGN_CITATION = re.compile(
    rf"(?:{_BRIEF})"  # the team's briefs, not in the repository
    r"|\.\./shared/"
    r"|\b[Ii]ssues?\s*(?:#\s*)?\d+"  # an issue and its number, across a line break too
    r"|(?<![\w/#&])(?<!grid )(?<!installation )#\d+\b"  # a bare number sign and digits;
    # owner/repo#N names its source; "grid #2" is the registry's own error wording
)
ANCHORED = re.compile(r"((?:[\w./-]*/)?[\w.-]+\.md)?#([\w-]+)")
"""``docs/contract.md#anchor``, ``contract.md#anchor``, or (in Markdown) ``#anchor``."""


def repository_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*")):
        if any(part in SKIP_DIRS for part in path.relative_to(ROOT).parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            yield path


def test_the_walk_finds_the_files_that_cite() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in repository_files()}
    assert {"pyproject.toml", "README.md", "ingest/source.py", "docs/architecture.md"} <= names


def test_nothing_cites_an_outside_brief_or_an_issue_number() -> None:
    found = []
    for path in repository_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in FOREIGN_CITATION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}")
    assert found == [], "cite docs/ inside the repository instead:\n" + "\n".join(found)


def test_the_citation_pattern_catches_what_it_must() -> None:
    cites = [
        "see DESIGN" + ".md §3",
        "(REFERENCE" + ".md MQTT 1)",
        "issue " + "10",
        "Issue #" + "4",
        "the profile of issue\n" + "10",
        "as asked in #" + "12",
    ]
    fine = ["PKCS#7 padding", "thingsboard/thingsboard#7943", "docs/contract.md#4-configuration"]
    assert all(FOREIGN_CITATION.search(text) for text in cites)
    assert not any(FOREIGN_CITATION.search(text) for text in fine)


# --- anchors ---------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (not of ``#`` lines inside code)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\s*```", line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not fenced:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_slugs_are_githubs() -> None:
    assert slug("1. MQTT: gateway → platform") == "1-mqtt-gateway--platform"
    assert slug("Rejections (what `GET /api/ingest/rejects` lists)") == (
        "rejections-what-get-apiingestrejects-lists"
    )
    assert slug("Measured facts: MQTT") == "measured-facts-mqtt"


def references() -> Iterator[tuple[Path, int, Path, str]]:
    """(citing file, line, cited file, anchor) for every anchored citation (this file's
    own are examples)."""
    for path in repository_files():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in ANCHORED.finditer(text):
            target, anchor = match.groups()
            line = text.count("\n", 0, match.start()) + 1
            if target is None:
                if path.suffix != ".md" or text[max(0, match.start() - 1)] != "(":
                    continue  # "#anchor" alone is a link only in Markdown: "](#x)"
                yield path, line, path, anchor
                continue
            candidates = [path.parent / target, ROOT / target]
            cited = next((c for c in candidates if c.is_file()), candidates[-1])
            yield path, line, cited, anchor


def test_every_docs_anchor_resolves_to_a_heading() -> None:
    refs = list(references())
    assert any(cited.name == "architecture.md" for _, _, cited, _ in refs)
    broken = []
    for path, line, cited, anchor in refs:
        where = f"{path.relative_to(ROOT)}:{line}"
        if not cited.is_file():
            broken.append(f"{where}: no file {cited.relative_to(ROOT)}")
        elif cited.suffix == ".md" and anchor not in anchors(cited):
            broken.append(f"{where}: {cited.relative_to(ROOT)} has no heading #{anchor}")
    assert broken == [], "\n".join(broken)


# --- SYSTEM alarms in the runbook --------------------------------------------------------


def _modules() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for package in SERVICE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _constants(modules: dict[Path, ast.Module]) -> dict[str, str]:
    """Module-level ``NAME = "text"`` of every module (the tags are named once)."""
    found: dict[str, str] = {}
    for module in modules.values():
        for node in module.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = node.value.value
    return found


class _TagFinder:
    """Resolves the tag argument of each ``system_condition(...)`` call to a pattern:
    literal text, ``*`` where a part is only known at run time."""

    def __init__(self, module: ast.Module, constants: dict[str, str]) -> None:
        self.module = module
        self.constants = constants
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(module):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def tags(self) -> Iterator[str]:
        for node in ast.walk(self.module):
            if isinstance(node, ast.Call) and _called(node) == "system_condition":
                arg = node.args[0] if node.args else _keyword(node, "tag")
                if arg is not None:
                    yield from self.resolve(arg, depth=0)

    def resolve(self, expr: ast.expr, depth: int) -> Iterator[str]:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            yield expr.value
        elif isinstance(expr, ast.Name) and expr.id in self.constants:
            yield self.constants[expr.id]
        elif isinstance(expr, ast.Name) and depth < 3:
            yield from self.through_callers(expr, depth)
        elif isinstance(expr, ast.JoinedStr):
            parts = [list(self.resolve(v, depth)) or ["*"] for v in expr.values]
            yield from _joined(parts)
        elif isinstance(expr, ast.FormattedValue):
            yield from self.resolve(expr.value, depth)
        elif isinstance(expr, ast.IfExp):
            yield from self.resolve(expr.body, depth)
            yield from self.resolve(expr.orelse, depth)
        elif isinstance(expr, ast.Attribute) and _is_self(expr.value) and depth < 3:
            yield from self.through_attribute(expr.attr, depth)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            for left in self.resolve(expr.left, depth):
                for right in self.resolve(expr.right, depth):
                    yield left + right
        else:
            yield "*"

    def through_attribute(self, attr: str, depth: int) -> Iterator[str]:
        """``self.<attr>``: what this module assigns to it."""
        values = [
            node.value
            for node in ast.walk(self.module)
            if isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and any(
                isinstance(t, ast.Attribute) and _is_self(t.value) and t.attr == attr
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
        ]
        if not values:
            yield "*"
        for value in values:
            yield from self.resolve(value, depth + 1)

    def through_callers(self, name: ast.Name, depth: int) -> Iterator[str]:
        """``name`` is a parameter of the enclosing function: the arguments its callers
        in this module pass for it."""
        func = self.parents.get(name)
        while func is not None and not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            func = self.parents.get(func)
        params = [] if func is None else [a.arg for a in func.args.args]
        kwonly = [] if func is None else [a.arg for a in func.args.kwonlyargs]
        if func is None or name.id not in params + kwonly:
            yield "*"
            return
        position = params.index(name.id) if name.id in params else None
        if position is not None and params and params[0] == "self":
            position -= 1
        found = False
        for call in ast.walk(self.module):
            if not (isinstance(call, ast.Call) and _called(call) == func.name):
                continue
            arg = _keyword(call, name.id)
            if arg is None and position is not None and position < len(call.args):
                arg = call.args[position]
            if arg is not None:
                found = True
                yield from self.resolve(arg, depth + 1)
        if not found:
            yield "*"


def _is_self(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Name) and expr.id == "self"


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _joined(parts: list[list[str]]) -> Iterator[str]:
    if not parts:
        yield ""
        return
    for head in parts[0]:
        for tail in _joined(parts[1:]):
            yield head + tail


def system_alarm_keys() -> dict[str, set[str]]:
    """Key (the tag up to its first ``:`` or run-time part) → the modules raising it."""
    modules = _modules()
    constants = _constants(modules)
    keys: dict[str, set[str]] = {}
    for path, module in modules.items():
        for tag in _TagFinder(module, constants).tags():
            key = re.split(r"[:*]", tag, maxsplit=1)[0]
            keys.setdefault(key, set()).add(path.relative_to(ROOT).as_posix())
    return keys


def test_the_collector_finds_the_system_alarms_of_every_kind() -> None:
    keys = system_alarm_keys()
    assert "" not in keys, f"a SYSTEM alarm tag the collector cannot read: {keys.get('')}"
    assert {
        "spool_full",  # a constant through a wrapper's parameter
        "detectors_failed",  # a literal through a wrapper
        "task_failed",  # a prefix + a run-time name
        "channel",  # an f-string
        "uplink_lag",  # an f-string of a wrapper's parameter
        "broker_disconnected",
    } <= set(keys)


@pytest.mark.parametrize("key", sorted(system_alarm_keys()))
def test_every_system_alarm_has_a_runbook_entry(key: str) -> None:
    runbook = OPERATIONS.read_text(encoding="utf-8")
    assert re.search(rf"^#+ .*`{re.escape(key)}(?:[:`])", runbook, re.MULTILINE), (
        f"SYSTEM alarm {key!r} ({', '.join(sorted(system_alarm_keys()[key]))}) has no "
        f"heading in docs/operations.md: say what it means and what the operator does"
    )


def test_system_alarms_are_made_only_by_system_condition() -> None:
    """The collector reads ``system_condition`` calls: a SYSTEM ``Condition`` built by
    hand elsewhere would escape it (and the runbook)."""
    by_hand = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, module in _modules().items()
        for node in ast.walk(module)
        if isinstance(node, ast.Call)
        and _called(node) == "Condition"
        and any(
            isinstance(k.value, ast.Attribute) and k.value.attr == "SYSTEM"
            for k in node.keywords
            if k.arg == "type"
        )
        and path != ROOT / "hazwatch" / "models.py"
    ]
    assert by_hand == []
