"""Dynamic event reports (E30 §4.2.1.1): report definitions (S2F33), links to events
(S2F35), which events are enabled (S2F37), and which alarms (S5F3); journaled.

Every change is validated whole first (E5: one bad item refuses the message and
changes nothing), then written in one transaction under ``e30.reports``,
``e30.links``, ``e30.enabled`` and ``e30.alarms_enabled``, so after a restart the host
finds what it defined. ``Reports.restore`` reads them back before the port listens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sequencer.faces.gem.context import StateStore
from sequencer.faces.gem.tables import Tables

# E5 acknowledge codes
DRACK_OK, DRACK_SPACE, DRACK_FORMAT, DRACK_RPTID_DEFINED, DRACK_VID_UNKNOWN = 0, 1, 2, 3, 4
LRACK_OK, LRACK_SPACE, LRACK_FORMAT, LRACK_LINKED, LRACK_CEID_UNKNOWN, LRACK_RPTID_UNKNOWN = (
    0, 1, 2, 3, 4, 5)
ERACK_OK, ERACK_CEID_UNKNOWN = 0, 1
MAX_REPORTS = 1000


class Reports:
    """The host's report model. Ids are ints (the host's RPTIDs, our CEIDs/VIDs)."""

    def __init__(self, tables: Tables, store: StateStore) -> None:
        self.tables = tables
        self.store = store
        self.reports: dict[int, list[int]] = {}  # RPTID → VIDs
        self.links: dict[int, list[int]] = {}  # CEID → RPTIDs
        self.enabled: set[int] = set()  # CEIDs
        self.alarms_enabled: set[int] = set()  # ALIDs

    def restore(self) -> None:
        reports = self.store.get("e30.reports")
        links = self.store.get("e30.links")
        if isinstance(reports, dict):
            self.reports = {int(k): [int(v) for v in vs] for k, vs in reports.items()}
        if isinstance(links, dict):
            self.links = {int(k): [int(r) for r in rs] for k, rs in links.items()
                          if int(k) in self.tables.events}
        self.enabled = {int(c) for c in _ints(self.store.get("e30.enabled"))
                        if int(c) in self.tables.events}
        self.alarms_enabled = {int(a) for a in _ints(self.store.get("e30.alarms_enabled"))
                               if int(a) in self.tables.alarms}

    def _save(self) -> None:
        with self.store.atomic():
            self.store.put("e30.reports", {str(k): v for k, v in self.reports.items()})
            self.store.put("e30.links", {str(k): v for k, v in self.links.items()})
            self.store.put("e30.enabled", sorted(self.enabled))
            self.store.put("e30.alarms_enabled", sorted(self.alarms_enabled))

    # ---- S2F33 --------------------------------------------------------------------------
    def define(self, data: Sequence[tuple[int, list[int]]]) -> int:
        """DRACK for a Define Report; applied only if 0. An empty list deletes every
        report and link; a report with no VIDs deletes that report and its links."""
        if not data:
            self.reports.clear()
            self.links.clear()
            self._save()
            return DRACK_OK
        rptids = [r for r, _ in data]
        if len(set(rptids)) != len(rptids):
            return DRACK_FORMAT
        added = sum(1 for r, vids in data if vids and r not in self.reports)
        if len(self.reports) + added > MAX_REPORTS:
            return DRACK_SPACE
        for rptid, vids in data:
            if vids and rptid in self.reports:
                return DRACK_RPTID_DEFINED
            if any(vid not in self.tables.variables for vid in vids):
                return DRACK_VID_UNKNOWN
        for rptid, vids in data:
            if vids:
                self.reports[rptid] = list(vids)
            else:
                self.reports.pop(rptid, None)
                for ceid in list(self.links):
                    self.links[ceid] = [r for r in self.links[ceid] if r != rptid]
                    if not self.links[ceid]:
                        del self.links[ceid]
        self._save()
        return DRACK_OK

    # ---- S2F35 --------------------------------------------------------------------------
    def link(self, data: Sequence[tuple[int, list[int]]]) -> int:
        """LRACK for a Link Event Report; applied only if 0. No RPTIDs unlinks the event."""
        for ceid, rptids in data:
            if ceid not in self.tables.events:
                return LRACK_CEID_UNKNOWN
            if any(r not in self.reports for r in rptids):
                return LRACK_RPTID_UNKNOWN
            if any(r in self.links.get(ceid, ()) for r in rptids) or len(set(rptids)) != len(
                    rptids):
                return LRACK_LINKED
        for ceid, rptids in data:
            if rptids:
                self.links[ceid] = [*self.links.get(ceid, []), *rptids]
            else:
                self.links.pop(ceid, None)
        self._save()
        return LRACK_OK

    # ---- S2F37, S5F3 --------------------------------------------------------------------
    def enable(self, on: bool, ceids: Iterable[int]) -> int:
        """ERACK; an empty list means every event."""
        ids = list(ceids)
        if any(c not in self.tables.events for c in ids):
            return ERACK_CEID_UNKNOWN
        chosen = set(ids) or set(self.tables.events)
        self.enabled = self.enabled | chosen if on else self.enabled - chosen
        self._save()
        return ERACK_OK

    def enable_alarm(self, on: bool, alid: int | None) -> bool:
        """False for an unknown ALID; ``None`` (E5 zero-length ALID) means every alarm."""
        if alid is not None and alid not in self.tables.alarms:
            return False
        chosen = {alid} if alid is not None else set(self.tables.alarms)
        self.alarms_enabled = (self.alarms_enabled | chosen if on
                               else self.alarms_enabled - chosen)
        self._save()
        return True

    # ---- building ------------------------------------------------------------------------
    def build(self, ceid: int, value: Any) -> list[dict[str, Any]]:
        """The RPT list of an S6F11 for ``ceid``: ``value(vid)`` gives each item."""
        return [{"RPTID": rptid, "V": [value(vid) for vid in self.reports.get(rptid, [])]}
                for rptid in self.links.get(ceid, []) if rptid in self.reports]

    def report(self, rptid: int, value: Any) -> list[Any] | None:
        """S6F20: the report's values now, None for an unknown report."""
        if rptid not in self.reports:
            return None
        return [value(vid) for vid in self.reports[rptid]]

    def wanted(self, ceid: int) -> bool:
        return ceid in self.enabled


def _ints(value: object) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list) else []


def pairs(items: Iterable[Mapping[str, Any]], key: str, values: str) -> list[tuple[int, list[int]]]:
    """``[(id, [ids…])]`` from a decoded S2F33 DATA / S2F35 DATA list."""
    return [(int(item[key]), [int(v) for v in item[values]]) for item in items]
