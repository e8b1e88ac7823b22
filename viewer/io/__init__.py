"""Qt-free study I/O: scan folders, group and sort series, decode pixels lazily.

    model   ImageRef, Series, Study, NonImage, Skipped, ScanResult (+ to_json)
    scan    scan(root, progress, should_stop, on_snapshot), open_path(path)
    header  one file's header: read, classify, check its pixel data
    group   Patient > Study > Series grouping (Collector)
    sort    display order: geometry, Instance Number, natural file names
    tags    fast reads of ASCII/US header values
    pixels  PixelStore: per-frame decode, byte-bounded LRU, background prefetch
    demo    the generated CT phantom and pydicom's real files (`medviewer --demo`)

Submodules are imported on use, so `import viewer.io` stays cheap.
"""
