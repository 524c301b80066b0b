"""The `xdist_group` names the suite shares across modules (`make test` runs `--dist loadgroup`)."""

from __future__ import annotations

# The tests that run a whole simulated line and its controller in processes of their own (a service, a
# batch, the demo), each worth a core or two while it runs: grouped on one worker, so that no two of
# them starve each other and the workers' own simulated lines. Three of them overlapping once starved a
# fresh-clone run into eight failures of unrelated, timing-bound tests.
LINE_PROCESSES = "line_processes"
