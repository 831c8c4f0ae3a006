"""The cost model: what an answer cost, and what it would have cost had the strong model answered.

Prices come from one TOML file (`config/prices.toml`, sources noted there).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

from hybrid_router.decision import Route


@dataclass(frozen=True)
class Prices:
    strong_pricing: str
    instance_usd_per_hour: float
    input_tokens_per_second: float
    output_tokens_per_second: float
    input_usd_per_million: float
    output_usd_per_million: float
    device_watts: float
    usd_per_kwh: float
    api_gateway_usd_per_request: float
    lambda_usd_per_request: float
    lambda_usd_per_gb_second: float
    lambda_memory_gb: float
    lambda_seconds_per_request: float
    dynamodb_usd_per_write: float

    @classmethod
    def from_toml(cls, text: str) -> Prices:
        data = tomllib.loads(text)
        strong, weak, cloud = data["strong"], data["weak"], data["cloud_overhead"]
        if strong["pricing"] not in ("instance", "per_token"):
            raise ValueError("strong.pricing must be 'instance' or 'per_token'")
        return cls(
            strong_pricing=strong["pricing"],
            instance_usd_per_hour=float(strong["instance_usd_per_hour"]),
            input_tokens_per_second=float(strong["input_tokens_per_second"]),
            output_tokens_per_second=float(strong["output_tokens_per_second"]),
            input_usd_per_million=float(strong["input_usd_per_million"]),
            output_usd_per_million=float(strong["output_usd_per_million"]),
            device_watts=float(weak["device_watts"]),
            usd_per_kwh=float(weak["usd_per_kwh"]),
            api_gateway_usd_per_request=float(cloud["api_gateway_usd_per_request"]),
            lambda_usd_per_request=float(cloud["lambda_usd_per_request"]),
            lambda_usd_per_gb_second=float(cloud["lambda_usd_per_gb_second"]),
            lambda_memory_gb=float(cloud["lambda_memory_gb"]),
            lambda_seconds_per_request=float(cloud["lambda_seconds_per_request"]),
            dynamodb_usd_per_write=float(cloud["dynamodb_usd_per_write"]),
        )


@lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> Prices:
    path = path or os.environ.get("HYBRID_ROUTER_PRICES")
    if path:
        return Prices.from_toml(Path(path).read_text(encoding="utf-8"))
    text = resources.files("hybrid_router").joinpath("config/prices.toml").read_text(encoding="utf-8")
    return Prices.from_toml(text)


@dataclass(frozen=True)
class Charge:
    """What one answer cost (`energy_wh` on the device), and what the strong model would have cost for it."""

    cost_usd: float = 0.0
    strong_cost_usd: float = 0.0
    energy_wh: float = 0.0

    @property
    def saving_usd(self) -> float:
        return self.strong_cost_usd - self.cost_usd


@dataclass(frozen=True)
class CostModel:
    prices: Prices

    @classmethod
    def default(cls) -> CostModel:
        return cls(load_prices())

    def cloud_overhead_usd(self) -> float:
        p = self.prices
        lambda_compute = p.lambda_usd_per_gb_second * p.lambda_memory_gb * p.lambda_seconds_per_request
        return p.api_gateway_usd_per_request + p.lambda_usd_per_request + lambda_compute

    def strong_cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """A strong answer: model time (or tokens) plus the cloud request that carried it."""
        p = self.prices
        if p.strong_pricing == "per_token":
            model = (prompt_tokens * p.input_usd_per_million + completion_tokens * p.output_usd_per_million) / 1e6
        else:
            seconds = prompt_tokens / p.input_tokens_per_second + completion_tokens / p.output_tokens_per_second
            model = seconds * p.instance_usd_per_hour / 3600.0
        return model + self.cloud_overhead_usd()

    def weak_energy_wh(self, generation_seconds: float) -> float:
        return self.prices.device_watts * max(generation_seconds, 0.0) / 3600.0

    def weak_cost_usd(self, generation_seconds: float) -> float:
        return self.weak_energy_wh(generation_seconds) / 1000.0 * self.prices.usd_per_kwh

    def charge(
        self,
        route: Route,
        prompt_tokens: int,
        completion_tokens: int,
        generation_s: float,
        *,
        remote: bool = False,
        failed: bool = False,
        fell_back: bool = False,
        draft_s: float | None = None,
        cached_cost_usd: float | None = None,
    ) -> Charge:
        """What one answer cost and what it would have cost had the strong model answered.

        `generation_s`: the model's time, waiting for a busy local model excluded. `remote`: the decision went
        through the cloud, so a local answer paid for a cloud request too. `failed`: an error ended the answer;
        `fell_back`: the side the plan did not choose answered; either way no saving is claimed. `draft_s`: the
        cascade draft's time: on the weak route the draft is the answer (its time is `generation_s`); on the strong
        route it was discarded, and its electricity is paid on top.
        `cached_cost_usd`: the answer was served again from the answer cache, and cost this when it was paid for.
        """
        if failed and completion_tokens == 0:  # nothing was delivered: nothing to pay
            charge = Charge()
        elif cached_cost_usd is not None:  # nothing paid now; what it cost then is the saving
            charge = Charge(0.0, cached_cost_usd)
        elif route == "strong":  # delivered tokens are paid for, even when the stream broke off after them
            strong_cost = self.strong_cost_usd(prompt_tokens, completion_tokens)
            charge = Charge(strong_cost, strong_cost)
        else:
            overhead = self.cloud_overhead_usd() if remote else 0.0
            charge = Charge(
                self.weak_cost_usd(generation_s) + overhead,
                self.strong_cost_usd(prompt_tokens, completion_tokens),
                self.weak_energy_wh(generation_s),
            )
        if draft_s is not None and route != "weak":
            charge = replace(
                charge,
                cost_usd=charge.cost_usd + self.weak_cost_usd(draft_s),
                energy_wh=charge.energy_wh + self.weak_energy_wh(draft_s),
            )
        if failed or fell_back:
            charge = replace(charge, strong_cost_usd=charge.cost_usd)
        return charge

    def log_cost_usd(self) -> float:
        """Storing one decision record in DynamoDB."""
        return self.prices.dynamodb_usd_per_write
