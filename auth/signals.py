"""What the token endpoint reports to whoever audits it (blinker signals, as Flask's own).

``auth`` may import only ``core``, so it cannot write AuditEvents itself; the
application shell (``scanpath.auditing``) subscribes and records them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# sender: the Flask app; client_id: str, scope: str. Sent before the token's
# transaction commits, so its AuditEvent is written in that transaction.
token_issued = _signals.signal("token-issued")
# sender: the Flask app; claimed_client: str | None (the unverified assertion issuer),
# error: str (the RFC 6749 error code), description: str. The request's changes are
# already rolled back.
token_refused = _signals.signal("token-refused")
# sender: the Flask app; username: str (the logged-in user, or the name claimed at a
# failed login), role: str | None, action: str ("login", "logout", "page-view",
# "vet-accept", ...), entity: str | None (a reference), outcome: "success", "minor"
# or "serious", detail: str | None. Recorded and committed at once.
staff_audit = _signals.signal("staff-audit")
