"""Pretrained weights: the plan's needs, fetching (download, verify, resume) and resolving, all offline.

A local HTTP server on 127.0.0.1 serves small fake files; the manifest's URLs and checksums are replaced by
ones that point at it (``manifest.FILES`` monkeypatched), so nothing here touches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from ltbench.cli import main
from ltbench.errors import LtbenchError
from ltbench.weights import cache as cache_mod
from ltbench.weights import fetch as fetch_mod
from ltbench.weights import manifest
from ltbench.weights.manifest import Use, WeightFile
from support.weights import paper_run

# ---- a local server ------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET with ``Range: bytes=N-`` and ``If-Range`` (ETag) support; can cut a response short or ignore ranges."""

    server_version = "fake/1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state  # type: ignore[attr-defined]
        state["requests"].append((self.path, self.headers.get("Range"), self.headers.get("If-Range")))
        body = state["files"].get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        start = 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and not state["ignore_range"] and (if_range is None or if_range == etag):
            match = re.fullmatch(r"bytes=(\d+)-", wanted)
            start = int(match.group(1)) if match else 0
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        payload = body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = state["cut"].get(self.path)
        if cut:  # send only part of the body, then drop the connection (a network failure mid-download)
            state["cut"][self.path] = cut[1:]
            self.wfile.write(payload[: cut[0]])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {"files": {}, "requests": [], "cut": {}, "ignore_range": False}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd, path: str) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


R50 = b"resnet-50 weights " * 5000  # ~90 kB: several 1 MiB-chunk-free reads, big enough to cut in the middle
D2 = b"detectron2 R-50.pkl " * 3000
COCO = b"coco faster r-cnn " * 4000


@pytest.fixture
def fake(server, monkeypatch, tmp_path):
    """Three fake files: a shared torchvision/mmdet ImageNet file with a published sha256 prefix, a detectron2
    file with nothing published (trust on first use), a COCO detector with a full published sha256."""
    files = server.state["files"]
    files["/models/resnet50-fake.pth"] = R50
    files["/detectron2/ImageNetPretrained/MSRA/R-50.pkl"] = D2
    files["/mmdetection/faster_2x_coco.pth"] = COCO
    fakes = (
        WeightFile(url=_url(server, "/models/resnet50-fake.pth"), what="fake ResNet-50", sha256_prefix=_sha(R50)[:8],
                   uses=(Use("torchvision/imagenet/r50", "torchvision fake", "test"),
                         Use("mmdet/imagenet/r50", "mmdet torchvision://resnet50", "test"))),
        WeightFile(url=_url(server, "/detectron2/ImageNetPretrained/MSRA/R-50.pkl"), what="fake R-50.pkl",
                   uses=(Use("detectron2/imagenet/r50", "detectron2 fake", "test"),)),
        WeightFile(url=_url(server, "/mmdetection/faster_2x_coco.pth"), what="fake COCO Faster R-CNN", sha256=_sha(COCO),
                   uses=(Use("mmdet/coco/faster_rcnn_r50_fpn", "mmdet load_from", "test"),)),
    )
    monkeypatch.setattr(manifest, "FILES", fakes)
    for var in (cache_mod.ENV_CACHE, cache_mod.ENV_FILES, cache_mod.ENV_MIRROR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cache_mod, "CONFIG_PATH", tmp_path / "no-config.yaml")
    return {weight_id: f for f in fakes for weight_id in f.ids}


@pytest.fixture
def settings(tmp_path):
    return cache_mod.load_settings(cache=tmp_path / "cache", environ={}, config_path=tmp_path / "no-config.yaml")


def _fetch(file, s, **kw):
    kw.setdefault("log", lambda m: None)
    kw.setdefault("sleep", lambda t: None)
    return fetch_mod.download(file, file.ids[0], s, **kw)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".part.json", ".tmp")))


# ---- fetch --------------------------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_records_the_full_sha256(fake, settings, server):
    file = fake["torchvision/imagenet/r50"]
    result = _fetch(file, settings)
    local = settings.local_path(file)
    assert result.startswith("downloaded, verified: the published prefix")
    assert local.read_bytes() == R50
    assert local.relative_to(settings.cache).as_posix() == f"127.0.0.1:{server.server_address[1]}/models/resnet50-fake.pth"
    lock = json.loads(settings.lock_path.read_text())
    assert lock["format"] == 1
    entry = lock["files"][file.relpath]
    assert entry["sha256"] == _sha(R50) and entry["size"] == len(R50) and entry["url"] == file.url
    assert _leftovers(settings.cache) == []


def test_fetch_is_idempotent_and_rehashes_what_is_there(fake, settings, server):
    file = fake["mmdet/coco/faster_rcnn_r50_fpn"]
    _fetch(file, settings)
    requests = len(server.state["requests"])
    again = _fetch(file, settings)
    assert again.startswith("present, verified: the published sha256 and weights.lock.json")
    assert len(server.state["requests"]) == requests  # nothing downloaded twice
    assert settings.local_path(file).read_bytes() == COCO


@pytest.mark.parametrize(("change", "expected"), [
    ({"sha256_prefix": "00000000"}, "starting with 00000000"),
    ({"sha256": "0" * 64}, "sha256 " + "0" * 64),
])
def test_checksum_mismatch_is_refused_and_leaves_no_file(fake, settings, change, expected):
    file = replace(fake["torchvision/imagenet/r50"], **change)
    with pytest.raises(LtbenchError, match="checksum mismatch") as info:
        _fetch(file, settings)
    text = str(info.value)
    assert expected in text and file.url in text and _sha(R50) in text and "torchvision/imagenet/r50" in text
    assert not settings.local_path(file).exists()
    assert _leftovers(settings.cache) == []
    assert cache_mod.read_lock(settings.cache) == {}


def test_first_fetch_records_the_sha256_and_later_fetches_verify_it(fake, settings, server):
    file = fake["detectron2/imagenet/r50"]
    assert _fetch(file, settings).endswith("nothing published: recorded now (trust on first use)")
    assert cache_mod.read_lock(settings.cache)[file.relpath]["sha256"] == _sha(D2)
    settings.local_path(file).unlink()
    server.state["files"]["/detectron2/ImageNetPretrained/MSRA/R-50.pkl"] = b"a different file " * 100
    with pytest.raises(LtbenchError, match="recorded in weights.lock.json at the first fetch"):
        _fetch(file, settings)
    assert not settings.local_path(file).exists() and _leftovers(settings.cache) == []


def test_a_damaged_cached_file_is_reported_not_trusted(fake, settings):
    file = fake["detectron2/imagenet/r50"]
    _fetch(file, settings)
    local = settings.local_path(file)
    local.write_bytes(b"X" * len(D2))  # same size, other bytes
    with pytest.raises(LtbenchError, match=f"delete {re.escape(str(local))}"):
        _fetch(file, settings)


def test_an_interrupted_download_resumes_with_a_range_request(fake, settings, server):
    file = fake["torchvision/imagenet/r50"]
    server.state["cut"]["/models/resnet50-fake.pth"] = [30000]  # the first response stops after 30000 bytes
    _fetch(file, settings, retries=2)
    assert settings.local_path(file).read_bytes() == R50
    ranges = [r for p, r, _ in server.state["requests"] if p == "/models/resnet50-fake.pth"]
    assert ranges == [None, "bytes=30000-"]
    assert _leftovers(settings.cache) == []


def test_a_partial_file_survives_failed_tries_and_the_next_fetch_resumes_it(fake, settings, server):
    file = fake["torchvision/imagenet/r50"]
    server.state["cut"]["/models/resnet50-fake.pth"] = [20000, 20000]
    with pytest.raises(LtbenchError, match="run the fetch again to resume") as info:
        _fetch(file, settings, retries=1)
    assert "40000 bytes are kept" in str(info.value)
    assert not settings.local_path(file).exists()  # never under the final name
    assert fetch_mod._part(settings.local_path(file)).stat().st_size == 40000
    _fetch(file, settings)
    assert settings.local_path(file).read_bytes() == R50
    assert server.state["requests"][-1][1] == "bytes=40000-"


def test_a_partial_file_of_a_changed_file_restarts_from_zero(fake, settings, server):
    file = fake["torchvision/imagenet/r50"]
    local = settings.local_path(file)
    local.parent.mkdir(parents=True)
    fetch_mod._part(local).write_bytes(b"bytes of an older version")
    fetch_mod._part_meta(local).write_text(json.dumps({"url": file.url, "validator": '"old-etag"'}))
    _fetch(file, settings)
    assert local.read_bytes() == R50
    assert server.state["requests"][-1][1:] == ("bytes=25-", '"old-etag"')  # asked to resume, got the whole file


def test_a_server_without_range_support_restarts_the_download(fake, settings, server):
    file = fake["torchvision/imagenet/r50"]
    server.state["ignore_range"] = True
    server.state["cut"]["/models/resnet50-fake.pth"] = [10000]
    _fetch(file, settings, retries=1)
    assert settings.local_path(file).read_bytes() == R50


def test_http_404_names_the_url_and_does_not_retry(fake, settings, server):
    file = replace(fake["torchvision/imagenet/r50"], url=_url(server, "/models/gone.pth"))
    with pytest.raises(LtbenchError, match=r"HTTP 404 .*gone\.pth"):
        _fetch(file, settings, retries=3)
    assert len(server.state["requests"]) == 1


def test_mirror_serves_the_cache_layout(fake, settings, server, tmp_path):
    file = fake["mmdet/coco/faster_rcnn_r50_fpn"]
    server.state["files"]["/mirror/" + file.relpath] = COCO
    del server.state["files"]["/mmdetection/faster_2x_coco.pth"]
    _fetch(file, settings, mirror=_url(server, "/mirror/"))
    assert settings.local_path(file).read_bytes() == COCO


# ---- the command line ---------------------------------------------------------------------------------


def test_dry_run_lists_every_file_with_its_source_and_downloads_nothing(fake, tmp_path, server, capsys):
    ids = ["mmdet/imagenet/r50", "detectron2/imagenet/r50", "mmdet/coco/faster_rcnn_r50_fpn", "torchvision/imagenet/r50"]
    args = ["weights", "fetch", "--dry-run", "--cache", str(tmp_path / "c")] + [w for i in ids for w in ("--id", i)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for file in fake.values():
        assert file.url in out and f"[missing] {file.name}" in out
    assert out.count("[missing]") == 3  # the torchvision and mmdet ids share one file
    assert "mmdet/imagenet/r50 (mmdet torchvision://resnet50)" in out and "torchvision/imagenet/r50 (torchvision fake)" in out
    assert f"sha256 prefix {_sha(R50)[:8]} (published in the file name)" in out
    assert "none published: the sha256 is recorded in weights.lock.json at the first fetch" in out
    assert "summary: 3 missing" in out
    assert "fetch them (on a machine with internet access): ltbench weights fetch --id mmdet/imagenet/r50" in out
    assert server.state["requests"] == []
    assert not (tmp_path / "c").exists()


def test_fetch_command_downloads_then_reports_present(fake, tmp_path, server, capsys):
    args = ["weights", "fetch", "--cache", str(tmp_path / "c"), "--id", "detectron2/imagenet/r50", "--id", "mmdet/imagenet/r50"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("[downloaded, verified") == 2 and "summary: 2 downloaded" in out
    assert main(args + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("[present]") == 2
    assert f"sha256 {_sha(D2)} (weights.lock.json, first fetched" in out and f"{len(D2)} bytes (weights.lock.json)" in out


def test_fetch_command_fails_with_every_problem_after_fetching_the_rest(fake, tmp_path, monkeypatch, capsys):
    broken = replace(fake["mmdet/coco/faster_rcnn_r50_fpn"], sha256="f" * 64)
    monkeypatch.setattr(manifest, "FILES", (fake["torchvision/imagenet/r50"], broken))
    args = ["weights", "fetch", "--cache", str(tmp_path / "c"), "--id", "mmdet/coco/faster_rcnn_r50_fpn",
            "--id", "mmdet/imagenet/r50", "--id", "torchvision/coco/htc_x101_64x4d_fpn"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "[failed]" in captured.out and "[downloaded, verified" in captured.out and "[no source]" in captured.out
    assert "2 weight file(s) not fetched" in captured.err and "checksum mismatch" in captured.err
    assert "torchvision/coco/htc_x101_64x4d_fpn: no known download" in captured.err


def test_fetch_needs_a_selection(fake, capsys):
    assert main(["weights", "fetch", "--dry-run"]) == 2
    assert "nothing selected" in capsys.readouterr().err


def test_dry_run_of_a_table_at_paper_scale(fake, tmp_path, capsys):
    assert main(["weights", "fetch", "--dry-run", "--cache", str(tmp_path / "c"), "tables/pcb_table2.md",
                 "--framework", "detectron2"]) == 0
    out = capsys.readouterr().out
    assert "1 file for 16 of 16 runs" in out
    assert "detectron2/imagenet/r50 (detectron2 fake): 16 runs, detectron2 mask_rcnn r50_fpn, pretrain imagenet" in out
    assert "fetch them (on a machine with internet access): ltbench weights fetch tables/pcb_table2.md " \
           "--framework detectron2 --cache " in out


# ---- resolve -----------------------------------------------------------------------------------------


def test_resolve_never_downloads_and_names_the_fetch_command(fake, settings, server):
    with pytest.raises(LtbenchError) as info:
        cache_mod.resolve(paper_run("mmdet"), settings=settings)
    text = str(info.value)
    local = settings.local_path(fake["mmdet/imagenet/r50"])
    assert f"looked for {local}" in text and "mmdet/imagenet/r50" in text and "resnet50-fake.pth" in text
    assert f"ltbench weights fetch --cache {settings.cache} --id mmdet/imagenet/r50" in text
    assert server.state["requests"] == []
    _fetch(fake["mmdet/imagenet/r50"], settings)
    requests = len(server.state["requests"])
    assert cache_mod.resolve(paper_run("mmdet"), settings=settings) == {"imagenet": local}
    assert cache_mod.resolve(paper_run("torchvision"), settings=settings) == {"imagenet": local}  # the same file
    assert len(server.state["requests"]) == requests


def test_resolve_what_each_run_needs(fake, settings):
    for file in fake.values():
        _fetch(file, settings)
    path = settings.local_path
    assert cache_mod.resolve(paper_run("detectron2"), settings=settings) == {"imagenet": path(fake["detectron2/imagenet/r50"])}
    coco = paper_run("mmdet", "coco", detector="faster_rcnn")
    assert cache_mod.resolve(coco, settings=settings) == {"coco": path(fake["mmdet/coco/faster_rcnn_r50_fpn"])}
    stage2 = {**coco, "stage1": "v0.5-faster-r50-random-ce-s0-12345678", "stage2": {"name": "bags"}}
    assert cache_mod.resolve(stage2, settings=settings) == cache_mod.resolve(coco, settings=settings)
    assert cache_mod.resolve({**coco, "pretrain": "lvis", "init_from": "x"}, settings=settings) == {}
    assert cache_mod.resolve({**coco, "pretrain": "none"}, settings=settings) == {}
    assert cache_mod.resolve({**paper_run("mmdet"), "scale": "smoke"}, settings=settings) == {}
    with pytest.raises(LtbenchError, match="no mmdet-convention download is known") as info:
        cache_mod.resolve(paper_run("mmdet", "coco", detector="htc", backbone="x101_64x4d_fpn"), settings=settings)
    assert "mmdet/coco/htc_x101_64x4d_fpn=PATH" in str(info.value)


def test_resolve_refuses_a_cached_file_whose_size_differs_from_the_lock(fake, settings):
    file = fake["mmdet/imagenet/r50"]
    _fetch(file, settings)
    settings.local_path(file).write_bytes(R50[:-1])
    with pytest.raises(LtbenchError, match="truncated or replaced"):
        cache_mod.resolve(paper_run("mmdet"), settings=settings)


def test_overrides_win_env_then_config_then_cache(fake, settings, tmp_path, monkeypatch):
    _fetch(fake["mmdet/imagenet/r50"], settings)
    mine_env, mine_config, mine_run = (tmp_path / n for n in ("env.pth", "config.pth", "run.pth"))
    for p in (mine_env, mine_config, mine_run):
        p.write_bytes(b"mine")
    config = tmp_path / "config.yaml"
    config.write_text(f"weights:\n  cache: {settings.cache}\n  files:\n    mmdet/imagenet/r50: {mine_config}\n")
    monkeypatch.setattr(cache_mod, "CONFIG_PATH", config)
    assert cache_mod.resolve(paper_run("mmdet")) == {"imagenet": mine_config}
    assert cache_mod.load_settings().cache == settings.cache
    monkeypatch.setenv(cache_mod.ENV_FILES, f"detectron2/imagenet/r50=/x.pkl,mmdet/imagenet/r50={mine_env}")
    assert cache_mod.resolve(paper_run("mmdet")) == {"imagenet": mine_env}
    monkeypatch.setenv(cache_mod.ENV_FILES, "")  # set but empty: no files of yours, the config's list is replaced
    assert cache_mod.resolve(paper_run("mmdet")) == {"imagenet": settings.local_path(fake["mmdet/imagenet/r50"])}
    run = paper_run("mmdet", model={"weights": str(mine_run)})
    assert cache_mod.resolve(run) == {"imagenet": mine_run}  # a path in the run config wins over everything
    monkeypatch.setenv(cache_mod.ENV_FILES, f"mmdet/imagenet/r50={tmp_path / 'missing.pth'}")
    with pytest.raises(LtbenchError, match=r"your file .*missing\.pth does not exist") as info:
        cache_mod.resolve(paper_run("mmdet"))
    assert "$LTBENCH_WEIGHT_FILES" in str(info.value)


def test_override_entries_are_checked(fake, monkeypatch, tmp_path):
    monkeypatch.setenv(cache_mod.ENV_FILES, "mmdet/imagenet/r50")
    with pytest.raises(LtbenchError, match="has no path"):
        cache_mod.load_settings()
    monkeypatch.setenv(cache_mod.ENV_FILES, "mmdet/resnet50=/a.pth")
    with pytest.raises(LtbenchError, match="is not a weight id"):
        cache_mod.load_settings()


def test_cache_location_precedence(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("LTBENCH_DATA", str(tmp_path / "data"))
    assert cache_mod.load_settings().cache == (tmp_path / "data" / "weights").resolve()
    config = tmp_path / "config.yaml"
    config.write_text("weights: {cache: relative/cache}\n")
    monkeypatch.setattr(cache_mod, "CONFIG_PATH", config)
    assert cache_mod.load_settings().cache == (cache_mod.paths.REPO_ROOT / "relative" / "cache").resolve()
    monkeypatch.setenv(cache_mod.ENV_CACHE, str(tmp_path / "env"))
    assert cache_mod.load_settings().cache == (tmp_path / "env").resolve()
    assert cache_mod.load_settings(cache=tmp_path / "opt").cache == (tmp_path / "opt").resolve()


def test_export_config_puts_the_workflow_block_in_the_environment(fake, tmp_path):
    environ: dict[str, str] = {}
    block = {"cache": str(tmp_path / "c"), "files": {"detectron2/imagenet/r50": "models/R-50.pkl"}}
    cache_mod.export_config(block, environ)
    assert environ[cache_mod.ENV_CACHE] == str((tmp_path / "c").resolve())
    assert environ[cache_mod.ENV_FILES] == f"detectron2/imagenet/r50={(cache_mod.paths.REPO_ROOT / 'models/R-50.pkl').resolve()}"
    assert cache_mod.load_settings(environ=environ).files["detectron2/imagenet/r50"].path.name == "R-50.pkl"
    user = {cache_mod.ENV_CACHE: str(tmp_path / "mine"), cache_mod.ENV_FILES: ""}
    cache_mod.export_config(block, user)  # what the user's shell already sets wins
    assert user == {cache_mod.ENV_CACHE: str((tmp_path / "mine").resolve()), cache_mod.ENV_FILES: ""}
    with pytest.raises(LtbenchError, match="contains a comma"):
        cache_mod.export_config({"files": {"mmdet/imagenet/r50": "/a,b.pth"}}, {})


def test_workflow_schema_checks_weight_ids():
    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from ltbench import paths

    schema = str(paths.WORKFLOWS / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((paths.WORKFLOWS / "config" / "config.yaml").read_text())
    assert config["weights"] == {"cache": None, "files": {}}
    validate({**config, "weights": {"files": {"mmdet/coco/faster_rcnn_r50_fpn": "/a.pth"}}}, schema)
    with pytest.raises(WorkflowError, match="resnet50"):
        validate({**config, "weights": {"files": {"mmdet/resnet50": "/a.pth"}}}, schema)
    empty: dict = {}
    validate(empty, schema)
    assert empty["weights"] == {"cache": None, "files": {}}
