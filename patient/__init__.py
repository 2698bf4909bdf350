"""Patient report links (issue 13; CONTRACT §7): a patient reads their signed report.

May import ``core``, ``fhir``, ``imaging_core`` and ``referral`` (the report, its
sign-off statuses, the order workflow's own writes), ``rules`` (the words of a coded
reason the GP sent without them), and ``auth`` for the staff
session guard and the CSRF check its forms share. Nothing imports ``patient``
except the application factory (``scanpath.app``), which calls ``init_app``.

The link and its safety:

- ``links``: at sign-off and amendment, the link as a DocumentReference and a
  ``patient_link`` row (token design, supersession, revocation rules, the URL
  shown to clients but never stored); ``deliver``;
- ``access``: finding a link in constant time, the date of birth as second
  factor, lockout per link and per address, sessions bound to one link, audit;
- ``forms``: reading the ``birthDate`` answer;
- ``views``: ``/r/{token}`` pages and files, and the staff "Revoke patient link" form;
- ``models``: the tables (migration 0018).

The report's content, in plain language (branch patient-page): ``page``
(``report_page``), ``assets`` (key images, 3D model, still, PDF), ``still`` and
``plain``; the page's own script and style in ``web/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Serve the /r/ pages and make links when reports are signed off."""
    from patient import links, views

    views.init_app(app)
    links.register()
