"""The OpenAPI 3.1 description of /api/v1/, served at /api/v1/openapi.json.
tests/test_api.py checks that it names every API route and that answers match it."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PROBLEM = {"description": "Problem (RFC 9457) naming the field, line and rule at fault",
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}
_ERRORS = {"401": _PROBLEM, "403": _PROBLEM, "404": _PROBLEM}
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"}}
_CSV = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
_ACTIVATIONS_CSV = {"required": True, "content": {"text/csv": {"schema": {
    "type": "string",
    "description": "Header product_key,sku,purchase_country,activation_country,purchased_at,activated_at and optional "
                   "account_email (R-X2: where the product was bought and where it was activated, ISO codes). A file "
                   "with one `country` column instead of the two means both. purchased_at/activated_at: a day "
                   "(2013-08-01, that whole day in each campaign's zone) or an instant with Z or an offset. An empty "
                   "account_email binds the key to no account (R-X5: redeeming it needs a manual review unless the "
                   "campaign sets allow_unbound_keys)."}}}}
_DAY_OR_INSTANT = "a day (2013-08-01: that whole day in the campaign's zone) or an instant with Z or an offset"
_SOURCE = {"name": "source", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "a file name for the upload's record"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Promo API", "version": "1",
             "description": "Automation for campaigns, code pools and activation records. A token acts with its "
                            "owner's role: admin and marketer read and write; auditor reads only."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/campaigns": {"get": {"operationId": "listCampaigns", "summary": "Every campaign with its status",
                                      "responses": {"200": _json({"type": "object", "properties": {
                                          "campaigns": {"type": "array", "items": _ref("Campaign")}}}, "Campaigns"), **_ERRORS}}},
        "/api/v1/campaigns/{slug}": {
            "parameters": [_SLUG],
            "get": {"operationId": "getCampaign", "responses": {"200": _json(_ref("Campaign"), "The campaign"), **_ERRORS}},
            "put": {"operationId": "putCampaign", "summary": "Create (as a draft) or replace a campaign's definition",
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {"type": "object", "description": "the campaign file's content as JSON"}},
                        "application/toml": {"schema": {"type": "string", "description": "a campaign file"}}}},
                    "responses": {"200": _json(_ref("Campaign"), "Replaced; `changes` lists field-level before/after"),
                                  "201": _json(_ref("Campaign"), "Created as a draft"), "400": _PROBLEM, **_ERRORS}},
        },
        "/api/v1/campaigns/{slug}/state": {"parameters": [_SLUG], "post": {
            "operationId": "changeCampaignState",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["action"],
                "properties": {"action": {"enum": ["publish", "pause", "resume"]}}}}}},
            "responses": {"200": _json(_ref("Campaign"), "The campaign in its new state"), "400": _PROBLEM, **_ERRORS}}},
        "/api/v1/campaigns/{slug}/evaluate": {"parameters": [_SLUG], "post": {
            "operationId": "evaluate", "summary": "Would this qualify? The same rules as a redemption; nothing is written",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["sku", "purchased_at", "activated_at"],
                "description": "Give `country` (bought and activated there), or purchase_country and "
                               "activation_country; either of the two overrides `country` for its own fact (R-X2).",
                "properties": {"sku": {"type": "string"},
                               "country": {"type": "string", "description": "ISO code where it was bought and activated"},
                               "purchase_country": {"type": "string", "description": "ISO code where it was bought"},
                               "activation_country": {"type": "string", "description": "ISO code where it was activated"},
                               "purchased_at": {"type": "string", "description": _DAY_OR_INSTANT},
                               "activated_at": {"type": "string", "description": _DAY_OR_INSTANT}}}}}},
            "responses": {"200": _json(_ref("Decision"), "The decision with every failing rule"), "400": _PROBLEM, **_ERRORS}}},
        "/api/v1/campaigns/{slug}/stock": {"parameters": [_SLUG], "get": {
            "operationId": "stock", "responses": {"200": _json(_ref("Stock"), "Codes by status and the run-out projection"), **_ERRORS}}},
        "/api/v1/campaigns/{slug}/codes": {"parameters": [_SLUG, _SOURCE], "post": {
            "operationId": "uploadCodes", "summary": "Import a code CSV (header `code`, optional `expires_at`), all or nothing",
            "requestBody": _CSV,
            "responses": {"201": _json(_ref("Job"), "Imported"), "413": _PROBLEM, "422": _PROBLEM, **_ERRORS}}},
        "/api/v1/activations": {"parameters": [_SOURCE], "post": {
            "operationId": "uploadActivations", "summary": "Import activation records (the CSV of `promo import-activations`)",
            "requestBody": _ACTIVATIONS_CSV,
            "responses": {"201": _json(_ref("Job"), "Imported"), "413": _PROBLEM, "422": _PROBLEM, **_ERRORS}}},
        "/api/v1/jobs/{job_id}": {"parameters": [{"name": "job_id", "in": "path", "required": True,
                                                  "schema": {"type": "integer", "format": "int64", "minimum": 0}}],
                                  "get": {"operationId": "getJob", "responses": {"200": _json(_ref("Job"), "An upload"), **_ERRORS}}},
        "/api/v1/validation-codes/verify": {"post": {
            "operationId": "verifyValidationCode", "security": [{"partner": []}],
            "summary": "Partners: is this nonprofit validation code valid, and for which organisation? (R-V6; each use is recorded)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["code"], "properties": {"code": {"type": "string", "examples": ["123a4567@MyNGOname"]}}}}}},
            "responses": {"200": _json(_ref("Verification"), "The answer (valid or not, with the rule)"),
                          "400": _PROBLEM, "401": _PROBLEM,
                          "429": _json(_ref("Verification"), "Too many failed verifications in the last hour")}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an API token from /console/tokens"},
                            "partner": {"type": "http", "scheme": "bearer", "description": "a partner token (promo partners add)"}},
        "schemas": {
            "Problem": {"type": "object", "required": ["status", "title"], "properties": {
                "type": {"type": "string"}, "status": {"type": "integer"}, "title": {"type": "string"},
                "request_id": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
                    "field": {"type": "string"}, "message": {"type": "string"}, "line": {"type": "integer"},
                    "rule": {"type": "string"}}}}}},
            "Campaign": {"type": "object", "required": ["slug", "kind", "name", "status", "definition"], "properties": {
                "slug": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
                "status": {"enum": ["draft", "scheduled", "live", "paused", "ended"]}, "updated_at": {"type": "string"},
                "definition": {"type": "object"}, "changes": {"type": "object"}}},
            "Decision": {"type": "object", "required": ["eligible", "failed_rules", "failures"], "properties": {
                "eligible": {"type": "boolean"}, "failed_rules": {"type": "array", "items": {"type": "string"}},
                "failures": {"type": "array", "items": {"type": "object", "properties": {
                    "rule": {"type": "string"}, "reason": {"type": "string"}, "message": {"type": "string"},
                    "params": {"type": "object"}}}}}},
            "Stock": {"type": "object", "required": ["available", "issued", "expired", "voided"], "properties": {
                "available": {"type": "integer"}, "issued": {"type": "integer"}, "expired": {"type": "integer"},
                "voided": {"type": "integer"}, "low_stock_threshold": {"type": ["integer", "null"]}, "low": {"type": "boolean"},
                "rate_per_day": {"type": "number"}, "projected_run_out": {"type": ["string", "null"]},
                "projection": {"type": "string", "enum": ["runs_out", "not_at_this_rate", "out_of_codes", "window_closed"]},
                "timezone": {"type": "string"},  # the zone of redemptions_per_day's days
                "redemptions_per_day": {"type": "array", "items": {"type": "object"}}}},
            "Verification": {"type": "object", "required": ["valid"], "properties": {
                "valid": {"type": "boolean"}, "expires_at": {"type": "string"}, "rule": {"type": "string"},
                "reason": {"type": "string"}, "message": {"type": "string"},
                "organisation": {"type": "object", "properties": {"name": {"type": "string"}, "short_name": {"type": "string"},
                                                                   "country": {"type": "string"}}}}},
            "Job": {"type": "object", "required": ["id", "kind", "status"], "properties": {
                "id": {"type": "integer"}, "kind": {"enum": ["codes", "activations"]}, "campaign": {"type": ["string", "null"]},
                "source": {"type": "string"}, "size_bytes": {"type": "integer"},
                "status": {"enum": ["running", "done", "failed"]}, "imported": {"type": ["integer", "null"]},
                "errors": {"type": "array"}, "error_total": {"type": "integer"}, "progress": {"type": ["number", "null"]}}},
        },
    },
}
