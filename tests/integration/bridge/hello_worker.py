"""A Hurozo remote worker written from shared/reference/hurozo-remote-nodes.md, like Hurozo's
own hello-world example: requests for the registration loop, websockets for the event loop.

Against muster-bridge host mode only HUROZO_API_URL changes. The test-only knobs below default
to the reference's values: REGISTER_INTERVAL (60 s between registrations), RECONNECT_DELAY
(5 s after a WebSocket error). Run it with Debian's /usr/bin/python3 (python3-requests,
python3-websockets).
"""

import asyncio
import json
import os
import threading
import time

import requests
import websockets

API_TOKEN = os.environ.get("HUROZO_TOKEN", "YOUR_TOKEN")
BASE_URL = os.environ.get("HUROZO_API_URL", "https://app.hurozo.com")
NODE_NAME = os.environ.get("NODE_NAME", "ws_hello")
NODE_INPUTS = ["name"]
NODE_OUTPUTS = ["greeting", "shout"]
REGISTER_INTERVAL = float(os.environ.get("REGISTER_INTERVAL", "60"))
RECONNECT_DELAY = float(os.environ.get("RECONNECT_DELAY", "5"))

ws_info = {}
ws_lock = threading.Lock()


def register_loop():
    url = f"{BASE_URL}/api/remote_nodes/register"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    payload = {"name": NODE_NAME, "inputs": NODE_INPUTS, "outputs": NODE_OUTPUTS}
    while True:
        try:
            res = requests.post(url, json=payload, headers=headers, timeout=60)
            data = res.json()
            if res.ok and "websocket_url" in data:
                with ws_lock:
                    ws_info.update(data)
                print("registered", NODE_NAME, flush=True)
            else:
                print("Registration failed:", res.status_code, data, flush=True)
        except Exception as e:
            print("Registration failed:", e, flush=True)
        time.sleep(REGISTER_INTERVAL)


async def websocket_loop():
    while True:
        with ws_lock:
            url = ws_info.get("websocket_url")
            token = ws_info.get("token")
        if not url or not token:
            await asyncio.sleep(1)
            continue
        try:
            async with websockets.connect(f"{url}?auth={token}") as ws:
                print("websocket connected", flush=True)
                while True:
                    msg = await ws.recv()
                    try:
                        payload = json.loads(msg)
                    except Exception:
                        continue
                    if payload.get("node") != NODE_NAME:
                        continue  # ignore messages for other nodes
                    inputs = payload.get("inputs", {})
                    name = str(inputs.get("name") or "").strip() or "world"
                    outputs = {
                        "greeting": f"Hello {name}",
                        "shout": f"HELLO {name.upper()}",
                    }
                    await ws.send(json.dumps({
                        "node": NODE_NAME,
                        "outputs": outputs,  # keys must match your outputs[] list
                        "uuid": payload.get("uuid"),  # echo uuid so backend correlates
                    }))
        except Exception as e:
            print("Websocket error:", e, flush=True)
            await asyncio.sleep(RECONNECT_DELAY)


if __name__ == "__main__":
    threading.Thread(target=register_loop, daemon=True).start()
    asyncio.run(websocket_loop())
