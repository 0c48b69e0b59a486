"""The GEM300 part's rows of the GEM tables (E87 carriers, E40 process jobs, E94 control
jobs, S7 process programs, S10 terminal services), merged into ``tables`` at import.

Owned by the GEM300 part. Ids come from its reserved ranges only (``tables.RESERVED``):
3000-3999 E87, 7000-7999 process programs, 10000-10999 terminal, 14000-14999 E94,
16000-16999 E40 / S16 process-job objects; ``tables`` refuses a row outside them.
"""

from __future__ import annotations

from sequencer.faces.gem.rows import AlarmRow, CollectionEvent, Variable

EVENTS: tuple[CollectionEvent, ...] = ()
VARIABLES: tuple[Variable, ...] = ()
ALARMS: tuple[AlarmRow, ...] = ()
