"""Documents generated from the manifest: the Art. 30 record, the privacy notice, its changes."""

from lawful.documents.diff import notice_diff
from lawful.documents.notice import render_notice
from lawful.documents.ropa import render_ropa, ropa_rows
from lawful.documents.words import describe_retention

__all__ = ["describe_retention", "notice_diff", "render_notice", "render_ropa", "ropa_rows"]
