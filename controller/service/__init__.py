"""The line service and the ways it is started: `line_service` wires the line controller, historian,
API, MQTT and the batch host into one supervised process; `batch_run` is `depline batch` with its
embedded service; `demo` the simulated line's demo."""
