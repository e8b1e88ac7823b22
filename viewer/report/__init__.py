"""Structured Reports for reading (Qt-free): parse an SR document, render it as HTML or text.

    from medviewer.viewer.report import read_report, to_html
    doc = read_report(path)        # ReportDocument (ReportError: one line naming the file)
    html = to_html(doc)            # what the viewer's Reports panel shows

Any SR document (PS3.3 C.17: Basic / Enhanced / Comprehensive / Comprehensive 3D SR,
Key Object Selection) is rendered as its content tree (PS3.3 C.17.3); a TID 1500
Measurement Report (PS3.16 A.35.1) is rendered as what it is: observation
context, procedure, measurement groups as tables, qualitative evaluations.
Image references are links `sop:<SOP Instance UID>[#frame]` the viewer follows.
"""

from medviewer.viewer.report.model import (ImageLink, Measurement, MeasurementGroup, ReportDocument,
                                           ReportError, ReportNode, is_report, read_report)
from medviewer.viewer.report.render import to_html, to_text

__all__ = ["ImageLink", "Measurement", "MeasurementGroup", "ReportDocument", "ReportError", "ReportNode",
           "is_report", "read_report", "to_html", "to_text"]
