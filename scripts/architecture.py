"""Architecture report for the rollout package: sizes, long functions, imports, AWS clients, SNS.

    .venv/bin/python scripts/architecture.py [--json] [--root layers/rollout/rollout]

The analysis is static (ast only; nothing is imported), so it runs on code that does not import.
tests/unit/test_architecture.py loads this file and turns the findings into the package's rules.

Modules are named by their path under the root ("aws.py", "sub/__init__.py"); the package name is
the root folder's name, so `from rollout import aws` in the default root is an edge to "aws.py".
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "layers" / "rollout" / "rollout"
LONGEST_SHOWN = 10

# Calls that make a boto3 client or resource, as dotted names after import aliases are resolved.
# "{package}" is the analysed package; its `aws` module is the one sanctioned factory. Sessions are
# listed because `boto3.Session().client(...)` would otherwise slip past aws.py unseen.
CLIENT_FACTORIES = (
    "boto3.client",
    "boto3.resource",
    "boto3.Session",
    "boto3.session.Session",
    "{package}.aws.client",
    "{package}.aws.table",
    "{package}.aws.check_invoke_client",
)
# Factories whose first argument names the service: a "sns" there makes the module an SNS publisher.
SERVICE_FACTORIES = ("boto3.client", "boto3.resource", "{package}.aws.client")


@dataclass(frozen=True)
class Module:
    path: str  # relative to the root, with forward slashes
    lines: int


@dataclass(frozen=True)
class Function:
    qualname: str  # enclosing classes and functions joined by dots: "Ledger.transition"
    path: str
    line: int  # the `def` line; decorators are not counted
    length: int  # from the `def` line to the last line of the body

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class CallSite:
    path: str
    line: int
    call: str  # what is called, as written: "aws.client('sns')", "notifier.publish(…)"

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Report:
    root: str
    modules: list[Module]
    functions: list[Function]  # longest first
    imports: dict[str, list[str]]  # module -> package modules it imports at run time
    cycles: list[list[str]]  # strongly connected components of size > 1, and self-importing modules
    client_calls: list[CallSite]
    sns_publish_calls: list[CallSite]

    def longest_functions(self, count: int = LONGEST_SHOWN) -> list[Function]:
        return self.functions[:count]

    @property
    def client_modules(self) -> list[str]:
        return sorted({site.path for site in self.client_calls})

    @property
    def sns_publisher_modules(self) -> list[str]:
        return sorted({site.path for site in self.sns_publish_calls})


def analyse(root: Path) -> Report:
    """Read every module under `root` (a package folder) and report on it."""
    package = root.name
    sources = {_relative(path, root): path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.py"))}
    trees = {path: ast.parse(source, filename=path) for path, source in sources.items()}
    module_paths = {_dotted_name(package, path): path for path in sources}

    functions = [fn for path, tree in trees.items() for fn in _functions(tree, path)]
    functions.sort(key=lambda fn: (-fn.length, fn.path, fn.line))
    imports = {
        path: sorted(_imported_modules(tree, _dotted_name(package, path), path, module_paths))
        for path, tree in trees.items()
    }
    client_calls: list[CallSite] = []
    sns_calls: list[CallSite] = []
    for path, tree in trees.items():
        clients, sns = _aws_calls(tree, package, _dotted_name(package, path), path)
        client_calls += clients
        sns_calls += sns
    return Report(
        root=str(root),
        modules=[Module(path, len(source.splitlines())) for path, source in sources.items()],
        functions=functions,
        imports=imports,
        cycles=import_cycles(imports),
        client_calls=client_calls,
        sns_publish_calls=sns_calls,
    )


def import_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, plus modules that import themselves."""
    cycles = [sorted(component) for component in _strongly_connected(graph) if len(component) > 1]
    cycles += [[node] for node, targets in graph.items() if node in targets]
    return sorted(cycles)


def code_lines(source: str) -> int:
    """Lines that hold code: not blank, not only a comment, not part of a docstring."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, _end(first) + 1))
    not_code = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in not_code and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


# --- reading one module ---------------------------------------------------------------------------


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _dotted_name(package: str, path: str) -> str:
    parts = [package, *path.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _end(node: ast.stmt | ast.expr) -> int:
    return node.end_lineno or node.lineno


def _functions(tree: ast.Module, path: str) -> Iterator[Function]:
    def visit(node: ast.AST, scope: tuple[str, ...]) -> Iterator[Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = ".".join((*scope, child.name))
                # Since Python 3.8 a function's lineno is its `def` line, after any decorators.
                yield Function(qualname, path, child.lineno, _end(child) - child.lineno + 1)
                yield from visit(child, (*scope, child.name))
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, (*scope, child.name))
            else:
                yield from visit(child, scope)

    return visit(tree, ())


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs: the body of `if TYPE_CHECKING:` is skipped, its `else:` is not."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _absolute_module(node: ast.ImportFrom, module: str, path: str) -> str:
    """The module a `from ... import` reads from, with relative levels resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _imported_names(tree: ast.Module, module: str, path: str) -> Iterator[str]:
    """Dotted names a module imports at run time; `from a import b` gives "a.b" (b may be a module)."""
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute_module(node, module, path)
            yield from (f"{source}.{alias.name}" for alias in node.names)


def _imported_modules(tree: ast.Module, module: str, path: str, module_paths: dict[str, str]) -> set[str]:
    """Package modules imported, each resolved to the most specific module that exists.

    `from rollout import x` is an edge to x.py when x is a module, else to __init__.py; the parent
    packages' __init__ modules that Python also runs are not edges (they would be in every cycle).
    """
    found = set()
    for name in _imported_names(tree, module, path):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            target = module_paths.get(".".join(parts[:cut]))
            if target:
                found.add(target)
                break
    return found


def _bindings(tree: ast.Module, module: str, path: str) -> dict[str, str]:
    """Local name -> dotted name it was imported as (`from rollout import aws` binds aws to rollout.aws)."""
    bound: dict[str, str] = {}
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            source = _absolute_module(node, module, path)
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    return bound


def _resolve(expr: ast.expr, bound: dict[str, str]) -> str | None:
    if isinstance(expr, ast.Name):
        return bound.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _resolve(expr.value, bound)
        return f"{base}.{expr.attr}" if base else None
    return None


def _service(call: ast.Call) -> str | None:
    arguments = [*call.args[:1], *(kw.value for kw in call.keywords if kw.arg == "service_name")]
    for argument in arguments:
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            return argument.value
    return None


def _describe(call: ast.Call, service: str | None) -> str:
    """The call as written, its arguments cut to the service name ("…" stands for anything else)."""
    arguments = repr(service) if service else "…" if call.args or call.keywords else ""
    return f"{ast.unparse(call.func)}({arguments})"


def _aws_calls(
    tree: ast.Module, package: str, module: str, path: str
) -> tuple[list[CallSite], list[CallSite]]:
    """Client-making calls and SNS-publishing calls (any `.publish(`, or a client made for "sns")."""
    bound = _bindings(tree, module, path)
    factories = {name.format(package=package) for name in CLIENT_FACTORIES}
    service_factories = {name.format(package=package) for name in SERVICE_FACTORIES}
    clients: list[CallSite] = []
    sns: list[CallSite] = []
    for node in _runtime_nodes(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _resolve(node.func, bound)
        service = _service(node) if target in service_factories else None
        site = CallSite(path, node.lineno, _describe(node, service))
        if target in factories:
            clients.append(site)
        if service == "sns" or (isinstance(node.func, ast.Attribute) and node.func.attr == "publish"):
            sns.append(site)
    return sorted(clients, key=_place), sorted(sns, key=_place)


def _place(site: CallSite) -> tuple[str, int, str]:
    return site.path, site.line, site.call


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so that a long import chain cannot hit the recursion limit."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, [])))]
        index[start] = lowlink[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[node])
                if lowlink[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
            elif target not in index:
                index[target] = lowlink[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(graph.get(target, []))))
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
    return components


# --- output ------------------------------------------------------------------------------------------


def as_json(report: Report) -> dict[str, Any]:
    return {
        "root": report.root,
        "module_count": len(report.modules),
        "modules": [asdict(module) for module in report.modules],
        "longest_functions": [asdict(fn) for fn in report.longest_functions()],
        "imports": report.imports,
        "cycles": report.cycles,
        "client_modules": report.client_modules,
        "client_calls": [asdict(site) for site in report.client_calls],
        "sns_publisher_modules": report.sns_publisher_modules,
        "sns_publish_calls": [asdict(site) for site in report.sns_publish_calls],
    }


def as_text(report: Report) -> str:
    total = sum(module.lines for module in report.modules)
    out = [f"{report.root}: {len(report.modules)} modules, {total} lines", "", "Lines per module"]
    out += [f"  {module.lines:5}  {module.path}" for module in report.modules]
    out += ["", f"Longest functions ({LONGEST_SHOWN} of {len(report.functions)})"]
    out += [f"  {fn.length:5}  {fn.location:28} {fn.qualname}" for fn in report.longest_functions()]
    out += ["", "Internal imports (module -> package modules it imports)"]
    out += [f"  {path} -> {', '.join(targets)}" for path, targets in report.imports.items() if targets]
    out += ["", "Import cycles (each with its imports inside the cycle)"]
    for cycle in report.cycles:
        out.append(f"  {' <-> '.join(cycle)}")
        members = set(cycle)
        for path in cycle:
            inside = [target for target in report.imports[path] if target in members]
            out.append(f"      {path} -> {', '.join(inside)}")
    if not report.cycles:
        out.append("  none")
    out += ["", "Modules that make or use boto3 clients"]
    out += _sites_by_module(report.client_calls)
    out += ["", "Modules that publish to SNS (any `.publish(` call, or a client made for sns)"]
    out += _sites_by_module(report.sns_publish_calls)
    return "\n".join(out)


def _sites_by_module(sites: list[CallSite]) -> list[str]:
    by_module: dict[str, list[CallSite]] = {}
    for site in sites:
        by_module.setdefault(site.path, []).append(site)
    lines = []
    for path, found in by_module.items():
        lines.append(f"  {path}")
        lines += [f"      {site.line:4}  {site.call}" for site in found]
    return lines or ["  none"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the package folder to analyse")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder")
    report = analyse(args.root)
    print(json.dumps(as_json(report), indent=2) if args.json else as_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
