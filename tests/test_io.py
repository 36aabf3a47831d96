"""Atomic writes leave either the old file or the complete new one, never a partial file."""

from __future__ import annotations

import json

import pytest

from ltbench.errors import LtbenchError
from ltbench.io import atomic_open, read_json, read_yaml, write_json


def test_write_json_round_trip(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"x": 1})
    assert read_json(path) == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_failed_write_keeps_old_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"old": True})
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write('{"new": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [("", "empty"), ('{"a": [1, 2', "truncated"), ("{'a': 1}", "line 1")],
)
def test_read_json_errors_name_file_and_problem(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LtbenchError) as info:
        read_json(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_read_missing_and_bad_yaml(tmp_path):
    with pytest.raises(LtbenchError, match="file not found"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(LtbenchError, match=r"bad.yaml: invalid YAML at line"):
        read_yaml(bad)


def test_atomic_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os

    path = tmp_path / "table.md"
    write_json(path, {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_install_file_renames_a_complete_file_into_place(tmp_path):
    from ltbench.io import install_file

    part = tmp_path / "w.pth.part"
    part.write_bytes(b"weights")
    (tmp_path / "w.pth").write_bytes(b"old")
    install_file(part, tmp_path / "w.pth")
    assert (tmp_path / "w.pth").read_bytes() == b"weights" and not part.exists()
    (tmp_path / "sub").mkdir()
    other = tmp_path / "sub" / "x.part"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="folder"):
        install_file(other, tmp_path / "x")
    assert other.exists() and not (tmp_path / "x").exists()
