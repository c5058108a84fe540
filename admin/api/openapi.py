"""The OpenAPI 3.1 document of the admin API, built from the operations themselves
(paths, parameters, bodies, roles) and the component schemas below, so what is served
is what is described. Every operation answers problem documents (RFC 9457) for its
refusals; schemathesis checks the answers against this document in the suite
(tests/admin_api/test_admin_api.py, test_every_operation_answers_as_documented).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..roles import Action, Role, allows
from ..settings import AdminSettings
from .app import JSON, Operation
from .inputs import body_schema
from .problems import MEDIA_TYPE

VERSION = "1.0.0"
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}
TEXT = {"type": "string"}
NTEXT = {"type": ["string", "null"]}
INT = {"type": "integer"}
NINT = {"type": ["integer", "null"]}
TEXTS = {"type": "array", "items": TEXT}
NTEXTS = {"type": ["array", "null"], "items": TEXT}


def _object(properties: dict[str, Any], *, required: Sequence[str] | None = None
            ) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else list(required)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return _object({"items": {"type": "array", "items": _ref(item)},
                    "next": {"type": ["string", "null"],
                             "description": "pass as `after` for the next page; null on "
                                            "the last page"}})


SCHEMAS: dict[str, Any] = {
    "Problem": _object({"type": {"type": "string", "format": "uri"}, "title": TEXT,
                        "status": {"type": "integer", "minimum": 400, "maximum": 599},
                        "detail": TEXT}),
    "Certificate": _object({
        "serial": TEXT, "status": {"enum": ["valid", "revoked"]}, "ca": TEXT,
        "profile": TEXT, "protocol": TEXT, "endpoint": NTEXT, "identity": NTEXT,
        "subject": TEXT, "sans": TEXTS, "requester": TEXT, "request_id": NTEXT,
        "not_before": TIME, "not_after": TIME, "replaces": NTEXT, "superseded_by": NTEXT,
        "revoked_at": NTIME, "revocation_reason": NTEXT, "device_id": NTEXT}),
    "CertificatePage": _page("Certificate"),
    "Request": _object({
        "id": TEXT, "status": {"enum": ["requested", "pending", "approved", "rejected",
                                        "issued", "failed", "expired"]},
        "profile": TEXT, "ca": TEXT, "protocol": TEXT, "endpoint": TEXT, "requester": TEXT,
        "auth_method": TEXT, "subject": TEXT, "sans": TEXTS, "identity": NTEXT,
        "device_id": NTEXT, "replaces": NTEXT, "reason": TEXT,
        "certificate_serial": NTEXT, "created_at": TIME, "updated_at": TIME,
        "approvers": TEXTS, "approvals_required": INT, "csr_pem": TEXT}),
    "RequestPage": _page("Request"),
    "Approval": _object({
        "request_id": TEXT, "status": {"enum": ["pending", "issued"]},
        "approvers": TEXTS, "approvals_required": INT, "serial": NTEXT}),
    "Revoked": _object({"count": INT, "dry_run": {"type": "boolean"},
                        "items": {"type": "array", "items": _ref("Certificate")}}),
    "InventoryRow": _object({
        "identity": TEXT, "serial": TEXT, "protocol": TEXT, "endpoint": TEXT,
        "profile": TEXT, "ca": TEXT, "not_before": TIME, "not_after": TIME, "state": TEXT,
        "first_issued": TIME, "last_issued": TIME, "certificates": INT, "requester": TEXT,
        "device_id": NTEXT, "migrated_from": NTEXT}),
    "InventoryPage": _page("InventoryRow"),
    "Lineage": _object({"chains": {"type": "array", "items": {
        "type": "array", "items": _object({
            "serial": TEXT, "protocol": TEXT, "endpoint": NTEXT, "profile": TEXT,
            "identity": NTEXT, "not_before": TIME, "not_after": TIME, "status": TEXT,
            "replaces": NTEXT, "link": NTEXT, "reason": TEXT})}}}),
    "Migration": _object({"profiles": {"type": "array", "items": _object({
        "profile": TEXT,
        "migration": _object({"to": TEXT, "endpoint": NTEXT, "after": NTIME, "mode": TEXT}),
        "identities": INT, "on_target": INT, "stragglers": INT,
        "share_migrated": {"type": ["number", "null"]},
        "doors": {"type": "array", "items": _object({
            "protocol": TEXT, "endpoint": TEXT, "identities": INT,
            "target": {"type": "boolean"}})},
        "migrated": INT, "renewed_early": INT,
        "first_straggler_expiry": NTIME, "projected_completion": NTIME})}}),
    "CA": _object({
        "name": TEXT, "subject": TEXT, "serial": TEXT, "not_before": NTIME,
        "not_after": NTIME, "days_left": INT, "revoked": {"type": "boolean"},
        "chain_length": INT,
        "crl": {"type": ["object", "null"], "properties": {
            "number": INT, "this_update": NTIME, "next_update": NTIME,
            "stale": {"type": "boolean"}, "url": TEXT}},
        "ocsp": _object({"url": TEXT, "validity_seconds": INT, "backdate_seconds": INT})}),
    "CAList": _object({"items": {"type": "array", "items": _ref("CA")}}),
    "AuditEvent": _object({
        "id": INT, "at": TIME, "type": TEXT, "actor": TEXT, "request_id": NTEXT,
        "serial": NTEXT, "details": {"type": "object"}, "hash": NTEXT}),
    "AuditPage": _page("AuditEvent"),
    "AuditVerdict": _object({"ok": {"type": "boolean"}, "events": INT,
                             "broken_id": NINT, "problem": TEXT, "pending": INT}),
    "EabKey": _object({"kid": TEXT, "endpoint": TEXT, "allow": NTEXTS,
                       "identity": NTEXTS, "account_id": NTEXT}),
    "EabKeyList": _object({"items": {"type": "array", "items": _ref("EabKey")}}),
    "EabKeyCreated": _object({"kid": TEXT, "hmac": TEXT, "endpoint": TEXT,
                              "allow": NTEXTS, "identity": NTEXTS}),
    "ScepChallenge": _object({"challenge": TEXT, "endpoint": TEXT, "expires": TIME}),
    "EstUser": _object({"endpoint": TEXT, "username": TEXT}),
    "EstUserList": _object({"items": {"type": "array", "items": _ref("EstUser")}}),
    "EstUserSet": _object({"endpoint": TEXT, "username": TEXT, "created": {"type": "boolean"},
                           "password": {"type": ["string", "null"],
                                        "description": "the generated password, shown "
                                                       "once (null when one was given)"}}),
    "RequestCheck": _object({
        "profile": TEXT, "protocol": TEXT, "endpoint": TEXT, "requester": TEXT,
        "steps": {"type": "array", "items": _object({
            "rule": TEXT, "verdict": {"enum": ["passed", "refused", "not run"]},
            "reason": TEXT})},
        "votes": {"type": "array", "items": _object({
            "plugin": TEXT, "vote": {"enum": ["allow", "pending", "deny", "abstain"]},
            "reason": TEXT})},
        "decision": {"enum": ["would issue", "would wait for approval", "would refuse"]},
        "reason": TEXT, "approvals_required": INT,
        "certificate": {**_object({
            "subject": TEXT, "sans": TEXTS, "key_usage": TEXTS,
            "extended_key_usage": TEXTS, "is_ca": {"type": "boolean"},
            "not_before": TIME, "not_after": TIME, "validity_seconds": INT, "ca": TEXT,
            "identity": TEXT, "key_type": TEXT, "signature_hash": NTEXT,
            "extensions": TEXTS}), "type": ["object", "null"],
            "description": "what the certificate would hold; null when a profile rule "
                           "refused (nothing can be built)"}}),
    "CertificateDrift": _object({
        "serial": TEXT, "profile": TEXT, "status": TEXT, "not_after": TIME,
        "identity": NTEXT, "differs": {"type": "boolean"},
        "differences": {"type": "array", "items": _object({
            "aspect": TEXT, "certificate": TEXT, "profile": TEXT})}}),
    "ProfileDrift": _object({
        "profile": TEXT, "checked": INT, "differing": INT, "live_only": {"type": "boolean"},
        "truncated": {"type": "boolean"},
        "certificates": {"type": "array", "items": _ref("CertificateDrift")}}),
    "RequestTrail": _object({
        "id": TEXT, "status": TEXT, "profile": TEXT, "protocol": TEXT, "endpoint": TEXT,
        "requester": TEXT, "auth_method": TEXT, "subject": TEXT, "sans": TEXTS,
        "reason": TEXT, "certificate_serial": NTEXT,
        "approvals": {"type": "array", "items": _object({"approver": TEXT, "at": TIME})},
        "approvals_required": INT,
        "steps": {"type": "array", "items": _object({
            "at": NTIME, "step": TEXT, "actor": TEXT, "summary": TEXT,
            "details": {"type": "object"}})},
        "answer": TEXT}),
}

_ERRORS = {400: "bad input", 401: "no valid credential", 403: "the role does not allow it",
           404: "not found", 405: "method not allowed", 409: "conflicts with the state",
           413: "body too large", 415: "not application/json",
           429: "rate limited", 503: "unavailable"}


def _problem(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _ERRORS.get(status, "refused"),
                           "content": {MEDIA_TYPE: {"schema": _ref("Problem")}}}
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {"schema": TEXT, "required": True}}
    return out


def _roles(action: Action) -> str:
    return ", ".join(r.value for r in Role if allows(r, action))


def _operation(op: Operation) -> dict[str, Any]:
    parameters = [f.parameter("path") for f in op.path_fields]
    parameters += [f.parameter("query") for f in op.query]
    if op.response is not None:
        content = {JSON: {"schema": _ref(op.response)}}
    else:
        content = {m: {"schema": {"type": "string"}} for m in op.media}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary,
                                                  **({"content": content}
                                                     if op.status != 204 else {})}}
    for status in sorted({401, 403, *op.errors, *((413, 415) if op.body is not None
                                                   else ())}):
        responses[str(status)] = {"$ref": f"#/components/responses/P{status}"}
    out: dict[str, Any] = {
        "operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
        "description": (op.description + "\n\n" if op.description else "")
        + f"Roles: {_roles(op.action)}.",
        "x-enroll-action": op.action.value, "responses": responses}
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": False, "content": {
            JSON: {"schema": body_schema(op.body)}}}
    return out


def build(operations: Sequence[Operation], settings: AdminSettings) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    auth = ["an API token (`enroll admin token new`) as `Authorization: Bearer`"]
    if settings.client_ca is not None:
        auth.append(f"a TLS client certificate from the `{settings.client_ca}` CA whose "
                    "CN or email is listed in `[admin] client_roles`")
    return {
        "openapi": "3.1.0",
        "info": {"title": "enroll admin API", "version": VERSION,
                 "description": "The operators' API of enroll. Authenticate with "
                                + " or ".join(auth) + ". Refusals are RFC 9457 problem "
                                "documents."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"P{s}": _problem(s) for s in _ERRORS},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "bearerFormat": "enr.<id>.<secret>"}}},
        "security": [{"token": []}],
    }
