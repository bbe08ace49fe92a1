"""A real-photo face-mask detector as the judge of synthetic masks (``maskbench judge``, and the
``realism.json`` that ``maskbench synthesize`` writes).

* :mod:`~maskbench.judge.detector`: AIZOO's detector (MIT, ``LICENSE-aizoo``), its weights shipped
  as arrays beside it, the network written in numpy;
* :mod:`~maskbench.judge.grading`: which faces are judged, pass or fail, rates with intervals;
* :mod:`~maskbench.judge.report`: ``realism.json``, the contact sheet, the summary line.
"""

from maskbench.judge.detector import Face, detect, judged_face
from maskbench.judge.grading import (
    AUTO,
    SAMPLE_RULE,
    YAW_BINS_DEG,
    Item,
    Source,
    default_sample,
    grade,
    items_of,
    lowest_colours,
    read_as_masked,
    sources_for,
    wilson_interval,
)
from maskbench.judge.report import (
    CONTACT_SHEET,
    REALISM_JSON,
    REPORT_FILES,
    REPORT_KIND,
    contact_sheet,
    summary_line,
    write_realism,
)

__all__ = ["AUTO", "CONTACT_SHEET", "REALISM_JSON", "REPORT_FILES", "REPORT_KIND", "SAMPLE_RULE", "YAW_BINS_DEG", "Face",
           "Item", "Source", "contact_sheet", "default_sample", "detect", "grade", "items_of", "judged_face",
           "lowest_colours", "read_as_masked", "sources_for", "summary_line", "wilson_interval", "write_realism"]
