"""Prometheus metrics, one registry per app (so tests and several apps never collide)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from promo.db import Database
from promo.operations import OperationsSnapshot
from promo.supervisor import Supervised


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "promo_http_requests", "HTTP requests handled", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "promo_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        # Read from the decision log at scrape time, so redemptions made by any process
        # (the CLI, another server) count, not only this process's.
        self.redemptions = Gauge(
            "promo_redemption_decisions", "Redemption decisions by outcome (from the decision log)",
            ["campaign", "outcome"], registry=self.registry,
        )
        self.refusal_rules = Gauge(
            "promo_refusals_by_rule", "Refused redemptions by failing rule id (from the decision log)",
            ["campaign", "rule"], registry=self.registry,
        )
        self.group_commits = Gauge(
            "promo_db_group_commits", "Shared COMMITs of grouped writes by this process, by where they ran",
            ["where"], registry=self.registry,
        )
        self.grouped_writes = Gauge(
            "promo_db_grouped_writes", "Writes (redemptions, relay outcomes) saved by those COMMITs", registry=self.registry,
        )
        self.code_stock = Gauge(
            "promo_code_stock", "Reward codes by status (read at scrape time)", ["campaign", "status"], registry=self.registry
        )
        self.workers: list[Supervised] = []  # background workers (the mail relay), read at scrape time
        self.registry.register(_WorkerCollector(self.workers))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status), not per request.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (self.requests.labels(method, route, str(status)),
                                                       self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)

    def set_from_writer(self, db: Database) -> None:
        """This process's group commits (write_grouped): how many ran on the event loop and
        how many had to queue on the writer thread (behind a long write, or another process
        holding the write lock). A growing thread share means writers contend."""
        self.group_commits.labels("loop").set(db.group_commits - db.group_commits_on_thread)
        self.group_commits.labels("thread").set(db.group_commits_on_thread)
        self.grouped_writes.set(db.grouped_writes)

    def set_from_database(self, snapshot: OperationsSnapshot) -> None:
        for campaign, counts in snapshot.stock.items():
            for status, count in counts.items():
                self.code_stock.labels(campaign, status).set(count)
        for (campaign, outcome), count in snapshot.decisions.items():
            self.redemptions.labels(campaign, outcome).set(count)
        for (campaign, rule), count in snapshot.refusals_by_rule.items():
            self.refusal_rules.labels(campaign, rule).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WorkerCollector(Collector):
    """Each supervised worker's state as it is at scrape time: promo_worker_up{worker="mail_relay"}
    is 0 while it waits to be restarted; promo_worker_restarts_total counts the restarts."""

    def __init__(self, workers: list[Supervised]):
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("promo_worker_up", "1 while a background worker runs, 0 while it is down", labels=["worker"])
        restarts = CounterMetricFamily("promo_worker_restarts", "Restarts of a background worker after it stopped",
                                       labels=["worker"])
        for worker in self.workers:
            up.add_metric([worker.name], 1 if worker.up else 0)
            restarts.add_metric([worker.name], worker.restarts)
        yield up
        yield restarts
