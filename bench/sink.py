"""A counting SMTP sink in its own process for the relay benchmark: accepts every message
and keeps nothing (so it costs the measured relay as little as possible)."""

from __future__ import annotations

import sys
import time

from aiosmtpd.controller import Controller


class Accept:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


if __name__ == "__main__":
    controller = Controller(Accept(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    try:
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 600)  # bounded: stops by itself
    finally:
        controller.stop()
