"""A receiver's Shiny session over the share gate's WebSocket (issue 16).

Run as the receiver by tests/apps/test_run_outsider.py (real Slurm on this host, the host's
python3 with aiohttp) and by the Molecule lab's Shiny share (molecule/default/tests/
test_default.py, the kit's virtualenv, which has aiohttp for the gate). Opens URL (the gate's
`/<secret>/websocket/`), sends Shiny's `init` message and waits for a server message holding
MARKER, which only the app's server function renders; prints "got MARKER" then, and exits 1
after 30 s without it.

usage: python3 shiny_ws_client.py URL MARKER
"""
from __future__ import annotations

import asyncio
import json
import sys

import aiohttp


async def receive(url: str, marker: str) -> bool:
    async with aiohttp.ClientSession() as session, session.ws_connect(url, timeout=20) as ws:
        await ws.send_str(json.dumps({"method": "init", "data": {".clientdata_output_x_hidden": False}}))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and marker in msg.data:
                return True
    return False


def main() -> int:
    url, marker = sys.argv[1], sys.argv[2]
    try:
        got = asyncio.run(asyncio.wait_for(receive(url, marker), 30))
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        print(f"no {marker} from {url}: {exc!r}", file=sys.stderr)
        return 1
    if not got:
        print(f"the WebSocket at {url} closed before sending {marker}", file=sys.stderr)
        return 1
    print(f"got {marker}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
