"""The naive ingest people write first: paho ``on_message`` → one HTTP /write per message.

Persistent session and QoS 1 (so it loses nothing queued while it starts), but every
message costs one synchronous HTTP request on a new connection. Used by
``bench/ingest.py`` as the baseline; run alone:

    .venv/bin/python bench/naive.py --mqtt-port 1883 --influx http://127.0.0.1:8086 --db bench
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--influx", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    url = f"{args.influx}/write?db={args.db}&precision=ms"

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        doc = json.loads(msg.payload)
        if parts[4] == "data":
            rows = [(r["tag"], r["v"], r.get("ts", doc["ts"])) for r in doc["readings"]]
        else:
            rows = [(parts[5], doc["v"], doc["ts"])]
        body = "\n".join(
            f"reading,enterprise={parts[2]},gateway={parts[3]},tag={tag} "
            f'value={float(v)},quality="good" {ts}'
            for tag, v, ts in rows
        )
        req = urllib.request.Request(url, data=body.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as response:
            response.read()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="naive-bench", clean_session=False)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("hz/v1/#", qos=1)
    client.connect("127.0.0.1", args.mqtt_port)
    client.loop_forever()


if __name__ == "__main__":
    main()
