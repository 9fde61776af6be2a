"""The runtime matrix as a pytest plugin (``tests/test_runtime_matrix.py`` holds its tests): the options, the
profiles as a session-scoped parameter, the fixtures each profile's steps build on, and the table of
profile x step at the end of the run.

    make test-runtimes                                   # every profile, then the MiniLM move latest -> fabric-1.3
    make test-runtimes RUNTIMES="fabric-1.3 latest" MOVE_MODEL=tiny MOVE_REVIEWS=200   # what CI runs
    pytest -m runtimes tests/test_runtime_matrix.py --runtimes fabric-1.3 -k "merge or sql"

Fixtures chain per profile: ``venv`` -> ``installed`` -> ``lane`` (a scratch folder) -> ``platform`` (with
the Connect server where the profile is Connect-only) -> ``trained`` -> ``ingested``; a failure fails every
test that builds on it, once, with its reason. Parametrized at session scope, a profile's fixtures are set up
when its first test runs and torn down (server stopped, scratch removed) before the next profile's. The tests
carry the ``runtimes`` marker, which ``make test`` excludes; without ``-m runtimes`` they are skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from support.lanes import REVIEWS, ConnectServer, Lane, Runtimes, ingest, train
from support.runtimes import Profile, cpu_model, load_profile, profile_names, table

RESULTS = pytest.StashKey[dict[str, dict[str, list]]]()
STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runtime matrix", "tests/test_runtime_matrix.py (make test-runtimes)")
    group.addoption(
        "--runtimes", default="", help=f"profiles, space or comma separated (default: all of {profile_names()})"
    )
    group.addoption(
        "--move",
        default="",
        metavar="SOURCE:TARGET",
        help="also move a model trained in SOURCE's venv into TARGET's MLflow store and compare labels there",
    )
    group.addoption("--move-model", default="minilm", choices=("minilm", "tiny"), help="the moved model")
    group.addoption("--move-reviews", type=int, default=500, help="IMDB test reviews scored on both sides")
    group.addoption("--keep-scratch", action="store_true", help="keep the lanes' scratch folders (printed)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = {}
    config.stash[STARTED] = time.perf_counter()


def selected_profiles(config: pytest.Config) -> list[str]:
    names = config.getoption("runtimes").replace(",", " ").split() or profile_names()
    for name in names:
        load_profile(name)  # an unknown name is a usage error, named before anything runs
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "profile_name" in metafunc.fixturenames:
        metafunc.parametrize("profile_name", selected_profiles(metafunc.config), scope="session")
    if "move_spec" in metafunc.fixturenames:
        moves = metafunc.config.getoption("move").split()
        for spec in moves:
            if len(spec.split(":")) != 2:
                raise pytest.UsageError(f"--move {spec}: expected SOURCE:TARGET, two profile names")
            for name in spec.split(":"):
                load_profile(name)
        metafunc.parametrize("move_spec", moves, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # no --move: the move's tests have an empty parameter set; they are left out, not reported as skipped
    unasked = [item for item in items if not isinstance(parameter(item, "move_spec", ""), str)]
    if unasked:
        config.hook.pytest_deselected(items=unasked)
        items[:] = [item for item in items if item not in unasked]
    if "runtimes" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the runtime matrix runs with -m runtimes (make test-runtimes)")
    for item in items:
        if item.get_closest_marker("runtimes"):
            item.add_marker(skip)


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def runtimes(request: pytest.FixtureRequest) -> Iterator[Runtimes]:
    shared = Runtimes(keep=request.config.getoption("keep_scratch"))
    yield shared
    for folder in shared.close():
        print(f"kept {folder}")


@pytest.fixture(scope="session")
def profile(profile_name: str) -> Profile:
    return load_profile(profile_name)


@pytest.fixture(scope="session")
def venv(runtimes: Runtimes, profile: Profile):
    """The profile's venv: ``(path, built)``, built once and cached in ``.runtimes/`` until its file changes."""
    return runtimes.venv(profile)


@pytest.fixture(scope="session")
def installed(runtimes: Runtimes, profile: Profile, venv) -> str:
    """The wheel pip-installed on the runtime's packages, none of them changed; what it added."""
    return runtimes.install(profile)


@pytest.fixture(scope="session")
def lane(runtimes: Runtimes, profile: Profile, installed: str) -> Iterator[Lane]:
    """The end-to-end path's lane of the profile: its scratch folder is gone once the profile's tests ran."""
    lane = runtimes.lane(profile, "e2e")
    yield lane
    runtimes.discard(lane.scratch)


@pytest.fixture(scope="session")
def connect_server(lane: Lane) -> Iterator[str]:
    """A Spark Connect server over the lane's catalog, stopped after the profile's tests: its ``sc://`` URL."""
    server = ConnectServer(lane)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def platform(lane: Lane, request: pytest.FixtureRequest) -> Lane:
    """The lane as the platform runs its jobs: on a Connect-only runtime the server stands for the platform
    and every job is its client."""
    if lane.profile.remote_only:
        request.getfixturevalue("connect_server")
    return lane


@pytest.fixture(scope="session")
def trained(platform: Lane) -> Lane:
    """Version 1 of the tiny model trained on IMDB reviews and registered (@champion, @candidate)."""
    platform.once("train", lambda: train(platform, seed=42, steps=4))
    return platform


@pytest.fixture(scope="session")
def ingested(trained: Lane) -> Lane:
    """200 unlabeled IMDB test reviews in the Delta table ``reviews``."""
    trained.once("ingest", lambda: ingest(trained, "reviews", REVIEWS))
    return trained


# --- the table ----------------------------------------------------------------------------------------------


def parameter(item: pytest.Item, name: str, default=None):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name, default) if callspec else default


def cell(item: pytest.Item) -> tuple[str, str] | None:
    """``(column, step)`` of a matrix test: the profile (or the move), and the test's name with its engine."""
    if not item.get_closest_marker("runtimes"):
        return None
    profile, move = parameter(item, "profile_name"), parameter(item, "move_spec")
    if profile is None and move is None:
        return None
    column = profile or f"move {move}"
    step = item.originalname.removeprefix("test_").replace("_", " ")
    engine = parameter(item, "engine")
    return column, f"{step}:{engine}" if engine else step


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    where = cell(item)
    if where is None or (report.when == "teardown" and report.passed):
        return
    column, step = where
    entry = item.config.stash[RESULTS].setdefault(column, {}).setdefault(step, ["ok", 0.0, ""])
    entry[1] += report.duration
    if report.failed:
        entry[0] = "FAIL"
    elif report.skipped and entry[0] == "ok":
        entry[0] = "skip"
        entry[2] = report.longrepr[2].removeprefix("Skipped: ") if isinstance(report.longrepr, tuple) else ""
    for name, value in report.user_properties:
        if name == "note":
            entry[2] = str(value)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, {})
    if not results:
        return
    minutes = (time.perf_counter() - config.stash[STARTED]) / 60
    cells = {column: {step: (e[0], e[1]) for step, e in steps.items()} for column, steps in results.items()}
    terminalreporter.section("runtime matrix")
    terminalreporter.write_line(
        f"Runtime matrix on {cpu_model()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}: {minutes:.1f} min"
    )
    for line in table(cells).splitlines():
        terminalreporter.write_line(line)
    for column, steps in results.items():
        for step, (outcome, _, note) in steps.items():
            if note:
                terminalreporter.write_line(f"{column} / {step}: {outcome} {note}"[:300])
