"""Retrieve and send a CT series from / to a local Orthanc: medviewer vs dcmtk, same run.

Run: python bench/bench_pacs.py [--slices N] [--size S] [--repeat R]

Starts Orthanc (Debian packages orthanc, orthanc-dicomweb) on free localhost ports,
stores N generated SxS int16 CT slices, then times, R times each (median):
  * retrieval of the study: medviewer C-GET (lists the instances first, checks every
    received instance before keeping it) vs dcmtk `getscu` writing the files as they
    come; medviewer WADO-RS vs the same getscu baseline;
  * sending the N files: medviewer C-STORE vs dcmtk `storescu`; medviewer STOW-RS too.
Prints seconds, instances/s and the ratio to the dcmtk baseline (>1: medviewer slower).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import dicomgen  # noqa: E402
from orthanc_server import OrthancServer, available  # noqa: E402

from medviewer.viewer.pacs.client import PacsClient  # noqa: E402
from medviewer.viewer.pacs.nodes import DimseNode, WebNode  # noqa: E402


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median(func, repeat: int, before=None) -> float:
    runs = []
    for _ in range(repeat):
        if before:
            before()
        runs.append(timed(func))
    return statistics.median(runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=200)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    why = available()
    if why or not Path("/usr/bin/getscu").exists():
        print(f"skipped: {why or '/usr/bin/getscu missing (apt-get install dcmtk)'}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    try:
        paths, _ = dicomgen.ct_series(work / "src", n=args.slices, rows=args.size, cols=args.size)
        import pydicom

        study = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
        with OrthancServer(work / "orthanc", modalities={"getscu": ("GETSCU", 104),
                                                         "medviewer": ("MEDVIEWER", 104)}) as server:
            for path in paths:
                server.upload(path)
            node = DimseNode(server.aet, "127.0.0.1", server.dicom_port)
            dimse, web = PacsClient(node), PacsClient(WebNode.parse(server.dicomweb))
            out = work / "out"

            def clean() -> None:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()

            def getscu() -> None:
                subprocess.run(["/usr/bin/getscu", "-aet", "GETSCU", "-aec", server.aet, "-S", "-k",
                                "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", "-od", str(out),
                                "127.0.0.1", str(server.dicom_port)], check=True, capture_output=True)

            def ours_get() -> None:
                r = dimse.retrieve(study, out)
                assert len(r.received) == args.slices, r.summary()

            def ours_wado() -> None:
                r = web.retrieve(study, out)
                assert len(r.received) == args.slices, r.summary()

            base_get = median(getscu, args.repeat, clean)
            assert len(list(out.iterdir())) == args.slices
            t_get = median(ours_get, args.repeat, clean)
            t_wado = median(ours_wado, args.repeat, clean)

            def storescu() -> None:
                subprocess.run(["/usr/bin/storescu", "-aet", "MEDVIEWER", "-aec", server.aet,
                                "127.0.0.1", str(server.dicom_port), *map(str, paths)], check=True,
                               capture_output=True)

            def ours_store() -> None:
                assert all(r.ok for r in dimse.send(paths))

            def ours_stow() -> None:
                assert all(r.ok for r in web.send(paths))

            base_store = median(storescu, args.repeat)
            t_store = median(ours_store, args.repeat)
            t_stow = median(ours_stow, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.slices
    mb = n * args.size * args.size * 2 / 2**20
    print(f"{n} CT slices {args.size}x{args.size} int16 ({mb:.1f} MiB of pixels), Orthanc on localhost, "
          f"median of {args.repeat}")
    rows = [("retrieve: dcmtk getscu (baseline)", base_get, base_get),
            ("retrieve: medviewer C-GET (listed, checked, resumable)", t_get, base_get),
            ("retrieve: medviewer WADO-RS", t_wado, base_get),
            ("send: dcmtk storescu (baseline)", base_store, base_store),
            ("send: medviewer C-STORE", t_store, base_store),
            ("send: medviewer STOW-RS", t_stow, base_store)]
    for label, t, base in rows:
        print(f"  {label:58s} {t:7.3f} s  {n / t:8.1f} inst/s  ratio {t / base:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
