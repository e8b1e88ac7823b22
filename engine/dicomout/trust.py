"""The trust signals of a series' AI result in its SR (TID 1500): out-of-distribution
check, input check, audit-log entry and the reader's verdict (IHE AIR / AIRAI).

Written through `ReportBuilder`'s extension points:

* series result group (TID 1501): NUM "Fraction of images out-of-distribution"
  (UCUM unit 1) and NUM "Images out-of-distribution" (UCUM {images}) when the model
  has an OOD check (engine.ood), and a CODE qualitative evaluation "Out-of-distribution
  check" = flagged / not flagged / not available;
* Qualitative Evaluations of the report: TEXT items for the OOD summary, each input
  check warning (engine.inputcheck), the audit-log entry (engine.audit), and the reader's
  verdict as CODE "AI result assessment" = accepted / rejected / modified with TEXT
  items naming the reader (OS user), the time (UTC) and the comment.

PS3.16 has no codes for these concepts, so they use the private scheme 99MEDVIEWER
(declared in the SR's Coding Scheme Identification Sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from highdicom.sr import CodedConcept

from medviewer.engine.dicomout import codes

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.dicomout.sr import ReportBuilder

UNIT_IMAGES = CodedConcept(value="{images}", scheme_designator="UCUM", meaning="images")
OOD_FRACTION = codes.private("OOD_FRACTION", "Fraction of images out-of-distribution")
OOD_FLAGGED = codes.private("OOD_FLAGGED", "Images out-of-distribution")
OOD_CHECK = codes.private("OOD_CHECK", "Out-of-distribution check")
OOD_RESULT = {
    "flagged": codes.private("OOD_SOME", "Images unlike the training images"),
    "clear": codes.private("OOD_NONE", "No image unlike the training images"),
    "none": codes.private("OOD_NA", "No out-of-distribution check"),
}
OOD_SUMMARY = codes.private("OOD_SUMMARY", "Out-of-distribution summary")
INPUT_WARNING = codes.private("INPUT_WARNING", "Input check warning")
AUDIT_ENTRY = codes.private("AUDIT_ENTRY", "Audit log entry")
ASSESSMENT = codes.private("AI_ASSESSMENT", "AI result assessment")
VERDICT_CODES = {
    "accepted": codes.private("ACCEPTED", "Accepted"),
    "rejected": codes.private("REJECTED", "Rejected"),
    "modified": codes.private("MODIFIED", "Modified"),
}
ASSESSOR = codes.private("ASSESSOR", "Assessed by")
ASSESSED_AT = codes.private("ASSESSED_AT", "Assessment time (UTC)")
ASSESSMENT_COMMENT = codes.private("ASSESSMENT_NOTE", "Assessment comment")


@dataclass
class TrustInfo:
    """What the SR says about a result's trust signals (all optional)."""

    ood_checked: bool = False
    ood_flagged: int | None = None
    ood_scored: int | None = None
    ood_threshold: float | None = None
    input_warnings: list[str] = field(default_factory=list)
    audit_id: str | None = None
    verdict: str | None = None           # accepted | rejected | modified
    verdict_comment: str = ""
    verdict_user: str = ""
    verdict_time: str = ""
    ood_not_run: str = ""                # why the model's OOD check did not run (e.g. the Ray engine)

    @classmethod
    def from_prediction(cls, prediction: Any, **more: Any) -> "TrustInfo":
        """From an engine.series.SeriesPrediction (its OOD scores), plus keyword fields."""
        summary = prediction.ood_summary() if hasattr(prediction, "ood_summary") else None
        if summary is None:
            return cls(**more)
        return cls(ood_checked=True, ood_flagged=summary["flagged"], ood_scored=summary["checked"],
                   ood_threshold=summary["threshold"], **more)


def add_trust(builder: "ReportBuilder", info: TrustInfo) -> None:
    """Put `info` into the report being built."""
    if info.ood_checked and info.ood_scored:
        k, n = int(info.ood_flagged or 0), int(info.ood_scored)
        builder.add_series_measurement(OOD_FRACTION, k / n)
        builder.add_series_measurement(OOD_FLAGGED, float(k), UNIT_IMAGES)
        builder.add_series_evaluation(OOD_CHECK, OOD_RESULT["flagged" if k else "clear"])
        thr = f" (score threshold {info.ood_threshold:.3f})" if info.ood_threshold is not None else ""
        builder.add_report_text(OOD_SUMMARY, f"{k} of {n} analysed image(s) unlike the images this model was "
                                             f"trained on{thr}")
    else:
        builder.add_series_evaluation(OOD_CHECK, OOD_RESULT["none"])
        why = f"out-of-distribution check not run ({info.ood_not_run})" if info.ood_not_run else \
            "no out-of-distribution check"
        builder.add_report_text(OOD_SUMMARY, f"{why}: results on images unlike the training images are not "
                                             "flagged")
    for line in info.input_warnings:
        builder.add_report_text(INPUT_WARNING, line)
    if info.audit_id:
        builder.add_report_text(AUDIT_ENTRY, info.audit_id)
    if info.verdict:
        if info.verdict not in VERDICT_CODES:
            raise ValueError(f"verdict must be one of {', '.join(VERDICT_CODES)}, got {info.verdict!r}")
        builder.add_report_code(ASSESSMENT, VERDICT_CODES[info.verdict])
        if info.verdict_user:
            builder.add_report_text(ASSESSOR, info.verdict_user)
        if info.verdict_time:
            builder.add_report_text(ASSESSED_AT, info.verdict_time)
        if info.verdict_comment:
            builder.add_report_text(ASSESSMENT_COMMENT, info.verdict_comment)
