"""The doors' credentials (admin role): ``/acme/eab-keys`` (create, list, revoke),
``/scep/challenges`` (one-time challenge passwords), ``/est/users`` (Basic users kept in
the database). A secret is in the answer that creates it, once, and never again."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .. import credentials
from ..roles import Action
from .app import Call, Operation
from .inputs import Field

LABEL = Field("endpoint", "string", "endpoint label", default="default", minimum=1,
              maximum=64, pattern=r"^[A-Za-z0-9._-]{1,64}$")


def list_eab_keys(call: Call) -> dict[str, Any]:
    return {"items": [{k: row[k] for k in ("kid", "endpoint", "allow", "identity",
                                           "account_id")}
                      for row in credentials.eab_keys(call.ctx, call.who)]}


def create_eab_key(call: Call) -> dict[str, Any]:
    b = call.body
    kid, key = credentials.create_eab_key(call.ctx, call.who, b["endpoint"], b["allow"],
                                          b["identity"])
    return {"kid": kid, "hmac": key, "endpoint": b["endpoint"], "allow": b["allow"],
            "identity": b["identity"]}


def revoke_eab_key(call: Call) -> Response:
    credentials.revoke_eab_key(call.ctx, call.who, call.path["kid"])
    return Response(status_code=204)


def create_scep_challenge(call: Call) -> dict[str, Any]:
    made = credentials.scep_challenge(call.ctx, call.who, call.body["endpoint"],
                                      call.body["expires_in"])
    return {"challenge": made.challenge, "endpoint": made.endpoint,
            "expires": made.expires.isoformat(timespec="seconds")}


def list_est_users(call: Call) -> dict[str, Any]:
    return {"items": [{"endpoint": e, "username": u}
                      for e, u in credentials.est_users(call.ctx, call.who)]}


def put_est_user(call: Call) -> dict[str, Any]:
    b = call.body
    new, generated = credentials.put_est_user(call.ctx, call.who, b["endpoint"],
                                              b["username"], b["password"])
    return {"endpoint": b["endpoint"], "username": b["username"], "created": new,
            "password": generated}


def remove_est_user(call: Call) -> Response:
    credentials.remove_est_user(call.ctx, call.who, call.path["endpoint"],
                                call.path["username"])
    return Response(status_code=204)


USERNAME = Field("username", "string", "1-128 characters without ':'", required=True,
                 minimum=1, maximum=credentials.MAX_USERNAME, pattern=r"^[^:]{1,128}$")


def operations_() -> list[Operation]:
    manage = Action.MANAGE
    return [
        Operation("GET", "/acme/eab-keys", manage, list_eab_keys,
                  "ACME EAB keys and the accounts they bound (never a key)", "credentials",
                  "EabKeyList", errors=()),
        Operation("POST", "/acme/eab-keys", manage, create_eab_key,
                  "Create an EAB key: the HMAC key is shown this once", "credentials",
                  "EabKeyCreated", status=201, errors=(400, 404, 409), body=(
                      LABEL,
                      Field("allow", "array", "name policy bound to the account "
                            "(`dns:*.corp.example`)", maximum=credentials.MAX_PATTERNS,
                            item_max=600),
                      Field("identity", "array", "identities whose certificates from any "
                            "door the account may replace (`san.dns:*.corp.example`)",
                            maximum=credentials.MAX_PATTERNS, item_max=600))),
        Operation("DELETE", "/acme/eab-keys/{kid}", manage, revoke_eab_key,
                  "Revoke an EAB key (the account it bound is deactivated)", "credentials",
                  None, status=204, path_fields=(
                      Field("kid", "string", minimum=1, maximum=64,
                            pattern=r"^[A-Za-z0-9_-]{1,64}$"),)),
        Operation("POST", "/scep/challenges", manage, create_scep_challenge,
                  "Create a SCEP one-time challenge password (shown this once)",
                  "credentials", "ScepChallenge", status=201, errors=(400, 404, 409), body=(
                      LABEL,
                      Field("expires_in", "integer", "seconds (default: the endpoint's "
                            "one_time_ttl)", minimum=60, maximum=366 * 86400))),
        Operation("GET", "/est/users", manage, list_est_users,
                  "EST Basic users kept in the database (never a hash)", "credentials",
                  "EstUserList", errors=()),
        Operation("POST", "/est/users", manage, put_est_user,
                  "Add an EST user or set its password; without one a password is "
                  "generated and shown this once", "credentials", "EstUserSet",
                  errors=(400, 404), body=(
                      LABEL, USERNAME,
                      Field("password", "string", "omit to have one generated",
                            minimum=8, maximum=256))),
        Operation("DELETE", "/est/users/{endpoint}/{username}", manage, remove_est_user,
                  "Remove an EST user", "credentials", None, status=204,
                  path_fields=(LABEL, USERNAME)),
    ]
