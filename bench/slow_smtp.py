"""An SMTP sink for the benchmarks: aiosmtpd, STARTTLS offered, each reply held `--delay` seconds (a
network's round trip), one line per accepted message (`<subject> <time.time() accepted>`) on `--log`.

    python bench/slow_smtp.py --port 2525 --delay 0.02 --cert cert.pem --key key.pem --log accepted.txt

Run as its own process, so that the sink does not share a CPU's interpreter lock with what it measures.
`certificate()` makes a self-signed certificate for 127.0.0.1 with the openssl CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import subprocess
import sys
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any, AnyStr, TextIO

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class _Recorder:
    def __init__(self, log: TextIO) -> None:
        self.log = log

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        subject = message_from_bytes(envelope.original_content or envelope.content)["Subject"]
        self.log.write(f"{subject} {time.time()}\n")
        self.log.flush()
        return "250 Message accepted for delivery"


def _slow_smtp(delay: float) -> type[SMTP]:
    class SlowSMTP(SMTP):
        async def push(self, status: AnyStr) -> None:
            await asyncio.sleep(delay)  # the round trip being simulated
            await super().push(status)

    return SlowSMTP


class _Controller(Controller):
    def __init__(self, *args: Any, delay: float, **kwargs: Any) -> None:
        self.smtp_class = _slow_smtp(delay)
        super().__init__(*args, **kwargs)

    def factory(self) -> SMTP:
        return self.smtp_class(self.handler, **self.SMTP_kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    with args.log.open("a") as log:
        controller = _Controller(
            _Recorder(log),
            hostname="127.0.0.1",
            port=args.port,
            delay=args.delay,
            tls_context=context,
            require_starttls=True,
        )
        controller.start()
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
