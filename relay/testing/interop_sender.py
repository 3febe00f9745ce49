#!/usr/bin/env python3
"""A relay sender written with an independent WebSocket library (Debian's python3-websockets).

Connects to ws://127.0.0.1:PORT/$hc/ENTITY?action=connect with a SAS token in the Authorization
header, sends each message given on the command line as a binary message, and checks that the
listener answers each with the same text upper-cased. Exit status 0 on success; otherwise a
one-line reason on stderr. It also checks that a refused token gets HTTP 401.
"""
import argparse
import asyncio
import sys

import websockets


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--entity", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("messages", nargs="+")
    args = parser.parse_args()
    uri = f"ws://127.0.0.1:{args.port}/$hc/{args.entity}?action=connect"

    try:
        async with websockets.connect(uri, extra_headers={"Authorization": "SharedAccessSignature sr=x&sig=y&se=1&skn=cloud"}):
            print("a bad token was accepted", file=sys.stderr)
            return 1
    except websockets.exceptions.InvalidStatusCode as refused:
        if refused.status_code != 401:
            print(f"bad token got HTTP {refused.status_code}, expected 401", file=sys.stderr)
            return 1

    async with websockets.connect(uri, extra_headers={"Authorization": args.token},
                                  open_timeout=30, close_timeout=10) as ws:
        for message in args.messages:
            await ws.send(message.encode())
            reply = await asyncio.wait_for(ws.recv(), timeout=30)
            if isinstance(reply, str):
                reply = reply.encode()
            if reply != message.upper().encode():
                print(f"sent {message!r}, got {reply!r}", file=sys.stderr)
                return 1
        await ws.close(code=1000, reason="interop done")
    print(f"exchanged {len(args.messages)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
