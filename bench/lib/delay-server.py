#!/usr/bin/env python3
"""A small HTTP/1.1 server for benchmarks: answers every request with 128 bytes after a fixed
delay (asyncio, keep-alive, honours Connection: close). Usage: delay-server.py PORT DELAY_MS"""
import asyncio
import sys

BODY = b"x" * 127 + b"\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 128\r\n\r\n" + BODY


async def serve(reader, writer, delay):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            length = 0
            for line in lower.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if delay:
                await asyncio.sleep(delay)
            writer.write(RESPONSE)
            await writer.drain()
            if b"connection: close" in lower:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    port, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000
    server = await asyncio.start_server(lambda r, w: serve(r, w, delay), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main())
