"""Where it is kept: the SQLite journal (intents, outcomes, wafers, alarms, batches), its
fsync thread and crash-point hook, the read-only history, the audit log, and the record
of manual tool commands. Imports nothing of viaform outside this folder.
"""
