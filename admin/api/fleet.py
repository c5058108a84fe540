"""``/inventory``, ``/lineage``, ``/migration``: the fleet views, read-only."""

from __future__ import annotations

from typing import Any

from enroll import inventory, migration_report
from enroll.renewal_states import STATES

from .. import operations
from ..roles import Action
from .app import Call, Operation
from .inputs import Field

INVENTORY = (
    Field("protocol", "string", "scep, est, acme, core", minimum=1, maximum=64),
    Field("profile", "string", minimum=1, maximum=64),
    Field("ca", "string", minimum=1, maximum=64),
    Field("endpoint", "string", "the endpoint label of the current certificate",
          minimum=1, maximum=64),
    Field("state", "string", "renewal state", enum=tuple(STATES)),
    Field("expiring_within", "integer", "seconds: live and expiring within",
          minimum=0, maximum=20 * 366 * 86400),
    Field("search", "string", "a prefix of the identity, an exact identity, device id or "
          "serial; `*` is a wildcard", minimum=1, maximum=inventory.MAX_SEARCH),
    Field("sort", "string", enum=tuple(inventory.SORTS), default="not_after"),
    Field("desc", "boolean", "descending order", default=False),
    Field("limit", "integer", "page size", minimum=1, maximum=inventory.MAX_LIMIT,
          default=100),
    Field("after", "string", "the `next` cursor of the previous page", minimum=1,
          maximum=2048),
)


def list_inventory(call: Call) -> dict[str, Any]:
    q = call.query
    filters = inventory.Filters(
        protocol=q["protocol"], profile=q["profile"], ca=q["ca"], endpoint=q["endpoint"],
        state=q["state"], expiring_within=q["expiring_within"], search=q["search"])
    page = operations.inventory_page(call.ctx, call.who, filters, sort=q["sort"],
                                     descending=q["desc"], limit=q["limit"],
                                     after=q["after"])
    return {"items": [r.as_dict() for r in page.items], "next": page.next}


def lineage(call: Call) -> dict[str, Any]:
    chains = operations.lineage_of(call.ctx, call.who, call.query["of"])
    return {"chains": [[{
        "serial": link.serial, "protocol": link.protocol, "endpoint": link.endpoint,
        "profile": link.profile, "identity": link.identity,
        "not_before": link.not_before.isoformat(timespec="seconds"),
        "not_after": link.not_after.isoformat(timespec="seconds"), "status": link.status,
        "replaces": link.replaces, "link": link.link, "reason": link.reason}
        for link in chain] for chain in chains]}


def migration(call: Call) -> dict[str, Any]:
    found = operations.migration(call.ctx, call.who, call.query["profile"])
    return {"profiles": [migration_report.status_json(s) for s in found]}


def operations_() -> list[Operation]:
    tag = "fleet"
    return [
        Operation("GET", "/inventory", Action.READ, list_inventory,
                  "One row per identity across protocols, with its renewal state", tag,
                  "InventoryPage", query=INVENTORY, errors=(400,)),
        Operation("GET", "/lineage", Action.READ, lineage,
                  "The renewal chains of an identity, or the chain of one serial", tag,
                  "Lineage", query=(Field("of", "string", "a serial (hex) or an identity "
                                          "(`subject.CN:dev-42`)", required=True,
                                          minimum=1, maximum=1024),), errors=(400, 404)),
        Operation("GET", "/migration", Action.READ, migration,
                  "Migration policies: progress per profile and door", tag, "Migration",
                  query=(Field("profile", "string", minimum=1, maximum=64),), errors=(400, 404)),
    ]
