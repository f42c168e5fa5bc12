"""The limits the web views hand to the services, read from the settings once.

`create_app` builds one `ServiceLimits` from the settings; views take it with
`limits_of(request)` (promo/views/context.py) instead of reading the settings each time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from promo.config import Settings


@dataclass(frozen=True)
class ServiceLimits:
    guess_limit: int  # failed product keys per account and per IP per hour (security.key_attempts_per_hour)
    resend_per_hour: int  # a reward's email sent again at most this often (R-X10, mail.resend_per_hour)
    session_idle: timedelta  # a session unused this long ends (consumer and staff)
    session_absolute: timedelta  # and any session ends this long after sign-in
    shared_addresses: tuple[str, ...]  # IPs or networks many accounts share: no "many accounts" flag (R-X12)
    receipts_dir: Path  # where receipts sent for review are kept
    max_receipt_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceLimits:
        return cls(
            guess_limit=settings.key_attempts_per_hour,
            resend_per_hour=settings.mail.resend_per_hour,
            session_idle=timedelta(minutes=settings.session_idle_minutes),
            session_absolute=timedelta(hours=settings.session_max_hours),
            shared_addresses=settings.shared_addresses,
            receipts_dir=settings.receipts_dir,
            max_receipt_bytes=settings.max_receipt_bytes,
        )
