"""The model registry: catalog, cache, imports, removal, verification, ``hsam models`` and registry ids in
``hsam.load_model``. Downloads use a real HTTP server on 127.0.0.1 and a site catalog (HSAM_CATALOG) pointing at it."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile

import pytest
from model_fixtures import tiny_liver_model_dir
import requests
import torch

import hsam
from hsam.cli import main
from hsam.weights import CheckpointError
from hsam.network.backbones import LITEMEDSAM_FILE, LITEMEDSAM_SHA256
from hsam.models.card import read_card
from hsam.models.catalog import (
    CATALOG_FILE,
    CatalogError,
    ModelNotFoundError,
    load_catalog,
)
from hsam.models.convert import SAM_URLS
from hsam.models.install import catalog_entry, download_entry, import_path
from hsam.models.registry import list_models, model_info, remove, verify
from hsam.progress import JsonLinesReporter

FAKE_SAM = b"not really SAM ViT-B" * 1000
SAM_NAME = "sam_vit_b_01ec64.pth"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "HSAM_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HSAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def site(home, tmp_path, server, tiny, monkeypatch):
    """A site catalog: sam-vit-b replaced by a mirror on the local server, a zipped model, a release checkpoint
    behind a Drive-style confirmation page, and a bundled model."""
    server.reset()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for f in tiny.iterdir():
            archive.write(f, f"tiny-liver/{f.name}")
    server.files.update({SAM_NAME: FAKE_SAM, "tiny.zip": buffer.getvalue(), "release.pth": b"release bytes"})
    shutil.copytree(tiny, tmp_path / "site" / "bundled" / "demo")

    def entry(model_id, install, files, kind="model", requires=(), **extra):
        return dict(id=model_id, version="1", kind=kind, title=f"{model_id} title", description="test entry",
                    backbone="sam_vit_b", labels=["liver"], license="test", install=install, files=files,
                    requires=list(requires), **extra)

    def served(name, route="files", url=None):
        data = server.files[name]
        return {"name": name, "url": url or f"{server.url}/{route}/{name}", "size": len(data), "sha256": _sha(data)}

    catalog = {"format": "hsam-catalog/1", "models": [
        entry("sam-vit-b", "weights-file", [served(SAM_NAME)], kind="base-weights"),
        entry("tiny-zip", "model-zip", [served("tiny.zip", "drip")]),
        entry("fake-release", "convert-official",
              [dict(served("release.pth", url=f"{server.url}/drive/uc?export=download&id=release.pth"),
                    sha256=None, size=None)], requires=["sam-vit-b"]),
        entry("bundled-demo", "bundled", [], path="bundled/demo"),
    ]}
    path = tmp_path / "site" / "catalog.json"
    path.write_text(json.dumps(catalog))
    monkeypatch.setenv("HSAM_CATALOG", str(path))
    return server


@pytest.fixture
def fake_convert(monkeypatch):
    """Conversion of a real ViT-B release takes minutes; the registry's part is what is tested here."""
    calls = []

    def convert(sam, release, out_dir, model_id=None):
        calls.append((sam, release))
        return tiny_liver_model_dir(out_dir, model_id)

    monkeypatch.setattr("hsam.models.convert.convert_official", convert)
    return calls


def _quiet():
    return JsonLinesReporter(io.StringIO())


def _one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_builtin_catalog():
    catalog = load_catalog()
    sizes = {"sam-vit-b": 375042383, "sam-vit-l": 1249524607, "sam-vit-h": 2564550879}
    for model_id, size in sizes.items():
        f = catalog[model_id].files[0]
        assert f.url == SAM_URLS[model_id.replace("-", "_")] and f.size == size and len(f.sha256) == 64
    assert catalog["sam-vit-b"].files[0].sha256.startswith("ec2df627")
    lite = catalog["litemedsam"]
    assert lite.wheel[1] == LITEMEDSAM_FILE and lite.files[0].sha256 == LITEMEDSAM_SHA256
    release = catalog["hsam-synapse-10pct"]
    assert "1A1wqTT_FD6FXzqCj9LNStxT425ZfYpnE" in release.files[0].url and release.files[0].sha256 is None
    assert release.requires == ("sam-vit-b",) and release.install == "convert-official" and len(release.labels) == 8
    assert catalog["hsam-abdomen-ct"].install == "bundled"


def test_catalog_entries_are_checked(home, tmp_path, monkeypatch):
    bad = {"format": "hsam-catalog/1", "models": [dict(id="../evil", version="1", kind="model", title="", labels=[],
                                                       description="", backbone="", license="", install="bundled",
                                                       path="x", files=[], requires=[])]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    monkeypatch.setenv("HSAM_CATALOG", str(tmp_path / "bad.json"))
    with pytest.raises(CatalogError, match="not valid"):
        load_catalog()


def test_import_directory_and_load_by_id(home, tiny):
    target = import_path(tiny, reporter=_quiet())
    assert target == home / "models" / "tiny-liver" / "1"
    model = hsam.load_model("tiny-liver")
    assert model.card["id"] == "tiny-liver" and hsam.load_model("tiny-liver@1").config.num_classes == 2
    assert {"id": "tiny-liver", "source": "local", "state": "installed"}.items() <= \
        next(r for r in list_models() if r["id"] == "tiny-liver").items()
    with pytest.raises(CheckpointError, match="already installed"):
        import_path(tiny, reporter=_quiet())
    import_path(tiny, force=True, reporter=_quiet())
    assert sorted(p.name for p in (home / "models" / "tiny-liver").iterdir()) == ["1"]


def test_import_zip(home, tiny, tmp_path):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in tiny.iterdir():
            z.write(f, f"exported/{f.name}")
    import_path(archive, model_id="from-zip", reporter=_quiet())
    assert hsam.load_model("from-zip").card["id"] == "from-zip"

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.write(tiny / "model.json", "model.json")
        z.writestr("../outside.txt", "x")
    with pytest.raises(CheckpointError) as exc:
        import_path(evil, model_id="evil", reporter=_quiet())
    _one_line(exc, "unsafe entry")
    assert not (home / "models" / "evil").exists() and not (tmp_path / "outside.txt").exists()


def test_import_refuses_damaged_files(home, tiny, tmp_path):
    damaged = shutil.copytree(tiny, tmp_path / "damaged")
    weights = damaged / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError) as exc:
        import_path(damaged, reporter=_quiet())
    _one_line(exc, "import refused", str(weights), "sha256")
    assert not (home / "models" / "tiny-liver").exists()


def test_remove_leaves_other_models_intact(home, tiny):
    for model_id in ("first", "second"):
        import_path(tiny, model_id=model_id, reporter=_quiet())
    assert remove("first") == [home / "models" / "first"]
    assert hsam.load_model("second").card["id"] == "second"
    with pytest.raises(ModelNotFoundError, match="not installed"):
        remove("first")


def test_an_unknown_model_id_is_model_not_found_not_a_damaged_checkpoint(home, capsys):
    """Every way of naming a model that is not there raises ModelNotFoundError (a ValueError, so the command
    line prints one ``hsam: error:`` line and exits 1); damaged files of a model that is there stay CheckpointError."""
    for attempt, needle in ((lambda: hsam.load_model("absent-model"), "model 'absent-model' not found"),
                            (lambda: hsam.load_model("hsam-abdomen-ct@999"), "model 'hsam-abdomen-ct@999' not found"),
                            (lambda: model_info("absent-model"), "neither installed nor in the catalog"),
                            (lambda: verify("absent-model"), "neither installed nor in the catalog"),
                            (lambda: catalog_entry("absent-model"), "is not in the model catalog"),
                            (lambda: remove("absent-model"), "nothing to remove")):
        with pytest.raises(ModelNotFoundError) as exc:
            attempt()
        assert not isinstance(exc.value, CheckpointError) and isinstance(exc.value, ValueError)
        _one_line(exc, needle, "hsam models list")
    assert main(["models", "info", "absent-model"]) == 1
    assert capsys.readouterr().err.strip() == \
        "hsam: error: 'absent-model' is neither installed nor in the catalog (see `hsam models list`)"


def test_a_model_that_fails_verification_is_refused(home, tiny, tmp_path, capsys):
    import_path(tiny, reporter=_quiet())
    other = tiny_liver_model_dir(tmp_path / "other", seed=9)
    installed = home / "models" / "tiny-liver" / "1" / "weights.safetensors"
    shutil.copyfile(other / "weights.safetensors", installed)  # a valid file, but not the one the card pins
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model("tiny-liver")
    _one_line(exc, str(installed), "sha256", "refused")
    bad = [c for c in verify("tiny-liver") if c.problem]
    assert [c.path for c in bad] == [installed]
    assert main(["models", "verify"]) == 1
    out, err = capsys.readouterr()
    assert f"BAD  tiny-liver@1  {installed}: sha256" in out
    assert "files failed verification, first " + str(installed) in err


def test_catalog_models_that_are_not_here_say_what_to_do(home):
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model("hsam-synapse-10pct")
    _one_line(exc, "hsam models download hsam-synapse-10pct", "drive.google.com/uc?export=download&id=1A1wq",
              str(home / "downloads"))
    assert hsam.load_model("hsam-abdomen-ct").card["id"] == "hsam-abdomen-ct"  # the default ships in the package
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model("sam-vit-b")
    _one_line(exc, "base weights")


def test_the_catalog_lists_the_bundled_model_as_its_card_says(home, capsys):
    entry = load_catalog()["hsam-abdomen-ct"]
    card = read_card(entry.path)
    assert entry.version == card["version"] == "3.1"
    assert list(entry.labels) == [label["name"] for label in card["labels"]] and len(entry.labels) == 8
    listed = next(m for m in json.loads(CATALOG_FILE.read_text())["models"] if m["id"] == "hsam-abdomen-ct")
    assert "version" not in listed and "labels" not in listed  # taken from the card, never copied
    assert main(["models", "list", "--progress", "jsonl"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["models"] if r["id"] == "hsam-abdomen-ct")
    assert (row["version"], row["state"], len(row["labels"])) == ("3.1", "bundled", 8)
    assert main(["models", "info", "hsam-abdomen-ct"]) == 0
    out = capsys.readouterr().out
    assert "version: 3" in out and "labels: spleen, right kidney, left kidney" in out


def test_bundled_model_resolves(site):
    assert hsam.load_model("bundled-demo").card["id"] == "tiny-liver"
    assert next(r for r in list_models() if r["id"] == "bundled-demo")["state"] == "bundled"


def test_download_asks_first_and_shows_the_size(site, home, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # no terminal: nobody to ask
    assert main(["models", "download", "sam-vit-b"]) == 1
    err = capsys.readouterr().err
    assert f"{len(FAKE_SAM) / 1000:.1f} KB" in err and "--yes" in err
    assert site.log == [] and not (home / "weights" / SAM_NAME).exists()
    assert main(["models", "download", "sam-vit-b", "--yes", "--progress", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1] == {"event": "result", "id": "sam-vit-b", "path": str(home / "weights" / SAM_NAME)}
    assert any(e["event"] == "progress" for e in events)
    assert (home / "weights" / SAM_NAME).read_bytes() == FAKE_SAM


def test_a_download_that_fails_its_check_leaves_no_file(site, home):
    site.files["tiny.zip"] = site.files["tiny.zip"][:-10] + b"0123456789"  # the mirror serves a changed file
    with pytest.raises(CheckpointError) as exc:
        download_entry("tiny-zip", _quiet())
    _one_line(exc, "tiny.zip", "sha256", "rejected")
    assert [p for p in home.rglob("*") if p.is_file()] == []


def test_release_download_needs_trust_and_is_converted(site, home, fake_convert, monkeypatch):
    with pytest.raises(CheckpointError, match="--trust-unpinned"):
        download_entry("fake-release", _quiet())
    log = io.StringIO()
    target = download_entry("fake-release", JsonLinesReporter(log), trust_unpinned=True, backoff=0.0)
    assert target == home / "models" / "fake-release" / "1"
    assert fake_convert == [(home / "weights" / SAM_NAME, home / "downloads" / "release.pth")]
    card = hsam.load_model("fake-release").card
    assert (card["id"], card["title"], card["version"]) == ("fake-release", "fake-release title", "1")
    assert _sha(b"release bytes") in log.getvalue()  # the computed sha256 of the unpinned file is shown
    assert list((home / "downloads").iterdir()) == []  # the release file is gone once converted

    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(requests.Session, "send", no_network)  # everything is here now: no network at all
    assert download_entry("fake-release", _quiet(), trust_unpinned=True) == target
    assert main(["models", "download", "sam-vit-b", "--progress", "jsonl"]) == 0


def test_import_the_authors_pth_files(site, home, fake_convert, tmp_path):
    sam = tmp_path / "downloaded_by_hand.pth"
    sam.write_bytes(FAKE_SAM)
    assert import_path(sam, reporter=_quiet()) == home / "weights" / SAM_NAME  # recognised by its sha256
    release = {f"w_{ab}_{i:03d}": torch.zeros(4, 8) for ab in "ab" for i in range(24)}  # the ViT-B release layout
    release["mask_decoder.mask_tokens.weight"] = torch.zeros(9, 256)
    torch.save(release, tmp_path / "220_epoch_299.pth")
    assert import_path(tmp_path / "220_epoch_299.pth", reporter=_quiet()).parent.name == "hsam-release-220_epoch_299"
    import_path(tmp_path / "220_epoch_299.pth", model_id="hsam-synapse-10pct", reporter=_quiet())
    assert hsam.load_model("hsam-synapse-10pct").card["title"].startswith("H-SAM, Synapse 8 organs")
    (tmp_path / "random.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError) as exc:
        import_path(tmp_path / "random.pth", reporter=_quiet())
    _one_line(exc, "neither base weights")


def test_offline_without_the_file_names_url_and_folder(home, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{SAM_NAME}"
    catalog = {"format": "hsam-catalog/1", "models": [dict(
        id="sam-vit-b", version="1", kind="base-weights", title="t", description="", backbone="sam_vit_b",
        labels=[], license="", install="weights-file", requires=[],
        files=[{"name": SAM_NAME, "url": url, "size": 10, "sha256": "0" * 64}])]}
    (tmp_path / "offline.json").write_text(json.dumps(catalog))
    monkeypatch.setenv("HSAM_CATALOG", str(tmp_path / "offline.json"))
    assert main(["models", "download", "sam-vit-b", "--yes", "--retries", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("hsam: error: cannot download") and url in err and str(home / "weights") in err


def test_list_info_and_path(home, capsys):
    assert main(["models", "list", "--progress", "jsonl"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert {r["id"] for r in rows} >= {"sam-vit-b", "sam-vit-l", "sam-vit-h", "litemedsam", "hsam-synapse-10pct"}
    assert main(["models", "info", "sam-vit-h"]) == 0
    assert "2.6 GB" in capsys.readouterr().out
    other = home.parent / "elsewhere"
    assert main(["models", "path", "--home", str(other)]) == 0
    assert capsys.readouterr().out.strip() == str(other)


def test_two_processes_downloading_the_same_model(site, home):
    site.drip = 0.03
    env = dict(os.environ)
    command = [sys.executable, "-m", "hsam", "models", "download", "tiny-zip", "--yes", "--progress", "jsonl"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert any("another process is installing it" in out or "already installed" in out for out, _ in results)
    assert [path for path, _, _ in site.log] == ["/drip/tiny.zip"]  # one download; the other process waited
    assert sorted(p.name for p in (home / "models" / "tiny-zip").iterdir()) == ["1"]
    assert list((home / "downloads").iterdir()) == []
    assert hsam.load_model("tiny-zip").card["id"] == "tiny-zip"
