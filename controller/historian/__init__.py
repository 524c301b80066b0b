"""The historian: every sample, command, alarm transition, item move and job event, in SQL.

`store.Historian` is the one object that writes and reads: its life cycle and writer task are
`store`, the `record_*` methods it inherits `recording`, one batch's transaction `commit`, the spill
files' comings and goings `spiller`, its health signal `health`. `schema` is the tables, `upgrade`
runs the Alembic migrations (in `migrations/`), `queries` the read side, `spill` the files that keep
samples while the database is away, `recovery` what a restart after a crash rebuilds, and `recorder`
what feeds the historian from a running line controller.
"""
