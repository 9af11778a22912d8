"""The examples in the docs run: every ```sh block of README.md and docs/*.md that holds `curl`
is executed, in document order (README.md, then PAGES), against one live app on a fresh demo
database, so an example that stops working fails here.

What the docs hold to:
- A ```sh block runs when it holds `curl`, one without it does not; an example that cannot run
  against the app (createdb, heroku, npx, a shell setup) goes in a ```console block.
- All blocks run in one bash session (`set -euo pipefail`), in a scratch folder, so the README's
  login (TOKEN, AUTH) serves every page after it; `flask` there reaches the live app's database.
  `http://127.0.0.1:8000` is rewritten to the live app's address.
- Every curl gets an HTTP answer. A status written in its comment, on a line directly above it
  (`-> 201`) or at the end of one of its own lines (`# 412`), is the status it must get; any
  other curl must succeed (under 400).
"""

import os
import re
import subprocess

import pytest
from support.processes import BIN, ROOT, gunicorns, service_env

PAGES = ("api", "webhooks", "operations", "performance", "decisions", "development")
DOCS = [ROOT / "README.md", *(ROOT / "docs" / f"{page}.md" for page in PAGES)]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
CURL = re.compile(r"(^|[\s($|])curl\s")
# Every curl reports its status, its expectation and where it is in the docs to $DOC_LOG.
PRELUDE = r"""set -euo pipefail
curl() {
  local out rc=0
  { out=$(command curl -S "$@" -w '%{stderr}\n%{http_code}' 2>&1 >&3) || rc=$?; } 3>&1
  printf '%s %s %s\n' "$DOC_AT" "$DOC_EXPECT" "${out##*$'\n'}" >> "$DOC_LOG"
  if [[ $rc != 0 ]]; then printf '%s: %s\n' "$DOC_AT" "$out" >&2; fi
  return $rc
}
"""


def annotated(block: str, where: str, first_line: int) -> tuple[str, list[str]]:
    """The block with `DOC_AT=<file:line> DOC_EXPECT=<status or ->` set before each curl
    command, and those places. A command runs on while a line ends in a backslash or leaves a
    single quote open."""
    lines, out, places, comments = block.splitlines(), [], [], []
    start = 0
    while start < len(lines):
        end, quoted, comment = start, False, lines[start].lstrip().startswith("#")
        while not comment:
            quoted ^= lines[end].split(" #")[0].count("'") % 2 == 1
            if end + 1 == len(lines) or not (quoted or lines[end].endswith("\\")):
                break
            end += 1
        command = lines[start : end + 1]
        if not comment and CURL.search(" ".join(command)):
            said = [re.search(r"->\s*(\d{3})\b", line) for line in comments]
            said += [re.search(r"\s#\s*(\d{3})\b", line) for line in command]
            expect = next((match[1] for match in said if match), "-")
            place = f"{where}:{first_line + start}"
            out.append(f"DOC_AT={place} DOC_EXPECT={expect}")
            places.append(place)
        comments = [*comments, *command] if comment else []
        out += command
        start = end + 1
    return "\n".join(out), places


def script(base: str) -> tuple[str, list[str]]:
    """The bash script of every runnable block, in order, and the places of its curls."""
    parts, places = [PRELUDE], []
    for path in DOCS:
        text = path.read_text()
        for block in BLOCK.finditer(text):
            if CURL.search(block[1]):
                line = text.count("\n", 0, block.start(1)) + 1
                body, found = annotated(block[1], path.relative_to(ROOT).as_posix(), line)
                parts.append(body.replace("http://127.0.0.1:8000", base))
                places += found
    return "\n".join(parts) + "\n", places


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app as `make run` serves it (gunicorn, a fresh SQLite demo database), on a free
    port; yields its base URL, its environment and a scratch folder."""
    folder = tmp_path_factory.mktemp("docs-examples")
    env = service_env(f"sqlite:///{folder / 'tickets.db'}", WEBHOOK_ALLOW_PRIVATE="1")
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # `flask --app wsgi` from the scratch folder
    for command in (["db", "upgrade"], ["seed-demo"]):
        flask = [BIN / "flask", "--app", "wsgi", *command]
        subprocess.run(flask, cwd=ROOT, env=env, check=True, timeout=60)
    with gunicorns(folder, env) as [base]:
        yield base, env, folder


def test_every_docs_page_is_run():
    assert sorted(PAGES) == sorted(path.stem for path in (ROOT / "docs").glob("*.md"))


@pytest.mark.slow
def test_the_curl_examples_answer_as_the_docs_say(live_app):
    base, env, folder = live_app
    text, places = script(base)
    log = folder / "statuses.log"
    run = subprocess.run(
        ["bash", "-c", text], cwd=folder, env={**env, "DOC_LOG": str(log)}, capture_output=True
    )
    assert run.returncode == 0, f"the examples stopped:\n{run.stderr.decode()}"
    seen = [line.split() for line in log.read_text().splitlines()]
    wrong = [
        f"{place}: expected {'success' if expect == '-' else expect}, got {status}"
        for place, expect, status in seen
        if not 100 <= int(status) < 500  # no answer, or a server error
        or (status != expect if expect != "-" else int(status) >= 400)
    ]
    assert not wrong, "\n".join(wrong)
    assert [place for place, _, _ in seen] == places  # each curl ran once, in order
