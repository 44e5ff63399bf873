"""Every code block of README.md and docs/*.md is checked here, by its language and the
``<!-- docs-test: KIND -->`` comment on the line just before its opening fence:

- ``python``: run, each page's blocks in order in one namespace (like a doctest), in a
  temporary working directory;
- ``bash`` with ``run``: run with bash in a temporary directory that holds a small
  trained pipeline at ``training/model-best`` and ``corpus.jsonl`` (``python`` is this
  interpreter);
- ``bash`` with ``tested-by tests/FILE.py::NAME ...``: those tests (or fixtures) exist
  and, for each command line, one of them names what it runs (the spaCy subcommand,
  script or program), so renaming either side fails here;
- ``bash`` with ``args``: long runs (trainings, benchmarks, installs) that are not run
  here: every script exists, every ``--option`` is one its parser declares, every
  ``VAR=`` is read by the shell script, every ``spacy project run NAME`` is in
  project.yml, every ``pkg==version`` is the pin of constraints.txt or setup.py;
- ``ini`` with ``excerpt-of configs/FILE.cfg``: every section and value of the block is
  in that config;
- ``text``: output, diagrams, formats; never a command.

A block in any other language, or a ``bash``/``ini`` block without its comment, fails.
No page may name an entry of the project's own tracker by its label: users cannot see
the tracker, so a page says what the thing is instead.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "benchmarks" / "README.md"]
MARKER = re.compile(r"^\s*<!-- docs-test: (.+?) -->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


class Block(NamedTuple):
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    kind: str  # the docs-test comment, "" if none
    code: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> List[Block]:
    lines = page.read_text(encoding="utf8").split("\n")
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang, start = match.group(1), match.group(2), i
        i += 1
        body = []
        while not (FENCE.match(lines[i]) and FENCE.match(lines[i]).group(2) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        marker = MARKER.match(lines[start - 1]) if start else None
        found.append(Block(page, start + 1, lang, marker.group(1) if marker else "",
                           "\n".join(body) + "\n"))
        i += 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def by_kind(lang: str, kind: str) -> List[Block]:
    return [b for b in BLOCKS if b.lang == lang and b.kind.split(" ")[0] == kind]


def test_every_block_has_a_known_language_and_check():
    allowed = {("python", ""), ("bash", "run"), ("bash", "tested-by"), ("bash", "args"),
               ("ini", "excerpt-of"), ("text", "")}
    bad = [f"{b.id} ```{b.lang} {b.kind!r}" for b in BLOCKS
           if (b.lang, b.kind.split(" ")[0]) not in allowed]
    assert not bad, "blocks without a check (see tests/test_docs.py):\n" + "\n".join(bad)
    assert len(by_kind("python", "")) >= 2 and by_kind("bash", "args")


def test_no_project_file_names_a_tracker_entry():
    """The pages, and what users read beside them (the package, configs, scripts and the
    benchmarks with their result pages), name no tracker entry by its label."""
    files = [*PAGES, ROOT / "project.yml", *(ROOT / "configs").glob("*.cfg"),
             *[f for d in ("spacy_seqlab", "scripts", "benchmarks") for f in (ROOT / d).rglob("*")
               if f.suffix in (".py", ".md", ".sh") and "work" not in f.relative_to(ROOT).parts]]
    named = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text(encoding="utf8").split("\n"), 1)
             if re.search(r"\bissues? [A-Z]\b|\bissue-[A-Z]\b", line, re.IGNORECASE)]
    assert not named, "\n".join(named)


def test_links_between_pages_resolve():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf8")):
            if not target.startswith("http") and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", sorted({b.page for b in by_kind("python", "")}),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: Dict[str, object] = {"__name__": "__docs__"}
    for block in by_kind("python", ""):
        if block.page == page:
            exec(compile(block.code, block.id, "exec"), namespace)


def command_lines(code: str) -> List[List[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.split("\n"):
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def what_it_runs(words: List[str]) -> str:
    """The name a test must mention: a spaCy subcommand, a script path or a program."""
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if words[:2] == ["nice", "-n"]:
        words = words[3:]
    if "spacy" in words and words.index("spacy") + 1 < len(words):
        return words[words.index("spacy") + 1]
    for word in words:
        if word.endswith((".py", ".sh")):
            return word
    return words[0]


@pytest.mark.parametrize("block", by_kind("bash", "tested-by"), ids=lambda b: b.id)
def test_shell_blocks_name_what_their_test_runs(block):
    sources = []
    for item in block.kind.split(" ")[1:]:
        test_file, _, test_name = item.partition("::")
        source = (ROOT / test_file).read_text(encoding="utf8")
        match = re.search(rf"^def {re.escape(test_name)}\(.*?(?=^\S|\Z)", source, re.M | re.S)
        assert match, f"{block.id}: {test_file} has no test {test_name}"
        sources.append(match.group(0))
    for words in command_lines(block.code):
        name = what_it_runs(words)
        assert any(name in source for source in sources), f"{block.id}: no test runs {name!r}"


def declared_options(script: Path) -> set:
    """The --options a script's argparse/typer parser declares (in the script, or in the
    benchmarks' shared helpers it builds its parser with)."""
    sources = [script]
    if script.parent.name == "benchmarks":
        sources += [script.parent / "_spacy_runs.py", script.parent / "_env.py"]
    text = "".join(path.read_text(encoding="utf8") for path in sources if path.exists())
    return set(re.findall(r"[\"'](--[a-z][a-z0-9-]*)[\"']", text))


def pins() -> Dict[str, str]:
    text = (ROOT / "constraints.txt").read_text() + (ROOT / "setup.py").read_text()
    pin = r"([A-Za-z0-9_.\-]+)(?:\[[a-z,]+\])?==([0-9][0-9a-z.]*)"
    return {name.lower(): version for name, version in re.findall(pin, text)}


@pytest.mark.parametrize("block", by_kind("bash", "args"), ids=lambda b: b.id)
def test_long_commands_use_real_scripts_and_options(block):
    project = (ROOT / "project.yml").read_text(encoding="utf8")
    pinned = pins()
    for words in command_lines(block.code):
        line = " ".join(words)
        named = [ROOT / w for w in words if w.endswith((".py", ".sh")) and (ROOT / w).is_file()]
        for var in re.findall(r"(?:^| )([A-Z_]+)=", line):
            assert any(var in path.read_text() for path in named), f"{block.id}: nothing reads {var}"
        for word in words:
            if word.endswith((".py", ".sh", ".cfg")) and "/" in word:
                assert (ROOT / word).exists(), f"{block.id}: no {word}"
        script = next((w for w in words if w.endswith(".py") and "/" in w), None)
        if script:
            declared = declared_options(ROOT / script)
            used = [w.split("=")[0] for w in words if w.startswith("--")]
            assert set(used) <= declared, f"{block.id}: {script} has no {set(used) - declared}"
        if "project" in words and "run" in words:
            name = words[words.index("run") + 1]
            assert re.search(rf"^\s*(- name: {name}|{name}:)\s*$", project, re.M), f"{block.id}: {name}"
        if "pip" in words and "install" in words:
            for name, version in re.findall(r"([A-Za-z0-9_.\-]+)==([0-9][0-9a-z.]*)", line):
                assert pinned.get(name.lower()) == version, f"{block.id}: {name}=={version}"
            for extras in re.findall(r"\.\[([a-z,]+)\]", line):
                setup = (ROOT / "setup.py").read_text()
                assert all(f'"{e}":' in setup for e in extras.split(",")), f"{block.id}: [{extras}]"


@pytest.mark.parametrize("block", by_kind("ini", "excerpt-of"), ids=lambda b: b.id)
def test_config_blocks_are_excerpts_of_their_config(block):
    import configparser

    config_path = ROOT / block.kind.split(" ", 1)[1]
    full, excerpt = (configparser.ConfigParser(interpolation=None) for _ in range(2))
    full.read_string(config_path.read_text(encoding="utf8"))
    excerpt.read_string(block.code)
    assert excerpt.sections()
    for section in excerpt.sections():
        assert full.has_section(section), f"{block.id}: no [{section}] in {config_path.name}"
        for key, value in excerpt.items(section):
            assert full.get(section, key, fallback=None) == value, f"{block.id}: [{section}] {key}"


@pytest.fixture(scope="module")
def shell_dir(tmp_path_factory) -> Path:
    """A folder with a small trained crf_tagger + crf_ner pipeline and a corpus."""
    import spacy
    from spacy.training import Example

    from .tiny_pipelines import fit

    folder = tmp_path_factory.mktemp("shell")
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    nlp.add_pipe("crf_ner")
    doc = nlp.make_doc("Angela Merkel visited Paris .")
    examples = [Example.from_dict(doc, {"tags": ["NNP", "NNP", "VBD", "NNP", "."],
                                        "entities": [(0, 13, "PER"), (22, 27, "LOC")]})]
    fit(nlp, examples, 5)
    (folder / "training").mkdir()
    nlp.to_disk(folder / "training" / "model-best")
    (folder / "corpus.jsonl").write_text(
        '{"id": "a", "text": "Angela Merkel visited Paris ."}\n{"text": "Paris ."}\n')
    return folder


@pytest.mark.parametrize("block", by_kind("bash", "run"), ids=lambda b: b.id)
def test_shell_blocks_run(block, shell_dir):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=shell_dir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{block.id}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
