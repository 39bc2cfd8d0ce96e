"""The uplink stage: forwarding to supervising platforms, store-and-forward.

``[[uplink]]`` entries of the settings become :class:`uplink.service.Uplinks`; each
entry is one :class:`uplink.forwarder.UplinkForwarder` with its own durable queue.
The design (where the cursor lives, why nothing acknowledged is lost) is in
docs/uplink.md. Like ``ingest``, ``detectors`` and ``alerting``, this stage imports
no other stage: it meets them in ``hazwatch/app.py``.
"""
