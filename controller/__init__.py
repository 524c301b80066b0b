"""The line controller: line model, command gate, station machines, alarms, ledger, poller, CLI."""
