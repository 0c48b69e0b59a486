"""E87 carrier management: S3F17 CarrierAction and S3F27 ChangeAccess.

viaform's tools have no carrier ID reader and no slot mapper: what the equipment knows
of a cassette is its lot. A carrier is the cassette of a lot whose file is in the lots
folder (``configs/lots`` beside the recipes folder): its CarrierID is the lot's id, its
slot map the lot's slots (E87 code 3, correctly occupied; 1 empty), its content the
lot's wafer ids by slot. The host's view is verified against it:

- ``ProceedWithCarrier`` (CARRIERSPEC, PTN, attributes ``SlotMap``, ``ContentMap``,
  ``Capacity``, ``SubstrateCount``, ``Usage``): the carrier is created at the port. An
  ID no lot has fails ID verification; a known one is read (WAITING_FOR_HOST) and, the
  host proceeding, verified. The slot map is read; if the host gave a SlotMap or a
  ContentMap it is compared at once (every differing slot named), else it waits for a
  second ProceedWithCarrier. A failed verification *holds* the carrier: the reason
  names each mismatch, Carrier.Held fires, the CarrierHeld alarm is set, and no process
  job can take material from it. CAACK 0, or 6 (performed with errors) and the reasons.
- ``CancelCarrier``: a carrier not in access is given back unprocessed (waiting
  verifications fail, the hold and its alarm are cleared).
- ``CarrierReCreate``: a carrier not in access is created again from the new
  attributes (the host's correction after a mismatch).
- S3F27: load ports to MANUAL (0) or AUTO (1); all or nothing; an empty list is every
  port.

Everything here needs ONLINE REMOTE (CAACK 2 otherwise) and answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sequencer.faces.gem.context import GemContext
from sequencer.faces.gem.material import PORTS, Material
from sequencer.process.lots import parse_lot
from sequencer.process.recipe_fields import read_document
from sequencer.process.recipes import Lot
from sequencer.states.carrier import (
    ACCESS_MODES,
    CAPACITY,
    SLOT_STATES,
    Carrier,
    compare_slot_maps,
)

CAACK_OK, CAACK_INVALID_COMMAND, CAACK_CANNOT_NOW = 0, 1, 2
CAACK_INVALID_DATA, CAACK_INVALID_STATE, CAACK_ERRORS = 3, 5, 6
ERR_UNKNOWN_OBJECT, ERR_UNKNOWN_ATTRIBUTE, ERR_INVALID_VALUE = 3, 4, 7
ERR_VERIFICATION, ERR_INVALID_STATE = 9, 17
ATTRIBUTES = ("SlotMap", "ContentMap", "Capacity", "SubstrateCount", "Usage")
DONE_ACCESS = ("CARRIER_COMPLETE", "CARRIER_STOPPED")

Errors = list[tuple[int, str]]


def find_lot(lots_dir: Path, carrier_id: str, recipes_dir: Path) -> tuple[Lot | None, str]:
    """The lot whose cassette has ``carrier_id`` (its lot id), or None and why not."""
    for path in sorted(lots_dir.glob("*.yaml")):
        kind, body, _ = read_document(path)
        if kind == "lot" and isinstance(body, dict) and body.get("lot_id") == carrier_id:
            lot, problems = parse_lot(body, path, recipes_dir)
            if lot is None:
                return None, f"lot file {path.name}: " + "; ".join(map(str, problems))
            return lot, ""
    return None, f"no lot has a cassette with ID {carrier_id!r} (no lot file in {lots_dir})"


def host_view(attrs: list[dict[str, Any]]) -> tuple[dict[str, Any], Errors]:
    """The host's carrier attributes by name, checked for form; and every error."""
    view: dict[str, Any] = {}
    errors: Errors = []
    for attr in attrs:
        name, value = str(attr["CATTRID"]), attr["CATTRDATA"]
        if name not in ATTRIBUTES:
            errors.append((ERR_UNKNOWN_ATTRIBUTE, f"unknown carrier attribute {name!r} "
                                                  f"(known: {', '.join(ATTRIBUTES)})"))
        elif name == "SlotMap" and not (isinstance(value, list) and all(
                isinstance(v, int) and v in SLOT_STATES for v in value)):
            errors.append((ERR_INVALID_VALUE, "SlotMap: a list of E87 slot states (0-5) "
                                              "expected"))
        elif name == "ContentMap" and not (isinstance(value, list) and all(
                isinstance(v, list) and len(v) == 2 for v in value)):
            errors.append((ERR_INVALID_VALUE, "ContentMap: a list of [LotID, SubstID] "
                                              "expected, one per slot"))
        elif name == "Capacity" and value != CAPACITY:
            errors.append((ERR_INVALID_VALUE, f"Capacity {value!r}: the line's cassettes "
                                              f"have {CAPACITY} slots"))
        else:
            view[name] = value
    return view, errors


def mismatches(c: Carrier, view: dict[str, Any]) -> list[str]:
    """Every way the host's SlotMap / ContentMap / SubstrateCount differs from the lot."""
    who = f"lot {c.lot_id}"
    out: list[str] = []
    if "SlotMap" in view:
        out += compare_slot_maps(c.slot_map, list(view["SlotMap"]), who)
    if "ContentMap" in view:
        for slot, (lot_id, subst) in enumerate(view["ContentMap"], start=1):
            have = c.content.get(slot, "")
            if str(subst) != have:
                out.append(f"slot {slot}: the host says substrate {subst or '(none)'!s}, "
                           f"{who} has {have or '(none)'}")
            if subst and str(lot_id) != c.lot_id:
                out.append(f"slot {slot}: the host says lot {lot_id}, the carrier holds "
                           f"{who}")
    if "SubstrateCount" in view and view["SubstrateCount"] != len(c.content):
        out.append(f"SubstrateCount {view['SubstrateCount']}: {who} has {len(c.content)} "
                   f"wafers")
    return out


class Carriers:
    """The S3 callbacks over the shared ``Material``."""

    def __init__(self, handler: Any, ctx: GemContext, material: Material) -> None:
        self.handler, self.ctx, self.m = handler, ctx, material
        handler.register_stream_function(3, 17, self._s3f17)
        handler.register_stream_function(3, 27, self._s3f27)

    def _answer(self, caack: int, errors: Errors) -> Any:
        return self.handler.stream_function(3, 18)({"CAACK": caack, "ERRORS": [
            {"ERRCODE": code, "ERRTEXT": text[:120]} for code, text in errors]})

    def _s3f17(self, _: Any, message: Any) -> Any:
        req = self.handler.settings.streams_functions.decode(message).get()
        if self.ctx.remote_refusal() is not None:
            return self._answer(CAACK_CANNOT_NOW, [(ERR_INVALID_STATE, "not ONLINE REMOTE")])
        action, carrier_id, port = req["CARRIERACTION"], req["CARRIERSPEC"], req["PTN"]
        with self.m.lock:
            if action == "ProceedWithCarrier":
                caack, errors = self.proceed(carrier_id, port, req["ATTRIBUTES"])
            elif action == "CancelCarrier":
                caack, errors = self.cancel(carrier_id)
            elif action == "CarrierReCreate":
                caack, errors = self.recreate(carrier_id, port, req["ATTRIBUTES"])
            else:
                caack, errors = CAACK_INVALID_COMMAND, [(ERR_INVALID_VALUE, (
                    f"carrier action {action!r} is not supported (ProceedWithCarrier, "
                    f"CancelCarrier, CarrierReCreate)"))]
        self.ctx.audit("host", f"gem.e87.{action}", {"carrier": carrier_id, "caack": caack,
                                                      "errors": [t for _, t in errors]})
        return self._answer(caack, errors)

    # ---- the actions (under the material lock) ------------------------------------------
    def proceed(self, carrier_id: str, port: int, attrs: list[dict[str, Any]]
                ) -> tuple[int, Errors]:
        view, errors = host_view(attrs)
        if port not in PORTS:
            errors.append((ERR_INVALID_VALUE, f"no load port {port} (the line has "
                                              f"{', '.join(map(str, PORTS))})"))
        if errors:
            return CAACK_INVALID_DATA, errors
        c = self.m.carriers.get(carrier_id)
        if c is not None and (c.accessing_status in DONE_ACCESS or c.canceled):
            self.m.carrier_event("Carrier.Removed", c)
            self.m.drop_carrier(carrier_id)
            c = None
        if c is None:
            return self._create(carrier_id, port, view)
        if c.held:
            return CAACK_INVALID_STATE, [(ERR_INVALID_STATE, f"carrier {carrier_id} is held: "
                                                             f"{c.hold_reason}")]
        if c.slot_map_status != "WAITING_FOR_HOST":
            return CAACK_INVALID_STATE, [(ERR_INVALID_STATE, (
                f"carrier {carrier_id} has nothing to proceed with (ID "
                f"{c.id_status}, slot map {c.slot_map_status})"))]
        return self._verify_map(c, view)

    def _create(self, carrier_id: str, port: int, view: dict[str, Any]) -> tuple[int, Errors]:
        lot, why = find_lot(self.m.lots_dir, carrier_id, self.m.recipes_dir)
        content = {w.slot: w.wafer_id for w in lot.wafers} if lot else {}
        c = self.m.new_carrier(carrier_id, port, lot.lot_id if lot else None, content)
        self.m.carrier_event("Carrier.Created", c)
        if lot is None:
            c.id_failed()
            return self._hold(c, [why])
        c.id_read()
        c.id_verified()  # the host's ProceedWithCarrier is its confirmation of the ID
        c.map_read()
        self.m.save_carrier(c)
        if "SlotMap" in view or "ContentMap" in view:
            return self._verify_map(c, view)
        return CAACK_OK, []

    def _verify_map(self, c: Carrier, view: dict[str, Any]) -> tuple[int, Errors]:
        wrong = mismatches(c, view)
        if wrong:
            c.map_failed()
            return self._hold(c, wrong)
        c.map_verified()
        self.m.save_carrier(c)
        return CAACK_OK, []

    def _hold(self, c: Carrier, reasons: list[str]) -> tuple[int, Errors]:
        c.hold("; ".join(reasons))
        self.m.save_carrier(c)
        self.m.carrier_event("Carrier.Held", c)
        self.ctx.alarm("CarrierHeld", True, f"carrier {c.carrier_id} held: {c.hold_reason}")
        return CAACK_ERRORS, [(ERR_VERIFICATION, r) for r in reasons]

    def _release_hold(self, c: Carrier) -> None:
        was = c.held
        c.hold("")
        if was and not any(o.held for o in self.m.carriers.values()):
            self.ctx.alarm("CarrierHeld", False, f"carrier {c.carrier_id}: hold released")

    def _not_in_access(self, carrier_id: str) -> tuple[Carrier | None, int, Errors]:
        """The carrier, if it is at a port and not in access; else (None, CAACK, why)."""
        c = self.m.carriers.get(carrier_id)
        if c is None:
            return None, CAACK_INVALID_DATA, [(ERR_UNKNOWN_OBJECT, f"no carrier "
                                                                   f"{carrier_id!r} at a port")]
        if c.accessing_status == "IN_ACCESS":
            return None, CAACK_INVALID_STATE, [(ERR_INVALID_STATE, (
                f"carrier {carrier_id} is in access: stop or abort its control job first"))]
        return c, CAACK_OK, []

    def cancel(self, carrier_id: str) -> tuple[int, Errors]:
        c, caack, errors = self._not_in_access(carrier_id)
        if c is None:
            return caack, errors
        if c.id_status in ("ID_NOT_READ", "WAITING_FOR_HOST"):
            c.id_failed()
        if c.slot_map_status in ("SLOT_MAP_NOT_READ", "WAITING_FOR_HOST"):
            c.map_failed()
        c.canceled = True
        self._release_hold(c)
        self.m.save_carrier(c)
        self.m.carrier_event("Carrier.Canceled", c, reason="canceled by the host")
        return CAACK_OK, []

    def recreate(self, carrier_id: str, port: int, attrs: list[dict[str, Any]]
                 ) -> tuple[int, Errors]:
        c, caack, errors = self._not_in_access(carrier_id)
        if c is None:
            return caack, errors
        view, errors = host_view(attrs)
        if errors:
            return CAACK_INVALID_DATA, errors
        self._release_hold(c)
        self.m.carrier_event("Carrier.ReCreated", c, reason="re-created by the host")
        self.m.drop_carrier(carrier_id)
        return self._create(carrier_id, port if port in PORTS else c.port, view)

    # ---- S3F27 ------------------------------------------------------------------------
    def _s3f27(self, _: Any, message: Any) -> Any:
        req = self.handler.settings.streams_functions.decode(message).get()
        reply = self.handler.stream_function(3, 28)
        mode, ports = int(req["ACCESSMODE"]), [int(p) for p in req["PTN"]] or list(PORTS)
        if self.ctx.remote_refusal() is not None:
            return reply({"CAACK": CAACK_CANNOT_NOW, "ERRORS": []})
        errors = [{"PTN": p, "ERRCODE": ERR_UNKNOWN_OBJECT, "ERRTEXT": f"no load port {p}"}
                  for p in ports if p not in PORTS]
        if mode not in (0, 1):
            errors += [{"PTN": p, "ERRCODE": ERR_INVALID_VALUE,
                        "ERRTEXT": f"ACCESSMODE {mode}: 0 manual or 1 auto"} for p in ports]
        if errors:
            return reply({"CAACK": CAACK_INVALID_DATA, "ERRORS": errors})
        with self.m.lock:
            for p in ports:
                self.m.ports[p].change_to(ACCESS_MODES[mode])
        self.ctx.audit("host", "gem.e87.access_mode", {"ports": ports,
                                                        "mode": ACCESS_MODES[mode]})
        return reply({"CAACK": CAACK_OK, "ERRORS": []})

