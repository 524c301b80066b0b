"""Device drivers: one module per instrument family, each a sans-I/O codec plus a thin async class.

Drivers never import the controller or the simulator (checked by import-linter in `make test`).
"""
