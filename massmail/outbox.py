"""The development email backend: each message is written as an .eml file under var/outbox/."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class EmailBackend(BaseEmailBackend):
    def __init__(self, outbox_dir: str | Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.outbox_dir = Path(outbox_dir or settings.EMAIL_OUTBOX_DIR)

    def send_messages(self, email_messages) -> int:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            self.write(message.message().as_bytes(linesep="\r\n"))
        return len(email_messages)

    def write(self, raw: bytes) -> Path:
        """Also used by the mass email sender, which hands over prepared bytes."""
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
        path = self.outbox_dir / name
        path.write_bytes(raw)
        return path
