"""Display metadata of one image or frame, read from a DICOM header.

`ImageMeta` holds everything the display pipeline needs and nothing else: the
Image Pixel Module description (PS3.3 C.7.6.3), the Modality LUT Module
(C.11.1), the VOI LUT Module (C.11.2), the Palette Color LUT Module (C.7.9)
and the pixel spacing.  For enhanced multi-frame images the per-frame values
come from the Functional Groups (C.7.6.16): Pixel Value Transformation,
Frame VOI LUT and Pixel Measures, per-frame taking precedence over shared.

All classes are frozen and hashable (LUT data is kept as `bytes`), so a meta
can key a cache of lookup tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medviewer.viewer.errors import DecodeError

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2), or a pointer to a VOI LUT.

    `function` is LINEAR, LINEAR_EXACT or SIGMOID.  When `voi_lut` is set the
    window stands for item `voi_lut` of the VOI LUT Sequence; `center` and
    `width` then describe the LUT's input range (for the W/L readout and as a
    starting point for dragging).
    """

    center: float
    width: float
    function: str = "LINEAR"
    name: str = ""
    voi_lut: int | None = None


@dataclass(frozen=True)
class LutTable:
    """A Modality or VOI LUT (PS3.3 C.11.1.1.1, C.11.2.1.1).

    `first_mapped` is the first input value mapped (LUT Descriptor value 2),
    `bits` the nominal bits per entry (value 3), `data` the entries as
    little-endian uint16.  Inputs below the first mapped value take the first
    entry, inputs past the end take the last one.
    """

    first_mapped: int
    bits: int
    data: bytes
    explanation: str = ""

    @classmethod
    def from_values(cls, first_mapped: int, bits: int, values: Any,
                    explanation: str = "") -> LutTable:
        arr = np.asarray(values, dtype=np.int64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("LUT Data must be a non-empty list of values")
        return cls(int(first_mapped), int(bits),
                   arr.astype("<u2").tobytes(), explanation)

    @property
    def entries(self) -> np.ndarray:
        """The LUT entries as a uint16 array."""
        return np.frombuffer(self.data, dtype="<u2")

    @property
    def max_output(self) -> int:
        """Top of the output range, 2**bits - 1 (PS3.3 C.11.2.1.1)."""
        return 2 ** self.bits - 1

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Map input values (integers, or floats floored) through the LUT."""
        entries = self.entries
        idx = np.floor(np.asarray(values, dtype=np.float64)) - self.first_mapped
        np.clip(idx, 0, entries.size - 1, out=idx)
        return entries[idx.astype(np.intp)]


@dataclass(frozen=True)
class Palette:
    """Palette Color LUTs (PS3.3 C.7.6.3.1.5), already scaled to 8-bit RGB.

    `rgb` holds the (entries, 3) uint8 table; input values below
    `first_mapped` take the first entry, values past the end the last one.
    """

    first_mapped: int
    rgb: bytes

    @property
    def table(self) -> np.ndarray:
        return np.frombuffer(self.rgb, dtype=np.uint8).reshape(-1, 3)


@dataclass(frozen=True)
class ImageMeta:
    """Everything needed to turn stored values of one frame into grey levels."""

    photometric: str = "MONOCHROME2"
    bits_stored: int = 8
    pixel_representation: int = 0
    samples_per_pixel: int = 1
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: LutTable | None = None
    windows: tuple[Window, ...] = ()
    voi_lut_function: str = "LINEAR"
    voi_luts: tuple[LutTable, ...] = ()
    palette: Palette | None = None
    pixel_spacing: tuple[float, float] | None = None   # (row, column) mm
    modality: str = "OT"
    rows: int = 0
    columns: int = 0
    bits_allocated: int = 8
    units: str = ""                                    # e.g. "HU"
    padding: tuple[int, int] | None = None             # Pixel Padding Value range
    float_pixels: bool = False
    presentation_inverse: bool = False                 # Presentation LUT Shape INVERSE

    @property
    def is_color(self) -> bool:
        """True for RGB / YBR images (decoded to RGB before display)."""
        return self.samples_per_pixel == 3

    @property
    def is_palette(self) -> bool:
        return self.photometric == "PALETTE COLOR" and self.palette is not None

    @property
    def inverted(self) -> bool:
        """Minimum value shown white: MONOCHROME1 (PS3.3 C.7.6.3.1.2), or a
        MONOCHROME2 image with Presentation LUT Shape INVERSE (C.11.6.1).
        MONOCHROME1 with INVERSE (as DX requires) is inverted once, not twice."""
        return self.photometric == "MONOCHROME1" or self.presentation_inverse

    def display_key(self) -> tuple:
        """The fields that decide the stored-value -> grey-level mapping."""
        return (self.photometric, self.bits_stored, self.pixel_representation,
                self.samples_per_pixel, self.rescale_slope, self.rescale_intercept,
                self.modality_lut, self.voi_luts, self.palette, self.float_pixels,
                self.presentation_inverse)


# --------------------------------------------------------------------------
# helpers

def _name(ds: Any) -> str:
    filename = getattr(ds, "filename", None)
    return str(filename) if filename else "dataset"


def _floats(value: Any) -> list[float]:
    """DS / FD values (single or multi-valued) as floats; unreadable ones NaN."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        items = [value]
    else:
        items = list(value)
    out = []
    for item in items:
        try:
            f = float(item)
        except (TypeError, ValueError):
            f = math.nan
        out.append(f)
    return out


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [str(value)]
    return [str(v) for v in value]


def _first_item(ds: Any, keyword: str) -> Any | None:
    seq = ds.get(keyword) if ds is not None else None
    return seq[0] if seq else None


def _frame_group(ds: Any, frame: int | None, keyword: str) -> Any | None:
    """Item of functional group `keyword` for `frame` (PS3.3 C.7.6.16).

    Per-frame values take precedence over shared ones.
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    index = frame or 0
    if per_frame and index < len(per_frame):
        item = _first_item(per_frame[index], keyword)
        if item is not None:
            return item
    return _first_item(_first_item(ds, "SharedFunctionalGroupsSequence"), keyword)


def _little_endian(ds: Any) -> bool:
    enc = getattr(ds, "original_encoding", (None, None))
    if enc and enc[1] is not None:
        return bool(enc[1])
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return bool(getattr(tsyntax, "is_little_endian", True))


def _signed_first(value: int, signed: bool) -> int:
    """First mapped value may be encoded US although the input is signed."""
    return value - 65536 if signed and value >= 32768 else value


def _read_lut(item: Any, ds: Any, signed: bool, what: str) -> LutTable:
    """A LUT Descriptor / LUT Data pair (PS3.3 C.11.1.1.1, C.11.2.1.1)."""
    try:
        desc = [int(v) for v in item.LUTDescriptor]
        raw = item.LUTData
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"{_name(ds)}: unreadable {what} ({exc})") from None
    if len(desc) != 3 or raw is None:
        raise DecodeError(f"{_name(ds)}: {what} needs a 3-value LUT Descriptor and LUT Data")
    n = desc[0] or 65536
    bits = desc[2] if desc[2] > 0 else 16
    if isinstance(raw, bytes):
        if len(raw) >= 2 * n:
            values = np.frombuffer(raw[: 2 * n], dtype="<u2" if _little_endian(ds) else ">u2")
        elif len(raw) >= n:
            values = np.frombuffer(raw[:n], dtype=np.uint8)
        else:
            raise DecodeError(f"{_name(ds)}: {what} has {len(raw)} bytes of LUT Data "
                              f"for {n} entries")
    else:
        values = np.asarray(_floats(raw if not isinstance(raw, int) else [raw]))
        if values.size == 0 or not np.isfinite(values).all():
            raise DecodeError(f"{_name(ds)}: {what} has invalid LUT Data")
        values = values[:n]
    explanation = str(item.get("LUTExplanation", "") or "")
    return LutTable.from_values(_signed_first(desc[1], signed), min(bits, 16), values,
                                explanation)


def _read_palette(ds: Any) -> Palette:
    """Palette Color LUTs (PS3.3 C.7.6.3.1.5/6) as an 8-bit RGB table.

    Plain LUT Data is read here with the dataset's byte order (pydicom's
    apply_color_lut assumes little endian); segmented LUTs (C.7.9.2) are
    expanded by pydicom's reference code.  16-bit entries are scaled by 255/65535.
    """
    try:
        desc = [int(v) for v in ds.RedPaletteColorLookupTableDescriptor]
        n = desc[0] or 65536
        first = _signed_first(desc[1], int(ds.get("PixelRepresentation", 0)) == 1)
        if "RedPaletteColorLookupTableData" in ds:
            order = "<" if _little_endian(ds) else ">"
            channels = []
            for colour in ("Red", "Green", "Blue"):
                raw = ds[f"{colour}PaletteColorLookupTableData"].value
                wide = len(raw) >= 2 * n
                channels.append(np.frombuffer(raw[: 2 * n] if wide else raw[:n],
                                              dtype=f"{order}u2" if wide else np.uint8))
            rgb = np.stack(channels, axis=-1)
        else:
            from pydicom.pixels import apply_color_lut

            domain = np.arange(first, first + n, dtype=np.int64)
            rgb = np.asarray(apply_color_lut(domain, ds))[:, :3]
    except Exception as exc:  # missing/odd elements: AttributeError, KeyError, ValueError...
        raise DecodeError(f"{_name(ds)}: unusable Palette Color LUT ({exc})") from None
    if rgb.dtype.itemsize > 1:
        # 16-bit entries; some writers put 8-bit values (descriptor 8) in 16-bit words.
        top = 255 if desc[2] == 8 and int(rgb.max(initial=0)) <= 255 else 65535
        rgb = np.rint(rgb.astype(np.float64) * (255.0 / top))
    return Palette(first, np.clip(rgb, 0, 255).astype(np.uint8).tobytes())


def _windows(src: Any, function: str) -> tuple[Window, ...]:
    """Window Center/Width pairs with their explanations (PS3.3 C.11.2.1.2)."""
    centers = _floats(src.get("WindowCenter"))
    widths = _floats(src.get("WindowWidth"))
    names = _strings(src.get("WindowCenterWidthExplanation"))
    out = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        minimum = 1.0 if function == "LINEAR" else 0.0
        if not (math.isfinite(c) and math.isfinite(w)) or w < minimum or w == 0:
            continue  # invalid window: ignore rather than show garbage
        name = names[i].strip() if i < len(names) and names[i].strip() else f"Window {i + 1}"
        out.append(Window(c, w, function, name))
    return tuple(out)


def _voi_function(src: Any) -> str:
    value = str(src.get("VOILUTFunction", "") or "").strip().upper()
    return value if value in VOI_FUNCTIONS else "LINEAR"


def _spacing(*sources: Any) -> tuple[float, float] | None:
    for src in sources:
        if src is None:
            continue
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            values = _floats(src.get(keyword))
            if len(values) >= 2 and all(math.isfinite(v) and v > 0 for v in values[:2]):
                return (values[0], values[1])
    return None


def _int(ds: Any, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword, default)
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------
# public

def meta_from_dataset(ds: Any, frame: int | None = None) -> ImageMeta:
    """Display metadata of `ds` (a pydicom Dataset, pixels not needed).

    `frame` selects the per-frame functional groups of an enhanced multi-frame
    image (0-based); classic multi-frame images share one set of values.
    Raises `DecodeError` naming the file when the header cannot be displayed.
    """
    try:
        return _meta_from_dataset(ds, frame)
    except DecodeError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError,
            OverflowError) as exc:   # malformed elements deep in a header
        raise DecodeError(f"{_name(ds)}: unreadable display attributes "
                          f"({type(exc).__name__}: {exc})") from None


def _meta_from_dataset(ds: Any, frame: int | None) -> ImageMeta:
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if rows <= 0 or columns <= 0:
        raise DecodeError(f"{_name(ds)}: no image (Rows/Columns missing or zero)")
    spp = _int(ds, "SamplesPerPixel", 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if not photometric:
        photometric = "RGB" if spp == 3 else "MONOCHROME2"
    if spp not in (1, 3):
        raise DecodeError(f"{_name(ds)}: {spp} samples per pixel is not displayable")
    bits_allocated = _int(ds, "BitsAllocated", 8)
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        bits_allocated = 64 if "DoubleFloatPixelData" in ds else 32
    bits_stored = _int(ds, "BitsStored", bits_allocated) or bits_allocated
    pixel_rep = _int(ds, "PixelRepresentation", 0)
    modality = str(ds.get("Modality", "") or "OT")

    enhanced = "PerFrameFunctionalGroupsSequence" in ds or \
        "SharedFunctionalGroupsSequence" in ds
    pvt = _frame_group(ds, frame, "PixelValueTransformationSequence") if enhanced else None
    voi = _frame_group(ds, frame, "FrameVOILUTSequence") if enhanced else None
    measures = _frame_group(ds, frame, "PixelMeasuresSequence") if enhanced else None
    rescale_src = pvt if pvt is not None and "RescaleSlope" in pvt else ds
    voi_src = voi if voi is not None and "WindowCenter" in voi else ds

    slope, intercept, modality_lut = 1.0, 0.0, None
    units = ""
    if spp == 1 and photometric in MONOCHROME:
        if ds.get("ModalityLUTSequence"):
            modality_lut = _read_lut(ds.ModalityLUTSequence[0], ds, pixel_rep == 1,
                                     "Modality LUT Sequence")
            units = str(ds.ModalityLUTSequence[0].get("ModalityLUTType", "") or "")
        elif "RescaleSlope" in rescale_src or "RescaleIntercept" in rescale_src:
            s = _floats(rescale_src.get("RescaleSlope", 1.0))
            i = _floats(rescale_src.get("RescaleIntercept", 0.0))
            slope = s[0] if s and math.isfinite(s[0]) and s[0] != 0 else 1.0
            intercept = i[0] if i and math.isfinite(i[0]) else 0.0
            units = str(rescale_src.get("RescaleType", "") or "")
        if modality == "CT" and not units and modality_lut is None:
            units = "HU"
    function = _voi_function(voi_src)
    windows: tuple[Window, ...] = ()
    voi_luts: tuple[LutTable, ...] = ()
    if spp == 1 and photometric in MONOCHROME:
        windows = _windows(voi_src, function)
        signed_out = pixel_rep == 1 or intercept < 0
        voi_luts = tuple(_read_lut(item, ds, signed_out, "VOI LUT Sequence")
                         for item in (ds.get("VOILUTSequence") or [])
                         if item.get("LUTDescriptor") is not None
                         and item.get("LUTData") is not None)
    palette = _read_palette(ds) if photometric == "PALETTE COLOR" else None
    padding = None
    if "PixelPaddingValue" in ds and spp == 1:
        pad = _int(ds, "PixelPaddingValue", 0)
        limit = _int(ds, "PixelPaddingRangeLimit", pad)
        padding = (min(pad, limit), max(pad, limit))
    return ImageMeta(
        photometric=photometric, bits_stored=bits_stored, pixel_representation=pixel_rep,
        samples_per_pixel=spp, rescale_slope=slope, rescale_intercept=intercept,
        modality_lut=modality_lut, windows=windows, voi_lut_function=function,
        voi_luts=voi_luts, palette=palette, pixel_spacing=_spacing(measures, ds),
        modality=modality, rows=rows, columns=columns, bits_allocated=bits_allocated,
        units=units, padding=padding, float_pixels=_is_float(ds, bits_allocated),
        presentation_inverse=photometric == "MONOCHROME2" and str(
            ds.get("PresentationLUTShape", "") or "").strip().upper() == "INVERSE")


def _is_float(ds: Any, bits_allocated: int) -> bool:
    """Float / Double Float Pixel Data (PS3.3 C.7.6.24), also from a header read without pixels:
    such images have Bits Allocated 32/64 and no Bits Stored / Pixel Representation (Type 1C,
    present only with integer Pixel Data)."""
    if bits_allocated < 32:
        return False
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return True
    return "PixelData" not in ds and "BitsStored" not in ds and "PixelRepresentation" not in ds


def meta_for_plain_image(arr: np.ndarray) -> ImageMeta:
    """Metadata for a PNG/JPEG/TIFF/BMP image: MONOCHROME2 or RGB, 8 or 16 bit.

    Grey images get a full-range window (c = 2**(b-1), w = 2**b), which shows
    the file's grey levels unchanged for 8-bit images.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        spp, photometric = 3, "RGB"
    elif arr.ndim == 2:
        spp, photometric = 1, "MONOCHROME2"
    else:
        raise DecodeError(f"image of shape {arr.shape} is not displayable")
    is_float = arr.dtype.kind == "f"
    bits = 32 if is_float else (1 if arr.dtype == bool else 8 * arr.dtype.itemsize)
    windows: tuple[Window, ...] = ()
    if spp == 1 and not is_float and bits <= 16:
        windows = (Window(2.0 ** (bits - 1), 2.0 ** bits, "LINEAR", "Full range"),)
    return ImageMeta(
        photometric=photometric, bits_stored=bits, bits_allocated=bits,
        pixel_representation=1 if arr.dtype.kind == "i" else 0,
        samples_per_pixel=spp, windows=windows, modality="OT",
        rows=int(arr.shape[0]), columns=int(arr.shape[1]), float_pixels=is_float)
