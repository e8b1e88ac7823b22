"""`medviewer predict` and `medviewer convert-model` (headless).

    medviewer predict PATH --model FILE [--series N|UID] [--json OUT] [--cam-dir DIR]
                      [--cam-method gradcam|gradcampp] [--device cpu|cuda] [--batch-size N]
                      [--aggregate mean|max|topk_mean] [--top-k K] [--tta [--tta-shift F]]
                      [--dicom-out DIR [--dicom-out-slices top3|all|K,K,...] [--dicom-out-maps]]
                      [--engine local|ray [--ray-address ADDR] [--workers N]
                       [--gpus-per-worker F] [--results DIR] [--retries N]]   (engine.scale)
    medviewer convert-model IN.pt OUT.safetensors --card card.json

The predict JSON is exactly {"model": {...}, "device", "series": [{"series_uid",
"aggregate": {"method", "probabilities"}, "ood", "input_warnings", "audit_id",
"items": [{"path", "frame", "probabilities", "top", "cam", "ood"}]}]} (plus "tta":
{"hflip", "shift"} with --tta); "cam" is a .npy path relative to --cam-dir
(float32 [0, 1], the source image's rows x cols) with an overlay PNG beside it.
Probabilities are calibrated (the card's temperature; with --tta the mean of the
views' calibrated probabilities).  Item "ood" is {"score", "flag"} (flag: unlike
the training images; scored on the image itself, also with --tta) and series "ood"
{"flagged", "checked", "fraction_flagged", "threshold"}; both are null for models
without an out-of-distribution model (older files, ensembles).  "input_warnings"
are the input check's mismatches with the card (engine.inputcheck), also printed on
stderr.  Every series analysed is appended to the audit log (engine.audit);
"audit_id" names its entry.
--dicom-out writes each series' results as DICOM (engine.dicomout): an SR (with the
out-of-distribution fraction, the input warnings and the audit entry), a
Secondary Capture series with the Grad-CAM burned in and, with --dicom-out-maps,
a Parametric Map.
Exit codes as for `info`: 0 ok, 1 ok but files skipped / slices undecodable,
2 nothing usable or bad arguments (one-line errors via viewer.cli).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.engine.cam import CAM_METHODS
from medviewer.engine.predictdoc import document, series_entry
from medviewer.viewer.clikit import (EXIT_FAIL, EXIT_OK, EXIT_PARTIAL, Parser, pick_series, relative,
                                     item_reason, report_skipped, require_images, say)
from medviewer.viewer.errors import UsageError


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:64] or "series"


def _write_cam(cam_dir: Path, rel: str, cam: np.ndarray, grey: np.ndarray) -> None:
    from medviewer.engine.overlay import save_cam

    save_cam(cam_dir, rel, cam, grey)


def main_predict(argv: list[str]) -> int:
    """Classify every slice of the chosen series; optional Grad-CAM maps and JSON report."""
    from medviewer.engine import audit, inputcheck
    from medviewer.engine.device import describe
    from medviewer.engine.infer import AGGREGATIONS, aggregate, aggregation_name
    from medviewer.engine import load_model
    from medviewer.engine.scale.run import add_arguments as add_ray_arguments, check_local_arguments
    from medviewer.engine.series import predict_series
    from medviewer.viewer.display import render
    from medviewer.viewer.io.pixels import PixelStore
    from medviewer.viewer.io.pathlist import open_root

    p = Parser(prog="medviewer predict", description="Run an AI model over a study's series.")
    p.add_argument("path", help="a study folder (or a folder of studies), a single file, or a .csv list of paths")
    p.add_argument("--model", required=True, metavar="FILE|NAME",
                   help="a .safetensors model file, or the name of a bundled or user model (e.g. demo)")
    p.add_argument("--series", metavar="N|UID", help="Series Number or UID (default: every series)")
    p.add_argument("--json", metavar="OUT", help="write the JSON report here ('-' for stdout)")
    p.add_argument("--cam-dir", metavar="DIR", help="write Grad-CAM .npy maps and overlay PNGs here")
    p.add_argument("--cam-method", choices=tuple(CAM_METHODS), default="gradcam",
                   help="; ".join(f"{m.name}: {m.label}, {m.reference}" for m in CAM_METHODS.values()))
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--batch-size", type=int, default=16, metavar="N")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default="mean",
                   help="series-level aggregation of slice probabilities (default mean)")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="k for --aggregate topk_mean")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the probabilities of the image and its mirror")
    p.add_argument("--tta-shift", type=float, default=0.0, metavar="F",
                   help="with --tta, also shifted copies by F x the input size (e.g. 0.05)")
    p.add_argument("--dicom-out", metavar="DIR",
                   help="write DICOM results here: SR (TID 1500) + Secondary Capture per series")
    p.add_argument("--dicom-out-slices", default="top3", metavar="top3|all|K,K,...",
                   help="images of the Secondary Capture series: the 3 with the highest probability of "
                        "the series' top class, all, or image numbers counted from 1")
    p.add_argument("--dicom-out-maps", action="store_true",
                   help="also write the Grad-CAM maps as a Parametric Map")
    add_ray_arguments(p)
    args = p.parse_args(argv)
    tta = _tta_spec(args)
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    json_out = None if args.json in (None, "-") else Path(args.json)
    if json_out is not None and not json_out.parent.exists():
        raise UsageError(f"{json_out}: folder {json_out.parent} does not exist")
    cam_dir = Path(args.cam_dir) if args.cam_dir else None
    dicom_out = Path(args.dicom_out) if args.dicom_out else None
    if dicom_out is None and (args.dicom_out_maps or args.dicom_out_slices != "top3"):
        raise UsageError("--dicom-out-slices and --dicom-out-maps need --dicom-out DIR")
    if dicom_out is not None:
        from medviewer.engine.dicomout import parse_slices

        parse_slices(args.dicom_out_slices)
        try:
            dicom_out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{dicom_out}: cannot create the folder ({exc.strerror})") from None
    if cam_dir is not None:
        try:
            cam_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{cam_dir}: cannot create the folder ({exc.strerror})") from None
    if args.engine == "ray":
        from medviewer.engine.scale.run import predict_ray

        if tta is not None:
            raise UsageError("--tta is not available with --engine ray (run the local engine for it)")

        return predict_ray(args, json_out, cam_dir)
    check_local_arguments(args)

    from medviewer.engine.threads import apply as apply_thread_policy

    apply_thread_policy()  # every CPU we may use: decoding runs in line with the forward pass
    model = load_model(args.model, device=None if args.device == "auto" else args.device)
    result = open_root(args.path)
    if not result.all_series():
        report_skipped("medviewer predict", result)  # each file's line before the summary
    require_images(result, args.path)
    chosen = [pick_series(result, args.series)] if args.series else [s for s in result.all_series() if s.items]
    report_skipped("medviewer predict", result)

    if model.card.tta and tta is None:
        print("medviewer predict: note: the model's metrics were measured with test-time augmentation "
              f"({model.card.tta}); add --tta to match", file=sys.stderr)
    doc = document(model, describe(model.device), [])
    if tta is not None:
        doc["tta"] = tta.to_card()
    if model.ood is None:
        why = "an ensemble" if getattr(model, "members", None) else "an older model file"
        print(f"medviewer predict: note: {model.card.name} has no out-of-distribution check "
              f"({why}); results on unusual images are not flagged", file=sys.stderr)
    study_of = {s.series_uid: st.study_uid for st in result.studies for s in st.series}
    audit_log = audit.AuditLog()
    audit_failed = False
    failures = 0
    store = PixelStore(workers=1)
    try:
        for s_idx, series in enumerate(chosen):
            store.add_headers(series.headers)
            warnings = inputcheck.check_series(model.card, series, store)
            if warnings:
                print(f"medviewer predict: warning: series {series.series_uid}: {inputcheck.summary(warnings)}",
                      file=sys.stderr)
            pred = predict_series(model, store, series.items, (max(series.rows, 1), max(series.columns, 1)),
                                  cam_method=args.cam_method if cam_dir else None, batch_size=args.batch_size,
                                  tta=tta)
            failures += len(pred.failed)
            for i, reason in sorted(pred.failed.items()):
                path = series.items[i].path
                say("medviewer predict", f"skipped {relative(result, path)}: {item_reason(path.name, reason)}")
            keep = [i for i in range(len(series.items)) if i not in pred.failed]
            cams: dict[int, str] = {}
            if cam_dir is not None and pred.cams is not None:
                for i, ref in enumerate(series.items):
                    if i not in pred.failed:
                        cams[i] = f"{s_idx:02d}_{_safe(series.series_uid)}/{i:04d}.npy"
                        _write_cam(cam_dir, cams[i], pred.cams[i], render(store.get(ref), store.meta(ref)))
            agg = aggregate(pred.probs[keep], args.aggregate, args.top_k) if keep else None
            ood = pred.ood_summary(keep)
            if ood is not None and ood["flagged"]:
                print(f"medviewer predict: warning: series {series.series_uid}: {ood['flagged']} of "
                      f"{ood['checked']} image(s) unlike the images this model was trained on", file=sys.stderr)
            method = aggregation_name(args.aggregate, args.top_k)
            entry = audit.Analysis(
                model_name=model.card.name, model_version=model.card.version, model_sha256=model.sha256,
                device=doc["device"], study_uid=study_of.get(series.series_uid), series_uid=series.series_uid,
                n_items=len(keep), n_failed=len(pred.failed),
                sop_uids=audit.sop_uids(series, [series.items[i] for i in keep]),
                result=audit.series_result(model.classes, agg, method), ood_checked=ood is not None,
                ood_flagged=ood["flagged"] if ood else None, ood_fraction=ood["fraction_flagged"] if ood else None,
                input_warnings=[w.text() for w in warnings], source="cli",
                status="complete" if keep else "failed")
            try:
                audit_id: str | None = audit_log.record_analysis(entry)
            except audit.AuditError as exc:
                print(f"medviewer predict: warning: {exc}", file=sys.stderr)
                audit_id, audit_failed = None, True
            doc["series"].append(series_entry(
                model.classes, series.series_uid, [(relative(result, r.path), r.frame) for r in series.items],
                pred, args.aggregate, args.top_k, cams,
                input_warnings=[w.to_json() for w in warnings], audit_id=audit_id))
            if dicom_out is not None and keep:
                failures += _write_dicom(model, series, pred, store, dicom_out, args,
                                         [w.text() for w in warnings], audit_id)
    finally:
        store.close()

    text = json.dumps(doc, indent=2)
    if args.json == "-":
        print(text)
    elif json_out is not None:
        try:
            json_out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{json_out}: cannot write ({exc.strerror})") from None
    if args.json != "-":
        for s in doc["series"]:
            agg = s["aggregate"]["probabilities"]
            best = max(agg, key=agg.get) if agg else "-"
            ood = s["ood"]
            ood_text = "no OOD check" if ood is None else \
                f"{ood['flagged']}/{ood['checked']} flagged out-of-distribution"
            print(f"series {s['series_uid']}: {len(s['items'])} image(s), "
                  f"{s['aggregate']['method']} -> {best} {agg.get(best, 0.0):.3f}, {ood_text}")
    if not any(s["items"] for s in doc["series"]):
        return EXIT_FAIL
    return EXIT_PARTIAL if (failures or result.skipped or audit_failed) else EXIT_OK


def _tta_spec(args: Any) -> Any:
    """--tta / --tta-shift as an engine.tta.TTASpec (None without --tta)."""
    from medviewer.engine.tta import MAX_SHIFT, TTASpec

    if args.tta_shift and not args.tta:
        raise UsageError("--tta-shift needs --tta")
    if not args.tta:
        return None
    if not 0 <= args.tta_shift <= MAX_SHIFT:
        raise UsageError(f"--tta-shift must be in [0, {MAX_SHIFT}]")
    return TTASpec(hflip=True, shift=float(args.tta_shift))


def _write_dicom(model: Any, series: Any, pred: Any, store: Any, out: Path, args: Any,
                 input_warnings: list[str], audit_id: str | None) -> int:
    """--dicom-out for one series: one line per object group on stdout; 1 when it failed.
    The SR carries the OOD summary, the input check's warnings and the audit entry."""
    from medviewer.engine.dicomout import DicomOutputError, write_series_outputs
    from medviewer.engine.dicomout.trust import TrustInfo

    def note(text: str) -> None:
        print(f"medviewer predict: {text}", file=sys.stderr)

    try:
        paths = write_series_outputs(model, series, pred, store, out, slices=args.dicom_out_slices,
                                     maps=args.dicom_out_maps, cam_method=args.cam_method,
                                     aggregate=args.aggregate, top_k=args.top_k,
                                     batch_size=args.batch_size, notify=note,
                                     trust=TrustInfo.from_prediction(pred, input_warnings=input_warnings,
                                                                     audit_id=audit_id))
    except DicomOutputError as exc:
        note(f"no DICOM results: {exc}")
        return 1
    n_sr = sum(p.name.endswith("-sr.dcm") for p in paths)
    n_pm = sum(p.name.endswith("-pm.dcm") for p in paths)
    print(f"series {series.series_uid}: DICOM results in {paths[0].parent} ({n_sr} SR, "
          f"{len(paths) - n_sr - n_pm} Secondary Capture, {n_pm} Parametric Map)",
          file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


def main_convert(argv: list[str]) -> int:
    """Convert a PyTorch state-dict file to a medviewer .safetensors model (no unpickling of code)."""
    from medviewer.engine.card import read_card_file
    from medviewer.engine.modelfile import save_model
    from medviewer.engine.weights import read_state_dict
    from medviewer.engine.registry import build_from_card

    p = Parser(prog="medviewer convert-model",
                description="Convert IN.pt (a state dict) to OUT.safetensors with a model card.")
    p.add_argument("input", help="a .pt/.pth file holding a state dict")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--card", required=True, metavar="card.json", help="the model card (JSON)")
    args = p.parse_args(argv)
    src, out, card_path = Path(args.input), Path(args.output), Path(args.card)
    if out.suffix.lower() != ".safetensors":
        raise UsageError(f"{out}: the output must be a .safetensors file")
    if not out.parent.exists():
        raise UsageError(f"{out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give the .safetensors file to write")
    card = read_card_file(card_path)
    from medviewer.engine.modelfile import EXTRA_PREFIX

    # a medviewer file's OOD tensors are not weights, and the new card cannot describe them
    state = {k: v for k, v in read_state_dict(src).items() if not k.startswith(EXTRA_PREFIX)}
    module = build_from_card(card)
    from medviewer.engine.modelfile import check_fits

    check_fits(state, card, src.name)
    module.load_state_dict(state, strict=True)
    save_model(out, module, card)
    print(f"wrote {out} ({card.summary()})", file=sys.stderr)
    return EXIT_OK
