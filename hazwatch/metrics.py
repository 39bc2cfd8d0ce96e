"""Every Prometheus metric hazwatch exposes, in one place, on an injected registry.

Stages receive a ``Metrics`` object through their constructor; tests build their own
on a fresh ``CollectorRegistry`` and read values with :meth:`Metrics.value`. Every
place that can drop data has a counter here (docs/architecture.md#reliability).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_ALARM_BUCKETS = (
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    2.5,
    5.0,
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # ingest
        # Sparkplug B host (ingest/sparkplug)
        self.sparkplug_rebirths = Counter(
            "hazwatch_sparkplug_rebirth_requests",
            "Rebirth requests (NCMD Node Control/Rebirth) sent to edge nodes, by reason",
            ["reason"],
            registry=r,
        )
        self.sparkplug_rebirths_held = Counter(
            "hazwatch_sparkplug_rebirth_requests_held",
            "Rebirth requests not sent: that edge node was asked less than rebirth_interval_s ago",
            registry=r,
        )
        self.sparkplug_stale_deaths = Counter(
            "hazwatch_sparkplug_stale_deaths",
            "NDEATHs ignored: their bdSeq is not the edge node's current session's",
            registry=r,
        )
        self.messages = Counter(
            "hazwatch_ingest_messages", "MQTT messages received", ["codec"], registry=r
        )
        self.readings = Counter(
            "hazwatch_ingest_readings", "Readings accepted after validation", registry=r
        )
        self.rejected = Counter(
            "hazwatch_ingest_rejected",
            "Messages or readings rejected at the edge, by reason",
            ["reason"],
            registry=r,
        )
        self.unknown_tags = Counter(
            "hazwatch_ingest_unknown_tag_readings",
            "Readings of tags not in the registry (not stored as series)",
            ["enterprise"],
            registry=r,
        )
        self.unknown_tags_evicted = Counter(
            "hazwatch_ingest_unknown_tags_evicted",
            "Unknown-tag list entries pushed out by its bounds (a gateway sending new tags)",
            registry=r,
        )
        self.seq_gaps = Counter(
            "hazwatch_gateway_seq_gaps",
            "Messages missing according to per-gateway seq numbers",
            ["enterprise", "gateway"],
            registry=r,
        )
        self.seq_repeats = Counter(
            "hazwatch_gateway_seq_repeats",
            "Messages whose seq was not above the last one seen",
            ["enterprise", "gateway"],
            registry=r,
        )
        self.sessions_lost = Counter(
            "hazwatch_mqtt_sessions_lost",
            "Reconnects on which the broker no longer had hazwatch's persistent session "
            "(what it held for hazwatch is gone)",
            registry=r,
        )
        self.gateways_online = Gauge(
            "hazwatch_gateways_online", "Gateways whose last status is online", registry=r
        )
        # storage
        self.sink_written = Counter(
            "hazwatch_sink_written_points", "Points written to storage", ["backend"], registry=r
        )
        self.sink_retries = Counter(
            "hazwatch_sink_retries", "Storage writes retried after a transient error", registry=r
        )
        self.sink_write_seconds = Histogram(
            "hazwatch_sink_write_seconds",
            "Duration of one storage write",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # detectors and alerting
        self.conditions = Counter(
            "hazwatch_detector_conditions",
            "Condition changes reported by detectors",
            ["type", "active"],
            registry=r,
        )
        self.alarm_events = Counter(
            "hazwatch_alarm_events", "Alarm state changes", ["kind"], registry=r
        )
        self.alarms_active = Gauge(
            "hazwatch_alarms_active", "Alarms not yet cleared and acknowledged", registry=r
        )
        self.notifications = Counter(
            "hazwatch_notifications",
            "Notification delivery attempts",
            ["channel", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "hazwatch_outbox_pending", "Notifications waiting for delivery", registry=r
        )
        # routing, escalation, flood control (alerting/dispatch.py, alerting/followup.py)
        self.notifications_dead = Counter(
            "hazwatch_notifications_dead",
            "Notifications dead-lettered: refused for good, out of attempts, or for someone "
            "no channel reaches",
            ["channel"],
            registry=r,
        )
        self.notifications_held = Counter(
            "hazwatch_notifications_held",
            "Notifications held back by flood control (sent later, in a digest)",
            ["channel"],
            registry=r,
        )
        self.notification_digests = Counter(
            "hazwatch_notification_digests",
            "Digest messages sent (several notifications in one)",
            ["channel"],
            registry=r,
        )
        self.escalations = Counter(
            "hazwatch_alarm_escalations",
            "Escalation steps (督办): unacknowledged or overdue-feedback tiers, and reminders",
            ["kind"],
            registry=r,
        )
        # channels
        self.channel_dropped = Counter(
            "hazwatch_channel_dropped",
            "Items dropped by drop-oldest channels (live feed to browsers)",
            ["channel"],
            registry=r,
        )
        # durable spool and historian writer
        self.spooled_messages = Counter(
            "hazwatch_spool_messages", "Messages committed to the durable spool", registry=r
        )
        self.spooled_readings = Counter(
            "hazwatch_spool_readings", "Readings committed to the durable spool", registry=r
        )
        self.spool_dropped = Counter(
            "hazwatch_spool_dropped_readings",
            "Readings dropped unwritten because the spool was full (oldest first)",
            registry=r,
        )
        self.spool_depth_messages = Gauge(
            "hazwatch_spool_depth_messages", "Messages in the spool not yet written", registry=r
        )
        self.spool_depth_readings = Gauge(
            "hazwatch_spool_depth_readings", "Readings in the spool not yet written", registry=r
        )
        self.spool_bytes = Gauge(
            "hazwatch_spool_bytes", "Spooled data held, against spool_max_mb", registry=r
        )
        self.dead_lettered = Counter(
            "hazwatch_sink_dead_lettered_points",
            "Points the storage refused for good, moved to the dead-letter table",
            registry=r,
        )
        self.historian_lag = Gauge(
            "hazwatch_historian_lag_seconds",
            "Age of the oldest spooled reading not yet written to storage",
            registry=r,
        )
        self.gateway_last_seen = Gauge(
            "hazwatch_gateway_last_seen_seconds",
            "Receive time (epoch seconds) of the newest message of each gateway",
            ["enterprise", "gateway"],
            registry=r,
        )
        # publish → alarm (bench/latency.py): where an alarm's time goes, stage by stage
        self.alarm_latency = Histogram(
            "hazwatch_alarm_latency_seconds",
            "Reading time to alarm published, per channel (raised events, first attempt)",
            ["channel"],
            buckets=_ALARM_BUCKETS,
            registry=r,
        )
        self.alarm_stage = Histogram(
            "hazwatch_alarm_stage_seconds",
            "An alarm's path by stage: reading time to alerting (MQTT, batching, spool "
            "commit, detectors), waiting for and committing the journal, journal to published",
            ["stage"],
            buckets=_ALARM_BUCKETS,
            registry=r,
        )
        self.ingest_stage = Histogram(
            "hazwatch_ingest_stage_seconds",
            "One ingest batch by stage: oldest message received to handler start, "
            "spool commit, detectors and alerting hand-over",
            ["stage"],
            buckets=_ALARM_BUCKETS,
            registry=r,
        )
        # chattering guard (docs/detectors.md)
        self.chattering = Counter(
            "hazwatch_detector_chattering",
            "Points that started chattering (one alarm activated 3+ times in 60 s, by default)",
            registry=r,
        )
        self.chattering_points = Gauge(
            "hazwatch_detector_chattering_points", "Points chattering now", registry=r
        )
        self.conditions_unrecorded = Counter(
            "hazwatch_alarm_conditions_unrecorded",
            "Condition changes the alarm journal failed to record: no alarm raised or "
            "cleared for them",
            registry=r,
        )
        self.detector_failed_readings = Counter(
            "hazwatch_detector_failed_readings",
            "Readings stored but not judged: the detectors or alerting raised on their batch",
            registry=r,
        )
        self.late_readings = Counter(
            "hazwatch_detector_late_readings",
            "Readings older than their point's newest (stored, not judged by detectors)",
            registry=r,
        )
        self.anomaly_periods = Counter(
            "hazwatch_anomaly_periods",
            "Sample periods of installations with a model: judged, or blind (a point stale, "
            "bad or never seen: not judged)",
            ["result"],
            registry=r,
        )

        # uplinks to supervising platforms (docs/uplink.md)
        self.uplink_queued = Counter(
            "hazwatch_uplink_queued_records",
            "Records queued for an uplink: readings after thinning, alarm changes",
            ["uplink", "kind"],
            registry=r,
        )
        self.uplink_sent = Counter(
            "hazwatch_uplink_sent_records",
            "Records the platform confirmed",
            ["uplink", "kind"],
            registry=r,
        )
        self.uplink_dropped = Counter(
            "hazwatch_uplink_dropped_records",
            "Records dropped unsent: queue full (oldest readings first) or queue failing",
            ["uplink", "reason"],
            registry=r,
        )
        self.uplink_failures = Counter(
            "hazwatch_uplink_failures",
            "Requests the platform did not take (retried with backoff)",
            ["uplink"],
            registry=r,
        )
        self.uplink_backlog = Gauge(
            "hazwatch_uplink_backlog_records",
            "Records waiting to be sent",
            ["uplink", "kind"],
            registry=r,
        )
        self.uplink_lag = Gauge(
            "hazwatch_uplink_lag_seconds",
            "Age of the oldest record waiting",
            ["uplink"],
            registry=r,
        )
        self.task_restarts = Counter(
            "hazwatch_task_restarts",
            "Service loops restarted after an unexpected exception (hazwatch.supervisor)",
            ["task"],
            registry=r,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (``hazwatch_ingest_readings_total``...); 0 if absent."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found
