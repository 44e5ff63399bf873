"""The code stays within Python 3.10 (setup.py's ``python_requires`` floor) though only
3.11 runs here: every source file parses with 3.10's grammar and uses no standard-library
name added after 3.10."""
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIN_VERSION = (3, 10)
SOURCES = sorted(
    path
    for folder in ("spacy_seqlab", "scripts", "benchmarks", "tests")
    for path in (ROOT / folder).rglob("*.py")
    if "work" not in path.relative_to(ROOT).parts  # benchmarks/work: git-ignored scratch
) + [ROOT / "setup.py"]

# Standard-library names added in 3.11-3.13; None: the whole module is new.
NEWER_NAMES: Dict[str, Optional[FrozenSet[str]]] = {
    "tomllib": None,
    "typing": frozenset({
        "Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type",
        "dataclass_transform", "Required", "NotRequired", "TypeVarTuple", "Unpack",
        "get_overloads", "clear_overloads", "override", "TypeAliasType", "TypeIs",
        "ReadOnly", "NoDefault", "get_protocol_members", "is_protocol",
    }),
    "enum": frozenset({"StrEnum", "ReprEnum", "EnumCheck", "verify", "member", "nonmember",
                       "global_enum", "show_flag_values"}),
    "asyncio": frozenset({"TaskGroup", "Runner", "timeout", "timeout_at", "Timeout",
                          "QueueShutDown"}),
    "datetime": frozenset({"UTC"}),
    "hashlib": frozenset({"file_digest"}),
    "operator": frozenset({"call"}),
    "contextlib": frozenset({"chdir"}),
    "math": frozenset({"exp2", "cbrt", "sumprod", "fma"}),
    "itertools": frozenset({"batched"}),
    "collections.abc": frozenset({"Buffer"}),
    "warnings": frozenset({"deprecated"}),
    "copy": frozenset({"replace"}),
    "logging": frozenset({"getLevelNamesMapping", "getHandlerByName", "getHandlerNames"}),
}
NEWER_BUILTINS = frozenset({"ExceptionGroup", "BaseExceptionGroup", "PythonFinalizationError"})


def newer_names(source: str) -> List[str]:
    """Uses of standard-library names newer than 3.10 in ``source``, as ``module.name``
    (through ``import module [as m]``, ``from module import name`` and builtins)."""
    aliases: Dict[str, str] = {}  # local name -> module
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in NEWER_NAMES and NEWER_NAMES[alias.name] is None:
                    found.append(alias.name)
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in NEWER_NAMES:
            names = NEWER_NAMES[node.module]
            found += [f"{node.module}.{a.name}" for a in node.names if names is None or a.name in names]
        elif isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
            found.append(f"builtins.{node.id}")
    for node in ast.walk(ast.parse(source)):  # after all imports: module attributes
        if isinstance(node, ast.Attribute):
            module = ast.unparse(node.value)
            module = aliases.get(module, module)
            if NEWER_NAMES.get(module) and node.attr in NEWER_NAMES[module]:
                found.append(f"{module}.{node.attr}")
    return found


def problems(path: Path) -> str:
    """What keeps ``path`` from running on MIN_VERSION ("" if nothing)."""
    source = path.read_text(encoding="utf8")
    try:
        ast.parse(source, filename=str(path), feature_version=MIN_VERSION)
    except SyntaxError as err:
        return f"not Python {MIN_VERSION} syntax: {err}"
    newer = newer_names(source)
    return f"names newer than Python {MIN_VERSION}: {newer}" if newer else ""


@pytest.fixture(scope="module")
def checked() -> Dict[str, str]:
    """``problems`` of every source, found in a fresh interpreter: CPython 3.11's AST
    constructor keeps its recursion depth in interpreter-wide state that threads left
    running by other tests (Ray's) can disturb ("SystemError: AST constructor recursion
    depth mismatch", python/cpython#106905)."""
    run = subprocess.run([sys.executable, __file__], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_parses_with_the_oldest_grammar_and_uses_no_newer_stdlib(path, checked):
    assert checked[str(path)] == "", f"{path}: {checked[str(path)]}"


def test_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert {"setup.py", "spacy_seqlab/layers/rnn.py", "scripts/convert_conll.py"} <= names


@pytest.mark.parametrize(
    "source,expected",
    [
        ("import tomllib", ["tomllib"]),
        ("from typing import List, Self", ["typing.Self"]),
        ("import typing as t\nx: t.Self", ["typing.Self"]),
        ("import asyncio\nasyncio.TaskGroup()", ["asyncio.TaskGroup"]),
        ("from collections.abc import Buffer", ["collections.abc.Buffer"]),
        ("import collections.abc\ncollections.abc.Buffer", ["collections.abc.Buffer"]),
        ("raise ExceptionGroup('x', [])", ["builtins.ExceptionGroup"]),
        ("from typing import List\nimport enum\nenum.Enum", []),
    ],
)
def test_the_stdlib_check_flags_newer_names(source, expected):
    assert newer_names(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "try:\n    pass\nexcept* ValueError:\n    pass\n",  # 3.11: exception groups
        "def f[T](x: T) -> T:\n    return x\n",  # 3.12: type parameters
        "type Alias = int\n",  # 3.12: type statement
    ],
)
def test_the_grammar_check_rejects_newer_syntax(source):
    with pytest.raises(SyntaxError):
        ast.parse(source, feature_version=MIN_VERSION)


if __name__ == "__main__":
    print(json.dumps({str(path): problems(path) for path in SOURCES}))
