"""``hsam models``: list, inspect, download, import, verify and remove models; show where they live; grow a model by
new classes; record an evaluation in a model's card."""
from __future__ import annotations

import argparse
import os
import sys


def _result(args, reporter, text: str, **data) -> None:
    """The outcome on stdout: text for people, a result event for programs."""
    if args.progress == "jsonl":
        reporter.event("result", **data)
    elif text:
        print(text)


def _list(args, reporter) -> int:
    from ..models.download import human_size
    from ..models.registry import list_models

    rows = list_models()
    lines = [f"{'ID':24} {'VERSION':8} {'KIND':13} {'STATE':15} {'SIZE':>9}  TITLE"]
    lines += [f"{r['id']:24} {r['version'] or '-':8} {r['kind']:13} {r['state']:15} "
              f"{human_size(r['size']) if r['size'] is not None else '':>9}  {_title(r)}" for r in rows]
    _result(args, reporter, "\n".join(lines), models=rows)
    return 0


def _title(row) -> str:
    if row.get("problem"):
        return f"{row['title']} ({row['problem']})"
    labels = row.get("labels") or []
    return f"{row['title']} [{len(labels)} labels]" if row["kind"] == "model" and labels else row["title"]


def _info(args, reporter) -> int:
    from ..models.download import human_size
    from ..models.registry import model_info

    info = model_info(args.id)
    lines = [f"{key}: {', '.join(value) if key == 'labels' else value}" for key, value in info.items()
             if key not in ("files", "model_files")]
    for f in info.get("files", []):
        lines.append(f"file {f['name']}: {f['url'] or 'not downloaded'} ({human_size(f['size'])}, sha256 "
                     f"{f['sha256'] or 'not pinned'}) -> {f['folder']}")
    for f in info.get("model_files", []):
        size = human_size(f["size"]) if f["size"] is not None else "missing"
        lines.append(f"model file {f['name']}: {size}, sha256 {f['sha256']}")
    _result(args, reporter, "\n".join(lines), model=info)
    return 0


def _download(args, reporter) -> int:
    from ..models.download import human_size, unpinned_refusal
    from ..models.install import download_entry, plan_download

    plan = plan_download(args.id)
    missing = [p for p in plan if not p.present]
    for p in plan:
        where = "already here" if p.present else f"{human_size(p.file.size)} from {p.file.url}"
        reporter.log(f"{p.entry}: {p.file.name}, {where} -> {p.folder}")
    unpinned = [p.file.name for p in missing if not p.file.sha256]
    if unpinned and not args.trust_unpinned:
        raise unpinned_refusal(", ".join(unpinned))
    if missing and not args.yes and not _confirm(f"Download {_amount(missing)}?", args):
        raise ValueError(f"nothing downloaded ({_amount(missing)}): pass --yes to confirm the download")
    path = download_entry(args.id, reporter, args.trust_unpinned, timeout=args.timeout, retries=args.retries)
    _result(args, reporter, f"{args.id}: {path}", id=args.id, path=str(path))
    return 0


def _amount(missing) -> str:
    from ..models.download import human_size

    sizes = [p.file.size for p in missing]
    unknown = f" plus {sizes.count(None)} of unknown size" if None in sizes else ""
    return f"{len(missing)} file(s), {human_size(sum(s for s in sizes if s is not None))}{unknown}"


def _confirm(question: str, args) -> bool:
    """Ask a person at a terminal; a program (no terminal, or JSON progress) must pass --yes."""
    if args.progress == "jsonl" or not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _import(args, reporter) -> int:
    from ..models.install import import_path

    path = import_path(args.path, args.id, args.force, reporter)
    _result(args, reporter, str(path), path=str(path))
    return 0


def _remove(args, reporter) -> int:
    from ..models.registry import remove

    removed = [str(p) for p in remove(args.id)]
    _result(args, reporter, "\n".join(f"removed {p}" for p in removed), removed=removed)
    return 0


def _verify(args, reporter) -> int:
    from ..models.registry import verify
    from ..weights import CheckpointError

    checks = verify(args.id)
    bad = [c for c in checks if c.problem]
    lines = [f"{'BAD' if c.problem else 'ok':4} {c.item}  {c.path}{': ' + c.problem if c.problem else ''}"
             for c in checks]
    _result(args, reporter, "\n".join(lines) or "nothing to verify", ok=not bad,
            checks=[{"item": c.item, "path": str(c.path), "problem": c.problem} for c in checks])
    if bad:
        raise CheckpointError(f"{len(bad)} of {len(checks)} files failed verification, first {bad[0].path}: "
                              f"{bad[0].problem}")
    return 0


def _path(args, reporter) -> int:
    from ..models.cache import hsam_home, installed_model
    from ..models.registry import model_info

    path = hsam_home() if args.id is None else (installed_model(args.id) or model_info(args.id).get("path"))
    _result(args, reporter, str(path), path=str(path))
    return 0


def _grow(args, reporter) -> int:
    import json

    from ..models.grow import grow_classes

    with open(args.classes, encoding="utf-8") as f:
        classes = json.load(f)
    if not isinstance(classes, list) or not all(isinstance(c, dict) and "name" in c for c in classes):
        raise ValueError(f"{args.classes}: give a JSON list of classes, each with a name")
    summary = grow_classes(args.base, args.out, classes)
    _result(args, reporter, summary, path=str(args.out), message=summary)
    return 0


def _record_evaluation(args, reporter) -> int:
    import json

    from ..models.card import record_evaluation

    try:
        with open(args.evaluation, encoding="utf-8") as f:
            evaluation = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args.evaluation}: not valid JSON ({exc})") from None
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("comparison"), dict) or \
            not isinstance(evaluation.get("training", {}), dict):
        raise ValueError(f"{args.evaluation}: give a JSON object with a \"comparison\" object (and optionally a "
                         "\"training\" object of fields to add to the card's training record)")
    path = record_evaluation(args.model_dir, evaluation["comparison"], evaluation.get("training"))
    _result(args, reporter, f"evaluation recorded in {path}", path=str(path))
    return 0


ACTIONS = {"list": _list, "info": _info, "download": _download, "import": _import, "remove": _remove,
           "verify": _verify, "path": _path, "grow": _grow, "record-evaluation": _record_evaluation}


def run(args: argparse.Namespace) -> int:
    from ..progress import make_reporter

    if args.home:
        os.environ["HSAM_HOME"] = os.path.abspath(os.path.expanduser(args.home))
    reporter = make_reporter(args.progress)
    try:
        return ACTIONS[args.action](args, reporter)
    except Exception as exc:
        reporter.close()
        if args.progress == "jsonl":
            reporter.event("error", message=str(exc))
        raise


def register(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="model cache folder for this command (default: $HSAM_HOME, else ~/.hsam)")
    common.add_argument("--progress", choices=["tqdm", "jsonl"], default="tqdm",
                        help="jsonl: one JSON event per line on stdout (progress, log, result, error)")
    p = sub.add_parser("models", help="list, download, import, verify and remove models")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="catalog models and installed models, with their state")
    actions.add_parser("info", parents=[common], help="details, files, URLs and folders of a model").add_argument("id")
    d = actions.add_parser("download", parents=[common], help="download a catalog model and what it needs")
    d.add_argument("id")
    d.add_argument("--yes", "-y", action="store_true", help="download without asking (the size is still shown)")
    d.add_argument("--trust-unpinned", action="store_true",
                   help="accept files whose sha256 the catalog does not pin; prints the computed sha256")
    d.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a try fails")
    d.add_argument("--retries", type=int, default=3, help="tries after a network failure (resuming each time)")
    i = actions.add_parser("import", parents=[common],
                           help="install a model directory, a .zip of one, or the authors' .pth files")
    i.add_argument("path")
    i.add_argument("--id", help="install under this id (default: the model card's)")
    i.add_argument("--force", action="store_true", help="replace an installed model with the same id and version")
    actions.add_parser("remove", parents=[common], help="delete an installed model (ID or ID@VERSION) or "
                       "downloaded base weights").add_argument("id")
    actions.add_parser("verify", parents=[common], help="re-check sha256 of every file, naming any bad one"
                       ).add_argument("id", nargs="?")
    actions.add_parser("path", parents=[common], help="the cache folder, or where a model lives"
                       ).add_argument("id", nargs="?")
    g = actions.add_parser("grow", parents=[common], help="a copy of a model with new classes, to fine-tune them")
    g.add_argument("base", help="model id or directory")
    g.add_argument("out", help="folder for the grown model")
    g.add_argument("classes", help="JSON list of every class: the base model's, in order, then the new ones")
    r = actions.add_parser("record-evaluation", parents=[common],
                           help="record in a model directory's card how it and its base model score on the same "
                                "cases")
    r.add_argument("model_dir", help="the model directory (its model.json is rewritten)")
    r.add_argument("evaluation", help='JSON file: {"comparison": {...}, "training": {...}}; the comparison as '
                                      "model-card.schema.json describes it, training: fields to add to the card's "
                                      "training record")
    p.set_defaults(func=run)
