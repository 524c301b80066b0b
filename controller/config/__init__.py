"""The line configuration: one TOML file per line (`line_config`), read with file, field and allowed
range in every error (`reader`); `standard_line.toml` is the embedded default. The simulator reads it
too, which is why it sits below everything else in the controller."""
