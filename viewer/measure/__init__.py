"""Qt-free measurement and annotation core.

    geometry    shapes in image pixel coordinates (distance, angle, Cobb angle, ellipse /
                rectangle / freehand ROI, point probe, arrow with text)
    stats       ROI statistics on stored pixels (modality units), lengths and angles
    tools       the tool protocol for the canvas (press / move / release / paint),
                AnnotationStore with undo / redo
    report      annotations <-> DICOM TID 1500 Measurement Report SR (highdicom)
    keyimages   Key Object Selection documents for key images
    table       measurement table as CSV
    cli         `medviewer measure`
"""
