"""A minimal SMTP sink for benchmarks: accepts and discards, faster than any sender.

aiosmtpd reads DATA line by line and spends 1-2 ms of CPU per message on this
machine, so it, not the sender, would be what a benchmark measures. This server
answers the SMTP verbs and reads DATA in large chunks until CRLF.CRLF.

    .venv/bin/python bench/fast_sink.py --port 2626   # prints the count on SIGTERM/SIGINT
"""

from __future__ import annotations

import argparse
import asyncio
import signal

END_OF_DATA = b"\r\n.\r\n"


class Counter:
    messages = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 fast-sink ESMTP\r\n")
    try:
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await read_data(reader)
                Counter.messages += 1
                writer.write(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"EHLO":
                writer.write(
                    b"250-fast-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n"
                )
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                break
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                writer.write(b"250 2.0.0 Ok\r\n")
            await writer.drain()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def read_data(reader: asyncio.StreamReader) -> None:
    tail = b""
    while True:
        chunk = await reader.read(262144)
        if not chunk:
            raise asyncio.IncompleteReadError(tail, None)
        # The terminator may straddle two chunks: keep the last bytes of the previous one.
        if END_OF_DATA in tail[-4:] + chunk:
            return
        tail = chunk


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {port}", flush=True)
    async with server:
        await stop.wait()
    print(f"received {Counter.messages}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
