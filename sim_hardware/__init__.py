"""Simulated hardware: a plant model on a virtual clock and device simulators on real endpoints.

Device simulators speak the same wire protocols as the instruments, reusing the driver codecs in the
device role; nothing here imports the controller.
"""
