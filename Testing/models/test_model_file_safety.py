"""Names from outside (model cards, catalogs, zip entries, download headers) never reach outside their folder: each
field and each entry point is tried with a traversal, and must fail with a clear error with nothing written
elsewhere. A 'victim' file beside the folders stands for ~/.bashrc."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import hsam
from hsam.cli import main
from hsam.weights import CheckpointError
from hsam.models.catalog import CatalogError, RemoteFile, load_catalog
from hsam.models.download import download
from hsam.models.install import import_path
from hsam.models.model_dir import find_base_weights
from hsam.models.registry import verify
from hsam.models.safe_path import UnsafeNameError, contained
from hsam.progress import JsonLinesReporter

PRECIOUS = "precious user data\n"
UNSAFE_NAMES = ["../victim", "../../victim", "/etc/passwd", "C:victim", "C:\\victim", "..\\victim", "a/../../victim",
                "", ".", "..", "CON", "nul.txt", "victim.", "a\0b"]


def _quiet():
    import io
    return JsonLinesReporter(io.StringIO())


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("HSAM_CATALOG", raising=False)
    monkeypatch.setenv("HSAM_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "victim").write_text(PRECIOUS)  # what '../../../victim' from a staging folder reaches
    (tmp_path / "victim").write_text(PRECIOUS)
    return tmp_path / "home"


def _untouched(tmp_path, home):
    assert (tmp_path / "victim").read_text() == PRECIOUS and (home / "victim").read_text() == PRECIOUS
    models = home / "models"
    assert not models.exists() or not any(p.is_file() for p in models.rglob("*")), list(models.rglob("*"))


def _edited_copy(tiny, folder, **changes):
    copy = shutil.copytree(tiny, folder)
    card = json.loads((copy / "model.json").read_text())
    for key, value in changes.items():
        card[key] = value(card[key]) if callable(value) else value
    (copy / "model.json").write_text(json.dumps(card))
    return copy


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(UnsafeNameError) as exc:
        contained(tmp_path, name, "zip entry", flat=False)
    assert "zip entry" in str(exc.value) and "refused" in str(exc.value)


def test_safe_names_and_symlinks(tmp_path):
    assert contained(tmp_path, "weights.safetensors", "x") == tmp_path / "weights.safetensors"
    assert contained(tmp_path, "model/weights.safetensors", "x", flat=False) == tmp_path / "model/weights.safetensors"
    with pytest.raises(UnsafeNameError, match="a file name is expected"):
        contained(tmp_path, "model/weights.safetensors", "x")
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UnsafeNameError, match="symlink"):
        contained(tmp_path / "inside", "link", "model file")


def test_import_dir_refuses_a_backbone_filename_outside(home, tiny, tmp_path, capsys):
    """The reported attack: the card's base weights file name climbs out of both the source and the cache."""
    source = _edited_copy(tiny, tmp_path / "s1" / "s2" / "evil", backbone_weights={
        "source": "file", "filename": "../../../victim", "sha256": "0" * 64})
    (tmp_path / "victim").write_text("attacker's .bashrc\n")  # what the same name reaches from the source folder
    assert main(["models", "import", str(source)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hsam: error:") and "backbone_weights.filename" in err and "Traceback" not in err
    assert (home / "victim").read_text() == PRECIOUS
    assert not (home / "models").exists() or not any(p.is_file() for p in (home / "models").rglob("*"))


@pytest.mark.parametrize("name", ["../../../victim", "/etc/passwd", "..\\..\\victim", "C:victim"])
def test_import_dir_refuses_card_file_names_outside(home, tiny, tmp_path, name):
    sha = json.loads((tiny / "model.json").read_text())["files"]["weights.safetensors"]
    source = _edited_copy(tiny, tmp_path / "s1" / "s2" / "evil", files=lambda files: dict(files, **{name: sha}))
    with pytest.raises(ValueError, match="refused|invalid model card: files"):
        import_path(source, reporter=_quiet())
    _untouched(tmp_path, home)


def test_import_dir_refuses_a_symlink_out_of_the_model_folder(home, tiny, tmp_path):
    source = shutil.copytree(tiny, tmp_path / "linked")
    outside = shutil.copyfile(source / "weights.safetensors", tmp_path / "outside.safetensors")
    (source / "weights.safetensors").unlink()
    (source / "weights.safetensors").symlink_to(outside)
    with pytest.raises(UnsafeNameError, match="symlink"):
        import_path(source, reporter=_quiet())
    _untouched(tmp_path, home)


def _zip(path, entries, symlink=None):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, "../../victim")
    return path


@pytest.mark.parametrize("entry", ["../victim", "model/../../victim", "/tmp/victim", "C:/victim", "model\\..\\..\\v",
                                   "symlink"])
def test_import_zip_refuses_entries_outside(home, tiny, tmp_path, entry):
    files = {f"model/{f.name}": f.read_bytes() for f in tiny.iterdir()}
    archive = _zip(tmp_path / "evil.zip", files if entry == "symlink" else dict(files, **{entry: b"x"}),
                   symlink="model/link" if entry == "symlink" else None)
    with pytest.raises(ValueError) as exc:
        import_path(archive, reporter=_quiet())
    assert "unsafe entry" in str(exc.value) and "\n" not in str(exc.value)
    _untouched(tmp_path, home)
    assert not list(home.glob(".unzip-*"))


def test_catalog_names_are_checked(home, tmp_path, monkeypatch):
    def entry(**fields):
        base = dict(id="x", version="1", kind="model", title="", description="", backbone="", labels=[], license="",
                    install="bundled", path="bundled/x", files=[], requires=[])
        return dict(base, **fields)

    bad_entries = [
        entry(path="../../../home"),  # a bundled model's folder outside the catalog's
        entry(path="/etc"),
        entry(kind="base-weights", install="wheel", wheel={"distribution": "torch", "path": "../../../etc/passwd"}),
        entry(kind="base-weights", install="weights-file", files=[
            {"name": "../victim", "url": "http://127.0.0.1:1/x", "size": 1, "sha256": None}]),
    ]
    for bad in bad_entries:
        (tmp_path / "bad.json").write_text(json.dumps({"format": "hsam-catalog/1", "models": [bad]}))
        monkeypatch.setenv("HSAM_CATALOG", str(tmp_path / "bad.json"))
        with pytest.raises(CatalogError) as exc:
            load_catalog()
        assert "bad.json" in str(exc.value) and ("refused" in str(exc.value) or "not valid" in str(exc.value))


def test_download_refuses_a_name_outside_its_folder(home, tmp_path):
    with pytest.raises(UnsafeNameError):
        download(RemoteFile("../victim", "http://127.0.0.1:1/x", 1, "0" * 64), home / "weights", _quiet())
    _untouched(tmp_path, home)
    assert not (home / "weights").exists()


class _Disposition(BaseHTTPRequestHandler):
    body = b"weights" * 1000

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", 'attachment; filename="../../victim"; filename*=UTF-8\'\'..%2Fvictim')
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_a_download_header_does_not_choose_the_file_name(home, tmp_path, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Disposition)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = _Disposition.body
        remote = RemoteFile("w.pth", f"http://127.0.0.1:{server.server_address[1]}/w.pth", len(body),
                            hashlib.sha256(body).hexdigest())
        path = download(remote, home / "weights", _quiet())
    finally:
        server.shutdown()
    assert path == home / "weights" / "w.pth" and path.read_bytes() == body
    assert sorted(p.name for p in (home / "weights").iterdir()) == ["w.pth"]
    _untouched(tmp_path, home)


def test_loading_refuses_names_and_links_outside_the_model(home, tiny, tmp_path):
    spec = {"source": "file", "filename": "../../victim", "sha256": "0" * 64}
    with pytest.raises(UnsafeNameError, match="backbone_weights.filename"):
        find_base_weights(spec, tiny)
    linked = shutil.copytree(tiny, tmp_path / "linked")
    outside = shutil.copyfile(linked / "weights.safetensors", tmp_path / "outside.safetensors")
    (linked / "weights.safetensors").unlink()
    (linked / "weights.safetensors").symlink_to(outside)
    with pytest.raises(UnsafeNameError, match="symlink"):
        hsam.load_model(linked)


def test_verify_reports_an_unsafe_card_instead_of_failing(home, tiny):
    target = import_path(tiny, reporter=_quiet())
    card = json.loads((target / "model.json").read_text())
    card["files"]["../../victim"] = "0" * 64
    (target / "model.json").write_text(json.dumps(card))
    bad = [c for c in verify("tiny-liver") if c.problem]
    assert len(bad) == 1 and "../../victim" in bad[0].problem and os.path.basename(bad[0].path) == "model.json"


def test_a_file_named_zip_that_is_not_one(home, tmp_path, capsys):
    fake = tmp_path / "model.zip"
    fake.write_bytes(b"PK but not really a zip" * 100)
    assert main(["models", "import", str(fake)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hsam: error:") and "not a readable zip file" in err and "Traceback" not in err


def _zip_with(tiny, path, card_changes=None, extra=None, compression=zipfile.ZIP_DEFLATED):
    card = json.loads((tiny / "model.json").read_text())
    card.update(card_changes or {})
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("model/model.json", json.dumps(card))
        archive.write(tiny / "weights.safetensors", "model/weights.safetensors")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def test_a_zip_card_is_checked_before_anything_is_unpacked(home, tiny, tmp_path, capsys):
    """30 MB stored beside a broken card: refused for the card, and not a byte written."""
    archive = _zip_with(tiny, tmp_path / "big.zip", {"labels": "x"}, {"model/big.bin": bytes(30 << 20)},
                        compression=zipfile.ZIP_STORED)
    assert main(["models", "import", str(archive)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hsam: error:") and "big.zip:model/model.json: invalid model card: labels" in err
    assert [p.name for p in home.iterdir()] == ["victim"]


def test_a_zip_bomb_is_refused_before_unpacking(home, tiny, tmp_path):
    archive = _zip_with(tiny, tmp_path / "bomb.zip", extra={"model/weights.bin": bytes(50 << 20)})
    with pytest.raises(ValueError, match="zip bomb"):
        import_path(archive, reporter=_quiet())
    assert [p.name for p in home.iterdir()] == ["victim"]


def test_only_the_files_the_card_names_are_unpacked(home, tiny, tmp_path):
    archive = _zip_with(tiny, tmp_path / "extra.zip", extra={"model/notes.txt": b"x", "README": b"y"})
    target = import_path(archive, reporter=_quiet())
    assert sorted(p.name for p in target.iterdir()) == ["model.json", "weights.safetensors"]
    assert sorted(p.name for p in home.iterdir()) == ["models", "victim"]  # the unpacked copy is gone


def test_a_card_path_outside_the_model_is_not_read(home, tiny, tmp_path):
    """The card's ``path`` (where base weights were on the machine that wrote it) leads only to a file of exactly
    the card's file name, and only when the card pins its sha256."""
    outside = tmp_path / "elsewhere" / "base.pth"
    outside.parent.mkdir()
    outside.write_bytes(b"base weights")
    good = {"source": "file", "filename": "base.pth", "sha256": hashlib.sha256(b"base weights").hexdigest(),
            "path": str(outside)}
    assert find_base_weights(good, tiny) == outside
    unpinned = {k: v for k, v in good.items() if k != "sha256"}
    for spec in (dict(good, path="/etc/passwd"), dict(good, path=str(outside.with_name("other.pth"))),
                 dict(good, path="elsewhere/base.pth"), unpinned):
        with pytest.raises(CheckpointError, match="base weights base.pth not found"):
            find_base_weights(spec, tiny)
    card = json.loads((tiny / "model.json").read_text())
    model = shutil.copytree(tiny, tmp_path / "model")
    (model / "model.json").write_text(json.dumps(dict(card, backbone_weights={
        "source": "file", "filename": "sam_vit_b_01ec64.pth", "sha256": "0" * 64, "path": "/etc/passwd"})))
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model(model)
    assert "sam_vit_b_01ec64.pth not found" in str(exc.value) and "passwd" not in str(exc.value)
