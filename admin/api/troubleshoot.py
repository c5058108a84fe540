"""The troubleshooting reads (docs/operating.md, "Troubleshooting"), as the CLI has them:

- ``POST /profiles/{name}/check``: a CSR run through the profile's rules, the policy
  votes and the approval setting, and the certificate it would get
  (`enroll.request_check`); nothing stored, nothing signed;
- ``GET /certificates/{serial}/check`` and ``GET /profiles/{name}/drift``: where issued
  certificates differ from what their profile builds today (`enroll.profile_drift`);
- ``GET /requests/{request_id}/trail``: a request's whole trail (`enroll.request_trail`).
"""

from __future__ import annotations

from typing import Any

from .. import csr_text, operations
from ..roles import Action
from .app import Call, Operation
from .certificates import serial_of
from .inputs import REQUEST_ID, SERIAL, Field

PROFILE = Field("name", "string", "profile name", minimum=1, maximum=64,
                pattern=r"^[A-Za-z0-9._-]{1,64}$")
CHECK_BODY = (
    Field("csr", "string", "the CSR: PEM, or base64 of the DER", required=True, minimum=1,
          maximum=csr_text.MAX_TEXT),
    Field("protocol", "string", "the door it would come through",
          enum=operations.CHECK_PROTOCOLS, default="est"),
    Field("endpoint", "string", "the endpoint label (its own CA is used as its door "
          "would)", minimum=1, maximum=64, pattern=r"^[A-Za-z0-9._-]{1,64}$",
          default="default"),
    Field("requester", "string", "who the door would have authenticated (default: the "
          "caller)", minimum=1, maximum=256),
)


def check_csr(call: Call) -> dict[str, Any]:
    b = call.body
    csr = csr_text.load(b["csr"])
    return operations.check_csr(call.ctx, call.who, csr, call.path["name"],
                                protocol=b["protocol"], endpoint=b["endpoint"],
                                requester=b["requester"]).as_json()


def certificate_drift(call: Call) -> dict[str, Any]:
    return operations.certificate_drift(call.ctx, call.who,
                                        serial_of(call.path["serial"])).as_json()


def profile_drift(call: Call) -> dict[str, Any]:
    q = call.query
    return operations.profile_drift_report(call.ctx, call.who, call.path["name"],
                                           limit=q["limit"],
                                           live_only=q["live_only"]).as_json()


def request_trail(call: Call) -> dict[str, Any]:
    return operations.request_trail_of(call.ctx, call.who,
                                       call.path["request_id"]).as_json()


def operations_() -> list[Operation]:
    tag = "troubleshooting"
    return [
        Operation("POST", "/profiles/{name}/check", Action.READ, check_csr,
                  "Run a CSR through a profile without issuing", tag, "RequestCheck",
                  path_fields=(PROFILE,), body=CHECK_BODY,
                  description="Every check the pipeline makes, in its order, each with "
                              "its verdict (the profile's rules all run, so everything "
                              "wrong shows at once), the policy plugins' votes, the "
                              "decision (`would issue`, `would wait for approval`, "
                              "`would refuse`) and the certificate the engine would "
                              "build. Nothing is stored and nothing is signed. A CSR "
                              "that does not parse or whose signature fails is a 400."),
        Operation("GET", "/certificates/{serial}/check", Action.READ, certificate_drift,
                  "Where a certificate differs from what its profile builds today", tag,
                  "CertificateDrift", path_fields=(SERIAL,)),
        Operation("GET", "/profiles/{name}/drift", Action.READ, profile_drift,
                  "The certificates of a profile that differ from what it builds today",
                  tag, "ProfileDrift", path_fields=(PROFILE,), query=(
                      Field("limit", "integer", "differing certificates listed (all are "
                            "counted)", minimum=1, maximum=operations.MAX_PAGE,
                            default=100),
                      Field("live_only", "boolean", "only valid, unexpired certificates "
                            "(false: revoked and expired ones too)", default=True)),
                  description="Walks every certificate of the profile a page at a time; "
                              "`checked` counts them, `differing` those that differ."),
        Operation("GET", "/requests/{request_id}/trail", Action.READ, request_trail,
                  "A request's whole trail: door, rules, votes, approvals, signing, answer",
                  tag, "RequestTrail", path_fields=(REQUEST_ID,),
                  description="Also the trail of a policy denial, by the `request_id` of "
                              "its `request.denied` audit event (no request row exists)."),
    ]
