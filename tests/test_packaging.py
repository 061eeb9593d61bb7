"""A package ready to publish, and the errors a new user meets first.

The wheel is built here (with hatchling, from the dev extra) and its files and metadata
checked; the CLI tells its version and its commands; a bad database URL, a missing extra
or a missing folder gives one line saying what to do, from Python and from the CLI; a
stopped runtime says it is stopped.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import langgraph_scheduler
from langgraph_scheduler import Interval, NotRunning, SchedulerRuntime, StoreError
from langgraph_scheduler.cli import main
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import open_store

from .helpers import build_graph

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = langgraph_scheduler.__version__
PACKAGE = ROOT / "plugin" / "langgraph_scheduler"


# -- version, licence, changelog -------------------------------------------------------


def test_the_version_has_one_source() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", VERSION)
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "plugin/langgraph_scheduler/__init__.py"
    # What pip installed says the same (an editable install made before a version change
    # needs `pip install -e .` again).
    assert importlib.metadata.version("langgraph-scheduler") == VERSION


def test_the_licence_is_mit_and_ships() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the langgraph-scheduler authors$", text, re.M)
    assert "The above copyright notice and this permission notice shall be included" in text
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_the_changelog_has_this_version_and_the_last_release() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    release = re.match(r"\d+\.\d+\.\d+", VERSION)
    assert release is not None
    assert f"## [{release.group()}]" in text and "## [0.1.0]" in text
    if ".dev" in VERSION:
        assert f"## [{release.group()}] - Unreleased" in text


def test_local_state_is_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for entry in (".langgraph_api/", "*.db", "dist/", ".venv/"):
        assert entry in ignored, entry


# -- the wheel and the source distribution --------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist, built in-process by hatchling (no network, no pip)."""
    pytest.importorskip("hatchling", reason="building the wheel needs the dev extra")
    if not PACKAGE.is_dir():
        pytest.skip("the wheel is built from a source checkout (this run tests an installed one)")
    from hatchling.builders.sdist import SdistBuilder
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("dist")
    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])))
    sdist = next(iter(SdistBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])))
    return {"wheel": Path(wheel), "sdist": Path(sdist)}


def test_the_wheel_holds_the_package_its_data_and_the_licence(built: dict[str, Path]) -> None:
    wheel = built["wheel"]
    assert wheel.name == f"langgraph_scheduler-{VERSION}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"langgraph_scheduler/{p.name}" for p in PACKAGE.glob("*.py")}
    assert modules <= names, sorted(modules - names)
    prompts = {f"langgraph_scheduler/prompts/{p.name}" for p in (ROOT / "prompts").glob("*.md")}
    assert prompts and prompts <= names
    assert "langgraph_scheduler/py.typed" in names
    dist_info = f"langgraph_scheduler-{VERSION}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "graphs")]


def test_the_wheels_metadata(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        dist_info = f"langgraph_scheduler-{VERSION}.dist-info"
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert f"\nVersion: {VERSION}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata
    assert "\nLicense-File: LICENSE\n" in metadata
    assert "\nRequires-Python: >=3.10\n" in metadata
    for extra in ("postgres", "agents", "dev"):
        assert f"\nProvides-Extra: {extra}\n" in metadata
    assert "Requires-Dist: langgraph<2,>=1.0" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    assert "langgraph-scheduler = langgraph_scheduler.__main__:main" in entry_points


def test_the_sdist_holds_what_the_tests_and_the_licence_need(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "langgraph.json"):
        assert needed in names, needed
    assert "plugin/langgraph_scheduler/py.typed" in names
    assert "tests/conftest.py" in names and "prompts/system_prompt.md" in names
    # Test data the ignore rules would drop (a *.db file), so the suite runs from the sdist:
    data = {f"tests/data/{p.name}" for p in (ROOT / "tests" / "data").iterdir()}
    assert data and data <= names, sorted(data - names)


def test_the_installed_package_finds_its_prompts() -> None:
    from langgraph_scheduler.prompts import load_prompt

    for path in (ROOT / "prompts").glob("*.md"):
        assert load_prompt(path.name).strip()


# -- the command line ------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"langgraph-scheduler {VERSION}\n"


def test_a_bare_command_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: langgraph-scheduler")
    for command in ("demo", "serve", "tasks", "runs", "transcript", "--version"):
        assert command in out


def test_the_package_imports_its_names_on_first_use() -> None:
    # So that the command line takes a Ctrl-C from its start: the package imported
    # LangChain, LangSmith and LangGraph (a second or more) before any of its code ran.
    heavy = ("langchain", "langchain_core", "langgraph", "langsmith", "sqlalchemy")
    code = (
        "import sys, langgraph_scheduler, langgraph_scheduler.__main__\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
    assert langgraph_scheduler.__all__ == sorted(langgraph_scheduler.__all__)
    assert all(
        getattr(langgraph_scheduler, name) is not None for name in langgraph_scheduler.__all__
    )
    assert set(langgraph_scheduler.__all__) <= set(dir(langgraph_scheduler))


def test_public_modules_are_found_as_attributes_of_the_package() -> None:
    # As when the package imported its names eagerly: code that reaches a module through
    # the package (``langgraph_scheduler.webhooks.Webhook``) keeps working.
    code = (
        "import langgraph_scheduler as lgs\n"
        "print(lgs.webhooks.Webhook.__name__, lgs.store.open_store.__name__)\n"
        "for name in ('nothing_here', '_bridge_x'):\n"
        "    try:\n"
        "        getattr(lgs, name)\n"
        "    except AttributeError as exc:\n"
        "        print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Webhook open_store",
        "module 'langgraph_scheduler' has no attribute 'nothing_here'",
        "module 'langgraph_scheduler' has no attribute '_bridge_x'",
    ]


def test_the_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langgraph_scheduler", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == f"langgraph-scheduler {VERSION}\n"


# -- one-line errors that say what to do -----------------------------------------------

BAD_URLS = [
    pytest.param(
        "foo",
        r"^database URL 'foo' is not a URL: for a SQLite file write sqlite:///foo; or use "
        r"sqlite:// \(memory\) or postgresql://user@host/dbname$",
        id="a-word",
    ),
    pytest.param(
        "sqlite:/rel.db",
        r"^malformed SQLite URL 'sqlite:/rel\.db': a file is sqlite:///rel\.db \(relative "
        r"path\) or sqlite:////rel\.db \(absolute path\)",
        id="one-slash",
    ),
    pytest.param(
        "sqlite://rel.db",
        r"^malformed SQLite URL 'sqlite://rel\.db': a file is sqlite:///rel\.db",
        id="two-slashes",
    ),
    pytest.param(
        "mysql://app@db/agents",
        r"^unsupported database URL 'mysql://app@db/agents': use sqlite:///path/to/file\.db",
        id="unknown-database",
    ),
    pytest.param(
        "postgresql://app:s3cret@db:port/agents",
        r"^malformed database URL 'postgresql://app:\*\*\*@db:port/agents' \(the port must "
        r"be a number\)",
        id="bad-port-password-hidden",
    ),
    pytest.param(
        "postgresql://127.0.0.1/agents?colour=blue",
        r"^invalid PostgreSQL URL 'postgresql://127\.0\.0\.1/agents\?colour=blue' \(invalid URI "
        r"query parameter: \"colour\"\): the query may carry only libpq connection parameters",
        id="unknown-postgres-parameter",
    ),
    pytest.param(
        "postgresql+asyncpg://db/agents",
        r"^unsupported PostgreSQL driver 'asyncpg': use postgresql://",
        id="other-driver",
    ),
    pytest.param(
        "sqlite:///{tmp}/missing/scheduler.db",
        r"^no folder \S+/missing for the SQLite database \S+/missing/scheduler\.db: create it "
        r"\(mkdir -p \S+/missing\) or choose another path$",
        id="missing-folder",
    ),
    pytest.param(
        "sqlite:///{tmp}",
        r"^the SQLite database \S+ is a folder: name a file in it, e.g. sqlite:///\S+/scheduler\.db$",
        id="a-folder",
    ),
    pytest.param(
        "sqlite:///~/scheduler.db",
        r"^the SQLite path ~/scheduler\.db starts with ~, which a URL does not expand: write "
        r"the full path, e\.g\. sqlite:////",
        id="tilde",
    ),
    pytest.param(
        "",
        r"^no database URL given: use sqlite:///path/to/file\.db",
        id="empty",
    ),
    pytest.param(
        "sqlite:///{tmp}/scheduler.db?mode=ro&cached_statements=50",
        r"^the SQLite URL 'sqlite:///\S+/scheduler\.db\?mode=ro&cached_statements=50' has "
        r"query options the SQLite store does not support \(mode\): it accepts only "
        r"cached_statements and opens the file for reading and writing; write "
        r"sqlite:///\S+/scheduler\.db\?cached_statements=50$",
        id="sqlite-query-option",
    ),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
async def test_bad_urls_fail_in_one_line_from_python(
    url: str, message: str, tmp_path: Path
) -> None:
    url = url.replace("{tmp}", str(tmp_path))
    with pytest.raises(StoreError, match=message) as caught:
        open_store(url)
    assert "\n" not in str(caught.value) and caught.value.__cause__ is None
    runtime = SchedulerRuntime(None, database=url)
    with pytest.raises(StoreError, match=message):
        await runtime.start()
    assert not runtime.running


ADD = ["tasks", "add", "--schedule", "in 1 hour", "--prompt", "hi"]


@pytest.mark.parametrize(("url", "message"), [p for p in BAD_URLS if p.values[0]])
@pytest.mark.parametrize("command", [ADD, ["tasks", "list"], ["runs"]], ids=["add", "list", "runs"])
def test_bad_urls_fail_in_one_line_from_the_cli(
    url: str, message: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url.replace("{tmp}", str(tmp_path))
    if command != ADD and url.endswith("scheduler.db"):
        # Commands that only read refuse a file that is not there, before opening it.
        message = r"^no scheduler database at \S+scheduler\.db: pass --database"
    assert main([*command, "--database", url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.match(r"^error: " + message.lstrip("^"), captured.err), captured.err
    assert captured.err.count("\n") == 1


def test_the_cli_prints_no_traceback_for_a_bad_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "list", "--database", "foo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: database URL 'foo' is not a URL")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


POSTGRES_EXTRA = r'pip install "langgraph-scheduler\[postgres\]"'


@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool", "langgraph.checkpoint.postgres"])
def test_postgres_without_its_extra_names_the_pip_install(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    url = "postgresql://app@127.0.0.1/agents"
    expected = rf"^PostgreSQL needs the postgres extra \({module} is missing\): {POSTGRES_EXTRA}"
    with pytest.raises(StoreError, match=expected) as caught:
        open_store(url)
    assert "\n" not in str(caught.value)
    assert main(["tasks", "list", "--database", url]) == 1
    err = capsys.readouterr().err
    assert re.match(r"^error: " + expected.lstrip("^"), err) and err.count("\n") == 1


def test_postgres_without_its_extra_from_a_fresh_interpreter() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from langgraph_scheduler.cli import main\n"
        "raise SystemExit(main(['tasks', 'list', '--database', 'postgresql://app@db/agents']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert re.match(
        r"^error: PostgreSQL needs the postgres extra .*" + POSTGRES_EXTRA, result.stderr
    )


# -- a stopped runtime says so ---------------------------------------------------------


async def test_every_call_after_stop_raises_not_running(sqlite_url: str) -> None:
    runtime = SchedulerRuntime(build_graph(ScriptedChatModel()), database=sqlite_url)
    await runtime.start()
    task = await runtime.create_task(name="t", schedule=Interval(hours=1), trigger="hi")
    await runtime.stop()
    config: Any = {"configurable": {"thread_id": "t"}}
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "create_task": lambda: runtime.create_task(
            name="t", schedule=Interval(hours=1), trigger="hi"
        ),
        "get_task": lambda: runtime.get_task(task.id),
        "list_tasks": lambda: runtime.list_tasks(),
        "update_task": lambda: runtime.update_task(task.id, name="u"),
        "pause_task": lambda: runtime.pause_task(task.id),
        "resume_task": lambda: runtime.resume_task(task.id),
        "delete_task": lambda: runtime.delete_task(task.id),
        "run_now": lambda: runtime.run_now(task.id),
        "history": lambda: runtime.history(task.id),
        "transcript": lambda: runtime.transcript("t"),
        "get_run": lambda: runtime.get_run("r"),
        "deliveries": lambda: runtime.deliveries("r"),
        "next_run_times": lambda: runtime.next_run_times(task.id),
        "run_due": lambda: runtime.run_due(),
        "ainvoke": lambda: runtime.ainvoke({"messages": [("user", "hi")]}, config),
    }
    public = {
        name
        for name, _ in inspect.getmembers(SchedulerRuntime, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    # start() refuses with its own message, stop() does nothing, and wait_idle() returns
    # at once: nothing is in flight after a stop.
    assert public - {"start", "stop", "wait_idle"} == set(calls), "a new method: add it here"
    stopped = r"the runtime is stopped, and a stopped runtime does not start again: make a new"
    outcomes: dict[str, str] = {}
    for name, call in calls.items():
        try:
            await call()
            outcomes[name] = "returned"
        except NotRunning as exc:
            outcomes[name] = "stopped" if re.match(stopped, str(exc)) else str(exc)
        except Exception as exc:
            outcomes[name] = f"{type(exc).__name__}: {exc}"
    assert outcomes == dict.fromkeys(calls, "stopped")
    for name in ("graph", "store", "tasks", "checkpointer"):
        with pytest.raises(NotRunning, match=stopped):
            getattr(runtime, name)
    with pytest.raises(NotRunning, match=stopped):
        async with runtime.thread_lock("t"):
            pass
    with pytest.raises(NotRunning, match="cannot start from state 'stopped'; make a new one"):
        await runtime.start()
    await runtime.stop()  # again: nothing to do
    await runtime.wait_idle()
