"""SR documents as HTML (the viewer's Reports panel) and as plain text (Qt-free).

A TID 1500 Measurement Report is laid out by its parts: observation context,
procedure, image library (counted), measurement groups (groups with the same
measurements share one table, one row each, with a link to the image they
were made on), qualitative evaluations.  Any other SR is shown as its content
tree: relationship, concept name, value.
"""

from __future__ import annotations

from html import escape

from medviewer.viewer.report.model import MeasurementGroup, ReportDocument, ReportNode, measurement_groups

STYLE = ("<style>body{font-family:sans-serif;font-size:10pt} h2{margin:2px 0} h3{margin:10px 0 2px 0}"
         " td,th{padding:1px 6px} th{text-align:left;background:#e8e8e8} .notice{color:#c05000;font-weight:bold}"
         " .meta{color:#555} .rel{color:#777;font-style:italic}</style>")
NOTICE_WORDS = ("notice", "warning", "caution")
MAX_TREE_ROWS = 5000


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _v(text: object) -> str:
    """A value: escaped, line breaks kept."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
    return "<br>".join(_e(line) for line in lines)


def _link(link) -> str:
    return f'<a href="{_e(link.href())}">{_e(_image_label(link))}</a>'


def _image_label(link) -> str:
    return "image" + (f" frame {link.frames[0]}" if link.frames else "")


def _header(doc: ReportDocument) -> list[str]:
    status = ", ".join(v for v in (doc.completion, doc.verification, doc.preliminary) if v)
    return [f"<h2>{_e(doc.title or 'Structured Report')}</h2>",
            f"<p><b>{_e(doc.series_description or doc.sop_class)}</b><br>"
            f"<span class='meta'>{_e(doc.sop_class)}{' &middot; TID ' + _e(doc.template) if doc.template else ''}"
            f"<br>Patient: {_e(doc.patient_name)} ({_e(doc.patient_id)}) &middot; Content: "
            f"{_e(doc.content_datetime)}<br>Status: {_e(status)}</span></p>"]


def _pairs_table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td{' class=notice' if any(w in k.lower() for w in NOTICE_WORDS) else ''}>"
        f"{_v(v)}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _simple(g: MeasurementGroup) -> bool:
    return not g.algorithm and not g.evaluations


def _group_block(g: MeasurementGroup) -> str:
    parts = [f"<p><b>{_e(g.tracking or 'Measurement group')}</b>"
             + (f" &mdash; finding: <b>{_e(g.finding)}</b>" if g.finding else "")
             + (" &mdash; " + ", ".join(_link(i) for i in g.images) if g.images else "") + "</p>"]
    if g.measurements:
        rows = "".join(f"<tr><td>{_e(m.concept)}</td><td><b>{_e(m.value)}</b></td>"
                       f"<td class='meta'>{_e('; '.join(m.modifiers))}</td></tr>" for m in g.measurements)
        parts.append(f"<table><tr><th>Measurement</th><th>Value</th><th></th></tr>{rows}</table>")
    if g.evaluations:
        parts.append(_pairs_table(g.evaluations))
    if g.algorithm:
        parts.append("<p class='meta'>" + "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in g.algorithm) + "</p>")
    return "".join(parts)


def _compact_table(groups: list[MeasurementGroup]) -> str:
    concepts: list[str] = []
    for g in groups:
        for m in g.measurements:
            if m.concept not in concepts:
                concepts.append(m.concept)
    head = "".join(f"<th>{_e(c)}</th>" for c in concepts)
    rows = []
    for g in groups:
        values = {m.concept: m.value for m in g.measurements}
        cells = "".join(f"<td>{_e(values.get(c, ''))}</td>" for c in concepts)
        images = ", ".join(_link(i) for i in g.images)
        rows.append(f"<tr><td>{_e(g.tracking)}</td><td><b>{_e(g.finding)}</b></td>{cells}<td>{images}</td></tr>")
    return (f"<table><tr><th>Tracking</th><th>Finding</th>{head}<th>Image</th></tr>{''.join(rows)}</table>")


def _tid1500(doc: ReportDocument) -> list[str]:
    out: list[str] = []
    context = [(c.concept, c.value) for c in doc.root.children if c.relationship == "HAS OBS CONTEXT"]
    if context:
        out += ["<h3>Observation context</h3>", _pairs_table(context)]
    procedures = [c.value for c in doc.root.children if c.concept == "Procedure reported"]
    if procedures or doc.library_images:
        out.append("<p>" + (f"Procedure reported: {_e(', '.join(procedures))}<br>" if procedures else "")
                   + f"Image library: {doc.library_images} image(s)</p>")
    groups = measurement_groups(doc)
    if groups:
        out.append(f"<h3>Measurements ({len(groups)} group{'s' if len(groups) != 1 else ''})</h3>")
        run: list[MeasurementGroup] = []
        for g in groups + [None]:  # type: ignore[list-item]
            if g is not None and _simple(g):
                run.append(g)
                continue
            if run:
                out.append(_compact_table(run) if len(run) > 1 else _group_block(run[0]))
                run = []
            if g is not None:
                out.append(_group_block(g))
    for container in (c for c in doc.root.children if c.concept == "Qualitative Evaluations"):
        out += ["<h3>Qualitative evaluations</h3>", _pairs_table([(c.concept, c.value) for c in container.children])]
    return out


def _tree(node: ReportNode, rows: list[str], depth: int = 0) -> None:
    if len(rows) >= MAX_TREE_ROWS:
        return
    value = _link(node.link) + f" ({_e(node.value)})" if node.link else _v(node.value)
    cls = " class=notice" if any(w in node.concept.lower() for w in NOTICE_WORDS) else ""
    rows.append(f"<li><span class='rel'>{_e(node.relationship.lower())}</span> <b>{_e(node.concept)}</b>"
                + (f": <span{cls}>{value}</span>" if node.value or node.link else "") + "</li>")
    if node.children:
        rows.append("<ul>")
        for child in node.children:
            _tree(child, rows, depth + 1)
        rows.append("</ul>")


def to_html(doc: ReportDocument) -> str:
    """The document as HTML (Qt's rich-text subset is enough)."""
    parts = [STYLE, *_header(doc)]
    if doc.is_tid1500:
        parts += _tid1500(doc)
    else:
        rows: list[str] = []
        for child in doc.root.children:
            _tree(child, rows)
        parts.append("<ul>" + "".join(rows) + "</ul>")
        if len(rows) >= MAX_TREE_ROWS:
            parts.append(f"<p class='meta'>(shortened: first {MAX_TREE_ROWS} items)</p>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def to_text(doc: ReportDocument) -> str:
    """The content tree as indented text lines (logs, terminals, tests)."""
    lines = [f"{doc.title} [{doc.sop_class}{', TID ' + doc.template if doc.template else ''}]"]

    def walk(node: ReportNode, depth: int) -> None:
        value = f": {node.value}" if node.value else ""
        lines.append(f"{'  ' * depth}{node.relationship.lower()} {node.concept}{value}".rstrip())
        for child in node.children:
            walk(child, depth + 1)

    for child in doc.root.children:
        walk(child, 1)
    return "\n".join(lines)
