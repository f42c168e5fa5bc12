"""Prometheus metrics, one registry per app (so tests and several apps never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from promo.redemption import RedemptionResult


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "promo_http_requests", "HTTP requests handled", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "promo_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.redemptions = Counter(
            "promo_redemptions", "Redemption decisions by outcome", ["campaign", "outcome"], registry=self.registry
        )
        self.refusal_rules = Counter(
            "promo_refusal_rules", "Failing rules in refused redemptions", ["campaign", "rule"], registry=self.registry
        )
        self.code_stock = Gauge(
            "promo_code_stock", "Reward codes by status (read at scrape time)", ["campaign", "status"], registry=self.registry
        )

    def record_redemption(self, campaign: str, result: RedemptionResult) -> None:
        self.redemptions.labels(campaign, result.outcome).inc()
        for rule in result.decision.rules:
            self.refusal_rules.labels(campaign, rule).inc()

    def set_stock(self, stock_by_campaign: dict[str, dict[str, int]]) -> None:
        for campaign, counts in stock_by_campaign.items():
            for status, count in counts.items():
                self.code_stock.labels(campaign, status).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
