"""Bad pipeline YAML: every file of the corpus must be rejected with `file:line:column`, by the loader, by
`cloudact pipelines validate`, and by the execute API (a 4xx naming the file and line, never a 500, never a run).

Corpora: tests/data/bad_pipelines/ and reliability/bad_pipelines/ (cases the first lacks). A file's first line may be
`# expect: <line>:<column> <part of the message>` (the convention of tests/unit/test_pipeline_validation.py); the
loader must then report exactly that position and text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reliability.drill import TENANT, embedded_drill
from reliability.harness import Figure, Options, figure, info, ratio

NAME = "bad YAML corpus"
REPO_ROOT = Path(__file__).resolve().parents[2]
CORPORA = (REPO_ROOT / "reliability" / "bad_pipelines", REPO_ROOT / "tests" / "data" / "bad_pipelines")
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")


def corpus() -> list[Path]:
    files: list[Path] = []
    for folder in CORPORA:
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return files


def expected_issue(text: str) -> tuple[int, int, str] | None:
    first = text.splitlines()[0] if text else ""
    match = EXPECT.match(first)
    return (int(match.group(1)), int(match.group(2)), match.group(3).strip()) if match else None


@dataclass
class LoaderVerdict:
    rejected: bool
    located: bool
    """Every issue reads `<the file>:<line>:<column>: ...` with a line inside the file."""
    as_expected: bool | None
    """The `# expect:` position and text were reported; None when the file states no expectation."""


def judge_with_loader(path: Path) -> LoaderVerdict:
    from shared.catalog.loader import PipelineValidationError, parse_pipeline

    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        parse_pipeline(text, str(path))
    except PipelineValidationError as exc:
        lines = max(1, len(text.splitlines()))
        pattern = re.compile(rf"^{re.escape(str(path))}:(\d+):(\d+): ")
        found = [pattern.match(str(issue)) for issue in exc.issues]
        located = bool(found) and all(m is not None and 1 <= int(m.group(1)) <= lines + 1 for m in found)
        want = expected_issue(text)
        as_expected = None
        if want is not None:
            line, column, words = want
            as_expected = any(i.line == line and i.column == column and words in str(i) for i in exc.issues)
        return LoaderVerdict(True, located, as_expected)
    except Exception:  # anything else escaping the loader is a crash, not a rejection
        return LoaderVerdict(False, False, False)
    return LoaderVerdict(False, False, False)


def judge_with_cli(files: list[Path]) -> list[Path]:
    """Files `cloudact pipelines validate` failed to report as file:line:col (it must also exit non-zero)."""
    cli = Path(sys.executable).with_name("cloudact")
    done = subprocess.run(
        [str(cli), "pipelines", "validate", *map(str, files)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if done.returncode == 0:
        return files
    output = done.stdout + done.stderr
    return [f for f in files if not re.search(rf"{re.escape(str(f))}:\d+:\d+: ", output)]


def judge_with_api(files: list[Path]) -> tuple[list[str], int, int]:
    """(files the execute API did not answer 4xx-with-file:line, 5xx answers, runs created)."""
    bad: list[str] = []
    server_errors = 0
    with embedded_drill() as drill:
        pipelines = drill.runtime.settings.config_dir / TENANT / "pipelines"
        names = {}
        for i, path in enumerate(files):
            pipeline_id = f"bad_{i:03d}"
            shutil.copyfile(path, pipelines / f"{pipeline_id}.yaml")
            names[pipeline_id] = path
        for pipeline_id, path in names.items():
            response = drill.execute(pipeline_id)
            text = f"{response.body.get('message', '')} {response.body.get('details', '')}"
            if response.status >= 500:
                server_errors += 1
            if not (400 <= response.status < 500 and re.search(rf"{pipeline_id}\.yaml:\d+", text)):
                bad.append(f"{path.name} -> {response.status} {str(response.body.get('message'))[:60]}")
        drill.runtime.wait_idle(30)
        created = sum(1 for _, doc in drill.state.list("runs") if str(doc.get("pipeline_id", "")).startswith("bad_"))
    return bad, server_errors, created


def run(options: Options) -> list[Figure]:
    files = corpus()
    verdicts = {path: judge_with_loader(path) for path in files}
    marked = [p for p, v in verdicts.items() if v.as_expected is not None]
    not_rejected = [p.name for p, v in verdicts.items() if not v.rejected]
    not_located = [p.name for p, v in verdicts.items() if not v.located]
    off_line = [p.name for p in marked if not verdicts[p].as_expected]
    cli_missed = [p.name for p in judge_with_cli(files)]
    api_missed, api_5xx, api_runs = judge_with_api(files)
    n = len(files)
    sources = ", ".join(str(c.relative_to(REPO_ROOT)) for c in CORPORA if c.is_dir())
    return [
        info(NAME, "files in the corpus", n, sources),
        figure(
            NAME,
            "rejected by the loader",
            ratio(n - len(not_rejected), n),
            not not_rejected,
            "100 %",
            ", ".join(not_rejected[:5]),
        ),
        figure(
            NAME,
            "every problem reported as file:line:column",
            ratio(n - len(not_located), n),
            not not_located,
            "100 %",
            ", ".join(not_located[:5]),
        ),
        figure(
            NAME,
            "reported at the `# expect:` line:column with its text",
            ratio(len(marked) - len(off_line), len(marked)),
            not off_line,
            "100 %",
            ", ".join(off_line[:5]),
        ),
        figure(
            NAME,
            "rejected by `cloudact pipelines validate` with file:line",
            ratio(n - len(cli_missed), n),
            not cli_missed,
            "100 %",
            ", ".join(cli_missed[:5]),
        ),
        figure(
            NAME,
            "rejected by the execute API with a 4xx naming file:line",
            ratio(n - len(api_missed), n),
            not api_missed,
            "100 %",
            "; ".join(api_missed[:3]),
        ),
        figure(NAME, "execute API 5xx answers for bad pipelines", api_5xx, api_5xx == 0, "0"),
        figure(NAME, "runs created from bad pipelines", api_runs, api_runs == 0, "0"),
    ]
