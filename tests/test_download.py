"""``checkpoint:`` as an http(s) URL, against a real HTTP server on 127.0.0.1 (http.server in
a thread): downloaded once into the cache, checked against the sha256 prefix in its file
name as MMSeg's model zoo names files, one-line errors when offline or wrong, and a spec
that names a URL loads and keeps its config id wherever it is launched from."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import threading
from functools import partial
from pathlib import Path

import pytest
import yaml

from rewardsweep.download import cached_download, hash_prefix, is_url
from rewardsweep.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def server(tmp_path):
    """A folder served at http://127.0.0.1:<port>/ (a thread), and the paths it was asked for."""
    root = tmp_path / "zoo"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.requests
    httpd.shutdown()
    httpd.server_close()


def zoo_file(root: Path, stem: str, data: bytes) -> str:
    """A file named as MMSeg names its released checkpoints: ``<stem>-<sha256[:8]>.pth``."""
    name = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (root / name).write_bytes(data)
    return name


def test_a_zoo_url_is_downloaded_once_verified_and_reused(server, tmp_path):
    root, base, requests = server
    data = b"weights" * 1000
    name = zoo_file(root, "deeplabv3_r50-d8_512x1024_80k_cityscapes_20200606_113404", data)
    url = f"{base}/{name}"
    assert is_url(url) and hash_prefix(url) == hashlib.sha256(data).hexdigest()[:8]
    cache = tmp_path / "cache"
    path = cached_download(url, cache)
    assert path.read_bytes() == data and path.name == name
    assert path.with_name(name + ".sha256").read_text().strip() == hashlib.sha256(data).hexdigest()
    assert cached_download(url, cache) == path and requests == [f"/{name}"]     # once: the cache serves
    # a damaged cached copy is noticed and fetched again
    path.write_bytes(b"broken")
    assert cached_download(url, cache).read_bytes() == data and len(requests) == 2


def test_a_hash_that_does_not_match_is_refused_and_nothing_is_kept(server, tmp_path):
    root, base, _ = server
    (root / "model_20200605_094614-3769eecf.pth").write_bytes(b"not the released file")
    with pytest.raises(ConfigError, match=r"sha256 does not start with 3769eecf, the hash its name carries"):
        cached_download(f"{base}/model_20200605_094614-3769eecf.pth", tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_offline_and_missing_files_are_one_line(server, tmp_path):
    root, base, _ = server
    with pytest.raises(ConfigError) as info:
        cached_download(f"{base}/nothing-here-0123abcd.pth", tmp_path / "cache")
    assert str(info.value) == f"checkpoint: cannot download {base}/nothing-here-0123abcd.pth: HTTP 404 File not found"
    with socket.socket() as s:                                   # a port nobody listens on: offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError) as info:
        cached_download(f"http://127.0.0.1:{port}/m-0123abcd.pth", tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"checkpoint: cannot download http://127.0.0.1:{port}/")
    assert "Connection refused" in message and "give its path as checkpoint:" in message


def test_a_spec_with_a_url_loads_and_its_id_does_not_depend_on_where_it_is(tmp_path):
    from rewardsweep.sweep.spec import load_study

    raw = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    raw.pop("pretrain")
    raw["checkpoint"] = "http://127.0.0.1:9/zoo/deeplabv3_tiny_20200605_094614-3769eecf.pth"
    ids = []
    for folder in ("a", "b/c"):
        (tmp_path / folder).mkdir(parents=True)
        spec = tmp_path / folder / "url.yaml"
        spec.write_text(yaml.safe_dump(raw))
        study = load_study(spec)                                  # nothing is fetched to validate
        assert {p.config["checkpoint"] for p in study.expansion.trials} == {raw["checkpoint"]}
        ids.append(sorted(p.trial_name for p in study.expansion.trials))
    assert ids[0] == ids[1]


def test_ensure_start_evaluates_a_checkpoint_served_over_http(server, tmp_path, tiny_start):
    """The start resolution a launch runs: the URL's file is fetched once and evaluated."""
    from rewardsweep.runners.pretrain import ensure_start

    root, base, requests = server
    data = Path(tiny_start["checkpoint"]).read_bytes()
    name = zoo_file(root, "tiny_synthetic_20261206_000000", data)
    start = ensure_start("tiny-synthetic", f"{base}/{name}")
    assert start["miou"] == pytest.approx(tiny_start["miou"], abs=1e-9)   # the same weights
    assert Path(start["checkpoint"]).name == name and requests == [f"/{name}"]
    shutil.rmtree(root)                                              # the server is gone: the cache serves
    assert ensure_start("tiny-synthetic", f"{base}/{name}")["checkpoint"] == start["checkpoint"]
