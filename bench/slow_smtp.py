"""An SMTP sink for the benchmarks, behind a network with a `--delay` seconds round trip: aiosmtpd
(STARTTLS and PIPELINING offered, as Postfix, Gmail and SES do) on a port of its own, and on `--port` a
TCP relay that delivers every chunk of bytes half a round trip after it was sent, each way, without
holding back the chunks behind it, as a network does: an answer comes a round trip after its question,
questions sent together are answered together (pipelining pays), and a TLS handshake costs its round
trip. A new connection's greeting comes two round trips after the connect (TCP's handshake, then the
greeting's way back). One line per accepted message (`<subject> <time.time() accepted>`) on `--log`.

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
from typing import Any, TextIO

from aiosmtpd.controller import Controller

from envoi.embedded_redis import free_port


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


class _Offering(_Recorder):
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to a handler that answers EHLO
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


async def _carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_way: float) -> None:
    """Every chunk read is written `one_way` seconds later, in order; reading goes on meanwhile."""
    loop = asyncio.get_running_loop()
    in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await in_flight.get()
            await asyncio.sleep(max(0.0, due - loop.time()))  # the network being simulated
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(65536):
            in_flight.put_nowait((loop.time() + one_way, chunk))
    except ConnectionError:
        pass
    in_flight.put_nowait((loop.time() + one_way, b""))
    await delivering


async def _network(port: int, upstream: int, delay: float) -> None:
    async def connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1.5 * delay)  # SYN, SYN-ACK, ACK: the greeting leaves the server then
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(
            _carry(client_reader, server_writer, delay / 2), _carry(server_reader, client_writer, delay / 2)
        )

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    print("ready", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


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
    upstream = free_port()
    with args.log.open("a") as log:
        # aiosmtpd's thread starts with the signals blocked: they reach the relay's loop, which stops.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        controller = Controller(
            _Offering(log), hostname="127.0.0.1", port=upstream, tls_context=context, require_starttls=True
        )
        controller.start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        asyncio.run(_network(args.port, upstream, args.delay))
        controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
