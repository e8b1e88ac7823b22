"""Training-data discovery: split folders, class folders, labels and splits.

Layouts understood (issue 4, section 1):

* ``DATA/<split>/<class>/**/image`` with split folders named train/training,
  val/valid/validation, test/testing in any case;
* ``DATA/<class>/**/image`` (no split folders: all splits are made here);
* class folders whose names differ between splits by a suffix
  (train ``adenocarcinoma_left.lower.lobe_T2_N0_M0_lb``, test ``adenocarcinoma``)
  are matched by prefix and the mapping is reported;
* ``label_regex``: the class is the first match of the regex in the file name,
  falling back to the class folder;
* ``labels_csv``: ``path,label[,split]`` rows override everything.

Missing splits are made by a per-class (stratified) split with a fixed seed.
Nothing here decodes pixels; see ``engine.train.images``.
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.viewer.errors import DatasetError, UsageError

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
DICOM_EXTS = {".dcm", ".dicom", ".dic", ".ima"}
# files that are certainly not images (labels, notes, masks written by make-dataset)
IGNORED_EXTS = {".txt", ".csv", ".json", ".md", ".html", ".xml", ".npy", ".npz", ".pdf",
                ".zip", ".gz", ".db", ".log", ".py", ".ini", ".yaml", ".yml"}


@dataclass
class Sample:
    """One training image: where it is, its class and its split."""

    path: Path
    label: str
    split: str
    folder: str = ""          # the class folder it came from ("" for CSV rows)


@dataclass
class DataIndex:
    """Result of discovery: the samples, the classes and what was decided."""

    root: Path
    classes: list[str]
    class_map: dict[str, str]            # folder name -> class
    samples: list[Sample]
    notes: list[str] = field(default_factory=list)   # human-readable decisions

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: n}} for every split and class (zeros included)."""
        out = {s: {c: 0 for c in self.classes} for s in SPLITS}
        for s in self.samples:
            out[s.split][s.label] += 1
        return out

    def by_split(self, split: str) -> list[Sample]:
        return [s for s in self.samples if s.split == split]


def is_candidate_image(path: Path) -> bool:
    """True for files worth trying to decode (images, DICOM, extension-less)."""
    if path.name.startswith(".") or not path.is_file():
        return False
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS or ext in DICOM_EXTS:
        return True
    if ext in IGNORED_EXTS:
        return False
    return ext == "" or not ext[1:].isalpha()   # e.g. "1.2.840.113619" DICOM names


def _image_files(folder: Path) -> list[Path]:
    # lesion masks (``*_mask.png``) are not training images
    return sorted(p for p in folder.rglob("*") if is_candidate_image(p) and not p.stem.endswith("_mask"))


def match_class_folders(names: list[str]) -> dict[str, str]:
    """Map class-folder names to class names, merging longer names onto a prefix.

    ``adenocarcinoma_left.lower.lobe_T2_N0_M0_lb`` -> ``adenocarcinoma`` when the
    shorter name exists too; the comparison ignores case.  A name maps to its
    shortest prefix among the names, so chains collapse onto one class.
    """
    uniq = sorted(set(names), key=lambda n: (len(n), n))
    out: dict[str, str] = {}
    for name in uniq:
        target = name
        for shorter in uniq:
            if len(shorter) >= len(name):
                break
            if name.casefold().startswith(shorter.casefold()):
                target = out.get(shorter, shorter)
                break
        out[name] = target
    return out


def _split_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if child.is_dir():
            split = SPLIT_NAMES.get(child.name.strip().casefold())
            if split:
                if split in found:
                    raise DatasetError(
                        f"{root}: two folders name the {split} split "
                        f"({found[split].name!r} and {child.name!r}); keep one")
                found[split] = child
    return found


def compile_label_regex(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise UsageError(f"--label-from-name: invalid regular expression {pattern!r}: {exc}") from None


def _label_from_name(rx: re.Pattern[str] | None, path: Path, fallback: str) -> str:
    if rx is None:
        return fallback
    m = rx.search(path.name)
    if not m:
        return fallback
    label = m.group(1) if rx.groups and m.group(1) else m.group(0)
    return label.casefold()   # the regex ignores case, so "BACTERIA" == "bacteria"


MAX_CSV_BYTES = 512 * 2**20


def _read_csv(csv_path: Path, base: Path) -> list[tuple[Path, str, str | None]]:
    import os
    import stat

    try:
        st = os.stat(csv_path)
    except OSError:
        raise DatasetError(f"{csv_path}: label file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{csv_path}: the label file is not a regular file (a FIFO, device or folder)")
    if st.st_size > MAX_CSV_BYTES:
        raise DatasetError(f"{csv_path}: the label file is {st.st_size / 2**20:.0f} MiB, over the "
                           f"{MAX_CSV_BYTES // 2**20} MiB limit for path,label rows")
    rows: list[tuple[Path, str, str | None]] = []
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for i, row in enumerate(reader):
                row = [c.strip() for c in row]
                if not row or not row[0] or row[0].startswith("#"):
                    continue
                if i == 0 and row[0].lower() == "path":
                    continue
                if len(row) < 2 or not row[1]:
                    raise DatasetError(f"{csv_path}: line {i + 1} needs path,label[,split]")
                split = None
                if len(row) > 2 and row[2]:
                    split = SPLIT_NAMES.get(row[2].casefold())
                    if split is None:
                        raise DatasetError(
                            f"{csv_path}: line {i + 1}: unknown split {row[2]!r} (train, val or test)")
                p = Path(row[0])
                rows.append((p if p.is_absolute() else base / p, row[1], split))
    except UnicodeDecodeError:
        raise DatasetError(f"{csv_path}: not a UTF-8 CSV file") from None
    except csv.Error as exc:   # a field over csv.field_size_limit() (128 kB), a NUL byte...
        raise DatasetError(f"{csv_path}: line {reader.line_num}: not a valid path,label[,split] row "
                           f"({exc})") from None
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read the label file ({exc.strerror or exc})") from None
    if not rows:
        raise DatasetError(f"{csv_path}: no rows (expected path,label[,split])")
    return rows


def stratified_assign(items: list[int], labels: list[str], fractions: dict[str, float],
                      seed: int) -> dict[int, str]:
    """Assign items to splits class by class; the remainder goes to ``train``.

    ``fractions`` maps split -> fraction of *these* items (e.g. {"val": .16,
    "test": .2}).  Every class keeps at least one training item.
    """
    rng = random.Random(seed)
    per_class: dict[str, list[int]] = defaultdict(list)
    for i, lab in zip(items, labels):
        per_class[lab].append(i)
    out: dict[int, str] = {}
    for lab in sorted(per_class):
        idx = sorted(per_class[lab])
        rng.shuffle(idx)
        pos = 0
        for split, frac in fractions.items():
            k = int(round(frac * len(idx)))
            k = min(k, len(idx) - pos - 1) if len(idx) - pos > 1 else 0
            for i in idx[pos:pos + k]:
                out[i] = split
            pos += max(k, 0)
        for i in idx[pos:]:
            out[i] = "train"
    return out


def discover(root: str | Path | None, *, label_regex: str | None = None,
             labels_csv: str | Path | None = None, val_fraction: float = 0.15,
             test_fraction: float = 0.15, seed: int = 0) -> DataIndex:
    """Find the labelled images under ``root`` (or in ``labels_csv``)."""
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UsageError("--val-fraction and --test-fraction must be in [0, 1) and sum below 1")
    rx = compile_label_regex(label_regex)
    notes: list[str] = []
    class_map: dict[str, str] = {}
    entries: list[tuple[Path, str, str | None, str]] = []   # path, label, split|None, folder
    if labels_csv is not None:
        csv_path = Path(labels_csv)
        base = Path(root) if root is not None else csv_path.parent
        for p, lab, split in _read_csv(csv_path, base):
            entries.append((p, lab, split, ""))
        notes.append(f"labels from {csv_path.name}: {len(entries)} rows")
        root_path = base
    else:
        if root is None:
            raise UsageError("--data DIR (or --labels FILE.csv) is required")
        root_path = Path(root)
        if not root_path.is_dir():
            raise DatasetError(f"{root_path}: data folder not found")
        splits = _split_dirs(root_path)
        sources = list(splits.items()) if splits else [(None, root_path)]
        folders: list[tuple[str | None, Path]] = []
        for split, sdir in sources:
            for cdir in sorted(sdir.iterdir()):
                if cdir.is_dir() and not cdir.name.startswith("."):
                    folders.append((split, cdir))
        class_map = match_class_folders([c.name for _, c in folders])
        merged = {k: v for k, v in class_map.items() if k != v}
        for k, v in sorted(merged.items()):
            notes.append(f"class folder {k!r} -> class {v!r}")
        empty: list[Path] = []
        for split, cdir in folders:
            files = _image_files(cdir)
            if not files:
                empty.append(cdir)
            for f in files:
                entries.append((f, _label_from_name(rx, f, class_map[cdir.name]), split, cdir.name))
        found = {e[1] for e in entries}
        by_class: dict[str, list[str]] = defaultdict(list)
        for cdir in empty:
            by_class[class_map[cdir.name]].append(cdir.relative_to(root_path).as_posix())
        for cls, where in sorted(by_class.items()):
            if cls in found:
                notes.extend(f"warning: class folder {w!r} holds no images" for w in where)
            else:
                notes.append(f"warning: class {cls!r} is left out: its folder{'s' if len(where) > 1 else ''} "
                             f"{', '.join(where)} hold{'' if len(where) > 1 else 's'} no images")
        if splits:
            notes.append("split folders: " + ", ".join(f"{k}={v.name}" for k, v in splits.items()))
    if not entries:
        raise DatasetError(f"{root_path}: no images found (expected one folder per class)")

    # make the missing splits, stratified by class
    have = {e[2] for e in entries if e[2] is not None}
    missing = [s for s in ("val", "test") if s not in have]
    pool = [i for i, e in enumerate(entries) if e[2] in (None, "train")]
    fracs = {s: f for s, f in (("val", val_fraction), ("test", test_fraction)) if s in missing and f > 0}
    assigned = stratified_assign(pool, [entries[i][1] for i in pool], fracs, seed) if pool else {}
    if fracs:
        notes.append("made splits " + ", ".join(f"{s} ({f:.0%} of the training pool)"
                                                 for s, f in fracs.items()) + f", seed {seed}")
    samples = [Sample(p, lab, assigned.get(i, split or "train"), folder)
               for i, (p, lab, split, folder) in enumerate(entries)]
    classes = sorted({s.label for s in samples})
    if len(classes) < 2:
        raise DatasetError(f"{root_path}: found only one class ({classes[0]!r}); "
                           "training needs at least two class folders or labels")
    train_classes = {s.label for s in samples if s.split == "train"}
    for c in classes:
        if c not in train_classes:
            notes.append(f"warning: class {c!r} has no training images")
    return DataIndex(root_path, classes, class_map, samples, notes)


def counts_table(index: DataIndex) -> str:
    """A small text table of images per class and split."""
    counts = index.counts()
    width = max(8, *(len(c) for c in index.classes))
    lines = [f"{'class':<{width}} " + " ".join(f"{s:>6}" for s in SPLITS)]
    for c in index.classes:
        lines.append(f"{c:<{width}} " + " ".join(f"{counts[s][c]:>6}" for s in SPLITS))
    tot = Counter(s.split for s in index.samples)
    lines.append(f"{'total':<{width}} " + " ".join(f"{tot[s]:>6}" for s in SPLITS))
    return "\n".join(lines)
