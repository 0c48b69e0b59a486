"""How it runs: the scheduler and its serve mode, batching, the steps (``steps/``),
recovery after a crash, the tool handle and worker thread, the clock, alarms and tool
holds (``tool_alarms`` is the table of every manual's alarm classes).

May import ``sequencer.process``, ``sequencer.states``, ``sequencer.store`` and
``drivers``; never ``sequencer.line`` or ``sequencer.faces``.
"""
