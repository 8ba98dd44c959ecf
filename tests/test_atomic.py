"""The overwrite policy of `stages.common.atomic`: what may be replaced, what never is, and
racing writers that leave one complete output and no temporary."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import tree_snapshot

from stages.common.atomic import (
    VERSION_KEY,
    atomic_path,
    check_destination,
    folder_with,
    json_file,
    write_text,
)
from stages.common.errors import MotionsegError

RUN = folder_with("run folder", "run.json")
SCORES = json_file("scores file")


def write_run(tmp: Path, payload: str) -> None:
    tmp.mkdir()
    (tmp / "run.json").write_text(json.dumps({VERSION_KEY: "test", "payload": payload}))
    (tmp / "data.txt").write_text(payload * 1000)


def test_missing_empty_and_own_outputs_are_replaced(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for payload in ("first", "second"):
        with atomic_path(out, RUN) as tmp:
            write_run(tmp, payload)
        assert (out / "data.txt").read_text() == payload * 1000
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_path(empty, RUN) as tmp:
        write_run(tmp, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "run"]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: (p.mkdir(), (p / "mine.txt").write_text("keep")),
        lambda p: p.write_text("keep"),
        lambda p: (p.mkdir(), (p / "run.json").write_text('{"payload": "no version key"}')),
        lambda p: (p.mkdir(), (p / "run.json").write_text("not json")),
        lambda p: (p.mkdir(), (p / "run.json").mkdir()),
        lambda p: p.symlink_to(p.parent / "elsewhere"),
    ],
    ids=["user-folder", "user-file", "foreign-run-json", "bad-json", "json-is-a-folder", "link"],
)
def test_anything_else_is_refused_and_untouched(tmp_path: Path, make) -> None:
    out = tmp_path / "run"
    make(out)
    before = tree_snapshot(tmp_path)
    refused = pytest.raises(MotionsegError, match=f"{out}: exists and is not a run folder")
    with refused, atomic_path(out, RUN) as tmp:
        write_run(tmp, "x")
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("dest", [".", "..", "../..", "", " ", "./", "a/..", "a/b/../.."])
def test_current_folder_and_above_are_refused(tmp_path, dest, monkeypatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "run.json").write_text(json.dumps({VERSION_KEY: "looks ours"}))
    monkeypatch.chdir(tmp_path / "a" / "b")
    message = "empty output path" if not dest.strip() else "current folder or one above it"
    with pytest.raises(MotionsegError, match=message):
        check_destination(dest, RUN)


@pytest.mark.parametrize(
    ("dest", "inputs", "message"),
    [
        ("in/v.mp4", ["in/v.mp4"], "is an input of this command"),
        ("in", ["in/v.mp4"], "holds an input"),
        (".", ["in/v.mp4"], "current folder"),
        ("in/./v.mp4", ["in/v.mp4"], "is an input of this command"),
        ("link", ["in/v.mp4"], "is an input of this command"),  # a link to the input
    ],
)
def test_inputs_and_folders_holding_them_are_refused(tmp_path, dest, inputs, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "v.mp4").write_text(json.dumps({VERSION_KEY: "even if it looks ours"}))
    (tmp_path / "link").symlink_to(tmp_path / "in" / "v.mp4")
    with pytest.raises(MotionsegError, match=message):
        write_text(dest, "{}", SCORES, inputs)
    assert json.loads((tmp_path / "in" / "v.mp4").read_text())[VERSION_KEY]


@pytest.mark.parametrize("dest", ["notes.txt/out.json", "notes.txt/a/b/out.json"])
def test_a_parent_that_is_a_file_is_named(tmp_path: Path, dest: str) -> None:
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(MotionsegError, match="its parent .*notes.txt is a file, not a folder"):
        write_text(tmp_path / dest, "{}", SCORES)
    assert (tmp_path / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_output_and_leaves_no_temporary(tmp_path, error) -> None:
    out = tmp_path / "run"
    with atomic_path(out, RUN) as tmp:
        write_run(tmp, "old")
    with pytest.raises(error), atomic_path(out, RUN) as tmp:
        write_run(tmp, "new")
        raise error
    assert (out / "data.txt").read_text() == "old" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize("writers", [2, 8])
@pytest.mark.parametrize("existing", [False, True])
def test_racing_writers_leave_one_complete_output_and_no_temporary(tmp_path, writers, existing):
    out = tmp_path / "run"
    if existing:
        with atomic_path(out, RUN) as tmp:
            write_run(tmp, "old")
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []
    crashes: list[BaseException] = []

    def write(payload: str) -> None:
        try:
            with atomic_path(out, RUN) as tmp:
                write_run(tmp, payload)
                barrier.wait()  # every writer commits at the same moment
        except MotionsegError as err:
            errors.append(err)
        except Exception as err:  # anything else (a bare FileNotFoundError) is a bug
            crashes.append(err)

    threads = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not crashes
    assert len(errors) < writers  # at least one wins; a loser fails with a clear message
    payload = json.loads((out / "run.json").read_text())["payload"]
    assert (out / "data.txt").read_text() == payload * 1000  # one writer's output, whole
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
