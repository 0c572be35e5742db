"""Email over SMTP: a multipart text + HTML message, sent with STARTTLS (or implicit TLS) and authentication.

The Message-ID is derived from the delivery id, so the rare re-send after a crash between "server accepted" and
"delivery logged" carries the same Message-ID, which many mail systems use to drop the duplicate.
`Auto-Submitted: auto-generated` keeps out-of-office robots from answering alerts.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from shared.clock import utc_now
from shared.notify.config import SmtpServer
from shared.notify.errors import ChannelError
from shared.notify.message import Message


def build_email(message: Message, sender: str, to: list[str], delivery_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = format_datetime(utc_now())
    mail["Message-ID"] = f"<{hashlib.sha256(delivery_id.encode()).hexdigest()[:32]}@cloudact.notifications>"
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Cloudact-Delivery"] = delivery_id
    mail.set_content(message.to_text())
    mail.add_alternative(message.to_html(), subtype="html")
    return mail


def _code_is_transient(code: int) -> bool:
    return 400 <= code < 500


def send_email(mail: EmailMessage, server: SmtpServer, password: str | None, timeout: float) -> str:
    """Send; returns a note about refused recipients ("" when all were accepted). ChannelError on failure."""
    where = f"{server.host}:{server.port}"
    context = ssl.create_default_context(cafile=server.ca_file)
    try:
        client: smtplib.SMTP
        if server.security == "tls":
            client = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with client:
            client.ehlo()
            if server.security == "starttls":
                if not client.has_extn("starttls"):
                    raise ChannelError(f"SMTP server {where} does not offer STARTTLS", transient=False)
                client.starttls(context=context)
                client.ehlo()
            if server.username:
                client.login(server.username, password or "")
            refused = client.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError(f"SMTP {where} refused the login of {server.username}: {_reply(exc)}", False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items())
        transient = all(_code_is_transient(c) for c in codes)
        raise ChannelError(f"SMTP {where} refused every recipient: {detail}", transient) from None
    except smtplib.SMTPConnectError as exc:
        raise ChannelError(f"SMTP {where} refused the connection: {_reply(exc)}", True) from None
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"SMTP {where}: {_reply(exc)}", _code_is_transient(exc.smtp_code)) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ChannelError(f"SMTP {where} does not support what is needed: {exc}", False) from None
    except smtplib.SMTPException as exc:  # disconnected mid-session and the like
        raise ChannelError(f"SMTP {where}: {type(exc).__name__}: {exc}", True) from None
    except ssl.SSLCertVerificationError as exc:
        raise ChannelError(f"TLS certificate of SMTP {where} not trusted: {exc.verify_message}", False) from None
    except (TimeoutError, ConnectionError, OSError) as exc:
        raise ChannelError(f"cannot reach SMTP {where}: {type(exc).__name__}: {exc}", True) from None
    if refused:
        return "refused: " + "; ".join(f"{r}: {code} {_text(msg)}" for r, (code, msg) in refused.items())
    return ""


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"
