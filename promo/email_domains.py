"""Every domain whose emails read their data when they are sent. Each registers its
builders in promo/email_contexts.py when imported; importing this module once, where a
relay starts (promo/app.py, `promo relay`), makes sure all of them have, without the
relay (promo/mail.py) importing any domain."""

from __future__ import annotations

from promo import redemption
from promo.nonprofit import donations

SENDING_DOMAINS = (redemption, donations)  # what registers, for a reader to find

