"""The kv_server's v1 protocol (examples/kv_server/v1.molt) on Python asyncio, a peer for
benches/kv/run.sh: one coroutine per client, one line per request, one line per reply.

  SET key value -> OK; GET key -> VALUE value | MISSING; QUIT -> BYE (then closed);
  a known command with the wrong number of words -> ERROR usage: ...; an empty line ->
  ERROR empty request; anything else -> ERROR unknown command: X

Run: python3 kv_server.py [127.0.0.1:PORT]   (default 127.0.0.1:7070; port 0: any free port)
The first line printed is `listening on 127.0.0.1:PORT`.
"""
import asyncio
import sys


class Entry:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


store = {}


def handle(line):
    words = line.strip().split(" ")
    cmd = words[0].upper()
    n = len(words)
    if cmd == "":
        return "ERROR empty request"
    if cmd == "SET":
        if n < 3:
            return "ERROR usage: SET key value"
        store[words[1]] = Entry(" ".join(words[2:]))
        return "OK"
    if cmd == "GET":
        if n != 2:
            return "ERROR usage: GET key"
        e = store.get(words[1])
        return "MISSING" if e is None else "VALUE " + e.value
    if cmd == "QUIT":
        return "BYE"
    return "ERROR unknown command: " + words[0]


async def session(reader, writer):
    try:
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                raw = e.partial
                if not raw:
                    break
            except asyncio.LimitOverrunError:
                break
            reply = handle(raw.decode("utf-8", "replace").rstrip("\r\n"))
            writer.write((reply + "\n").encode())
            await writer.drain()
            if reply == "BYE":
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7070"
    host, _, port = addr.rpartition(":")
    server = await asyncio.start_server(session, host, int(port), limit=1 << 20)
    print("listening on %s:%d" % (host, server.sockets[0].getsockname()[1]), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
