"""docs/tutorial.md, run as a newcomer would: its ```sh blocks in order, in one bash
(``set -Eeuo pipefail``), against a local cloud.

Blocks whose info string carries ``tutorial-skip-in-test`` are not run: they are the steps
the test does itself (``make demo``/``make test``, starting ``modelops local up`` in a second
terminal, opening the report in a browser, cleaning up). The test starts the local cloud
(one of its own, stopped afterwards) and writes its connection details to
``.localcloud/info.json`` in a scratch directory, which is where the tutorial's next block
reads them from. The scratch directory links ``examples`` and ``.venv`` to this checkout, so
the tutorial's relative paths work and nothing is written into the repository.

When a command fails, the test names the block (and its line in docs/tutorial.md), the
command bash was running, and the tail of the output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
SKIP_TAG = "tutorial-skip-in-test"
FAILURE_MARK = "TUTORIAL-FAILED"
BLOCK_MARK = "TUTORIAL-BLOCK"
RUN_TIMEOUT_S = 1500
# What the scratch directory links to: the tutorial's relative paths.
LINKS = {"examples": REPO / "examples", ".venv": Path(sys.executable).parent.parent}
# Variables a developer's shell may hold that would point the tutorial elsewhere.
SCRUBBED = ("MODELOPS_API_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class Block:
    number: int  # 1-based, among the page's sh blocks
    line: int  # of the opening fence in the Markdown file
    info: str
    code: str

    @property
    def skipped(self) -> bool:
        return SKIP_TAG in self.info.split()


def sh_blocks(markdown: str) -> list[Block]:
    """The ```sh blocks of a Markdown page, in order (other languages are not run)."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^(```+)\s*(.*)$", lines[index])
        if not fence:
            index += 1
            continue
        ticks, info, start = fence.group(1), fence.group(2).strip(), index + 1
        end = next(
            (i for i in range(start, len(lines)) if lines[i].strip() == ticks),
            len(lines),
        )
        if info.split()[:1] in (["sh"], ["bash"], ["shell"]):
            blocks.append(Block(len(blocks) + 1, start, info, "\n".join(lines[start:end])))
        index = end + 1
    return blocks


def script(blocks: list[Block], source: Path) -> str:
    """One bash script of the blocks to run; each failing command is reported with its block
    and line (``set -E`` carries the ERR trap into functions and command substitutions)."""
    parts = [
        "set -Eeuo pipefail",
        f"trap 'status=$?; echo \"{FAILURE_MARK} block $TUTORIAL_BLOCK ({source.name} line "
        "$TUTORIAL_LINE), exit $status: $BASH_COMMAND\" >&2' ERR",
    ]
    for block in blocks:
        if block.skipped:
            continue
        parts += [
            f"TUTORIAL_BLOCK={block.number} TUTORIAL_LINE={block.line}",
            f'echo "{BLOCK_MARK} {block.number} (line {block.line})"',
            block.code,
        ]
    return "\n".join(parts) + "\n"


def scratch_dir(workdir: Path, connection_info: dict[str, Any]) -> Path:
    for name, target in LINKS.items():
        (workdir / name).symlink_to(target, target_is_directory=True)
    (workdir / ".localcloud").mkdir()
    (workdir / ".localcloud" / "info.json").write_text(json.dumps(connection_info, indent=2))
    return workdir


def run_page(markdown: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run the page's blocks in ``workdir``; output is stdout and stderr interleaved."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PATH"] = f"{LINKS['.venv'] / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    args = ["bash", "-c", script(sh_blocks(markdown.read_text()), markdown)]
    # Output to a file, not a pipe (a background job holding the pipe open would keep it
    # from ending), and a session of its own, so that what the page left running in the
    # background (the traffic client) is stopped when bash ends, whichever way it ends.
    log = workdir / "tutorial-output.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            args,
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    output = log.read_text()
    if process.returncode == -signal.SIGKILL:
        output += f"\n(the page did not finish within {RUN_TIMEOUT_S} s)\n"
    return subprocess.CompletedProcess(args, process.returncode, output)


def explain(result: subprocess.CompletedProcess[str], markdown: Path) -> str:
    """Which block and command failed, the block's code, and the output's tail."""
    output = result.stdout
    failures = [line for line in output.splitlines() if line.startswith(FAILURE_MARK)]
    blocks = {b.number: b for b in sh_blocks(markdown.read_text())}
    first = re.search(r"block (\d+)", failures[0]) if failures else None
    block = blocks.get(int(first.group(1))) if first else None
    lines = [f"{markdown.name}: bash exited {result.returncode}"]
    if failures:  # innermost command first, the statement it belongs to last
        lines += [f"failed: {failures[-1].split(': ', 1)[-1]}", *failures]
    else:
        lines.append("(no command was reported failing: a timeout or a signal? see the output)")
    if block is not None:
        lines += [f"--- block {block.number} ({markdown.name} line {block.line}) ---", block.code]
    lines += ["--- output (tail) ---", *output.splitlines()[-60:]]
    return "\n".join(lines)


# --- the CLI surface the tutorial uses -------------------------------------------------


def invocations(markdown: str) -> list[tuple[int, list[str]]]:
    """(line, tokens after ``modelops``) of every ``modelops`` command in the page's sh
    blocks, run or not (continuation lines joined; shell syntax after the command ignored)."""
    found = []
    for block in sh_blocks(markdown):
        logical: list[tuple[int, str]] = []  # (line of its start, text)
        continued = False
        for offset, text in enumerate(block.code.splitlines()):
            if continued:
                logical[-1] = (logical[-1][0], logical[-1][1] + " " + text.rstrip("\\"))
            else:
                logical.append((block.line + 1 + offset, text.rstrip("\\")))
            continued = text.endswith("\\")
        for line, text in logical:
            for match in re.finditer(r"(?:^|[\s(/])modelops\s+([^|;&)]*)", text):
                try:
                    tokens = shlex.split(match.group(1), comments=True)
                except ValueError:
                    tokens = match.group(1).split()
                found.append((line, tokens))
    return found


def missing_from_cli(tokens: list[str]) -> list[str]:
    """What of ``modelops <tokens>`` the CLI's parser does not know: a subcommand or option."""
    from modelops_cli.main import build_parser

    parser: argparse.ArgumentParser = build_parser()
    words = [t for t in tokens if not t.startswith("-")]
    path: list[str] = []
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or not words:
            break
        if words[0] not in sub.choices:
            return [f"modelops {' '.join([*path, words[0]])}: no such command"]
        path.append(words.pop(0))
        parser = sub.choices[path[-1]]
    options = {t.split("=", 1)[0] for t in tokens if t.startswith("--")}
    known = set(parser._option_string_actions)
    return [f"modelops {' '.join(path)}: no option {o}" for o in sorted(options - known)]


def test_the_tutorial_has_blocks_to_run_and_they_parse() -> None:
    blocks = sh_blocks(TUTORIAL.read_text())
    assert [b for b in blocks if not b.skipped], "no sh blocks to run in docs/tutorial.md"
    assert any("local up" in b.code for b in blocks if b.skipped), "local up must be skipped"
    checked = subprocess.run(
        ["bash", "-n", "-c", script(blocks, TUTORIAL)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("page", ["tutorial.md", "operations.md", "deploying.md"])
def test_every_cli_command_the_docs_use_exists(page: str) -> None:
    problems = [
        f"docs/{page} line {line}: {problem}"
        for line, tokens in invocations((REPO / "docs" / page).read_text())
        for problem in missing_from_cli(tokens)
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_the_tutorial_runs_end_to_end(tmp_path: Path) -> None:
    # A local cloud of its own, stopped after the run (as test_example_flow's): the session
    # one would stay installed into the tiers that start their own Lambda runtime.
    from localcloud.cloud import LocalCloud

    with LocalCloud() as cloud:
        workdir = scratch_dir(tmp_path, cloud.connection_info())
        started = time.monotonic()
        result = run_page(TUTORIAL, workdir)
    assert result.returncode == 0, explain(result, TUTORIAL)
    ran = [b.number for b in sh_blocks(TUTORIAL.read_text()) if not b.skipped]
    assert f"{BLOCK_MARK} {ran[-1]} " in result.stdout
    assert (workdir / "tutorial" / "report.html").is_file()
    print(f"tutorial ran in {time.monotonic() - started:.0f} s")
