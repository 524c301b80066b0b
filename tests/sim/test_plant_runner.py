"""VirtualClock and PlantRunner: virtual time, supervision, no leaked task."""

from __future__ import annotations

import asyncio

import pytest

from sim_hardware.plant import Plant, PlantRunner, VirtualClock, standard_line_spec


class FakeTime:
    """A real-time source the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A stand-in plant that records what it is asked to do (and can be told to fail)."""

    def __init__(self) -> None:
        self.time_s = 0.0
        self.steps: list[float] = []
        self.fail = False

    def advance(self, dt_s: float) -> None:
        if self.fail:
            raise ArithmeticError("plant blew up")
        self.steps.append(dt_s)
        self.time_s += dt_s


def test_virtual_time_runs_at_the_speed_factor() -> None:
    real = FakeTime()
    clock = VirtualClock(60.0, real_time=real)
    real.now += 2.0
    assert clock.now_s() == pytest.approx(120.0)
    clock.speed = 1.0  # re-anchored: no jump
    assert clock.now_s() == pytest.approx(120.0)
    real.now += 2.0
    assert clock.now_s() == pytest.approx(122.0)
    clock.pause()
    real.now += 100.0
    assert clock.now_s() == pytest.approx(122.0)
    clock.resume()
    real.now += 1.0
    assert clock.now_s() == pytest.approx(123.0)
    assert clock.real_seconds(60.0) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="positive"):
        clock.speed = 0.0


def test_a_governed_clock_waits_for_the_plant_instead_of_running_on_unseen() -> None:
    """A host that stalls 2 s at 500x would otherwise hand the plant 1000 s nobody could poll in."""
    real = FakeTime()
    clock = VirtualClock(500.0, real_time=real)
    clock.govern(0.25)
    real.now += 0.1
    assert clock.now_s() == pytest.approx(50.0)
    clock.beat()
    real.now += 2.0  # the event loop did not run for 2 s
    assert clock.now_s() == pytest.approx(50.0 + 125.0)
    real.now += 1.0
    assert clock.now_s() == pytest.approx(175.0)  # still waiting for a beat, never going back
    clock.beat()
    assert clock.lost_real_s == pytest.approx(2.75)
    real.now += 0.1
    assert clock.now_s() == pytest.approx(225.0)
    clock.govern(None)  # free again: the plant's runner stopped
    real.now += 2.0
    assert clock.now_s() == pytest.approx(1225.0)
    with pytest.raises(ValueError, match="positive stride"):
        clock.govern(0.0)


async def test_the_runner_governs_its_clock_while_it_runs() -> None:
    real = FakeTime()
    clock = VirtualClock(100.0, real_time=real)
    runner = PlantRunner(Recorder(), clock, real_step_s=0.005, stride_s=0.5)
    async with runner:
        real.now += 10.0  # no beat in between: only half a real second counts
        assert clock.now_s() == pytest.approx(50.0)
    real.now += 1.0
    assert clock.now_s() > 50.0 + 99.0  # stopped: time runs free, a wait on it still ends


def test_tick_advances_the_plant_to_the_clock() -> None:
    real = FakeTime()
    plant = Plant.from_spec(standard_line_spec())
    runner = PlantRunner(plant, VirtualClock(100.0, real_time=real))
    runner.align()
    real.now += 0.05
    assert runner.tick() == pytest.approx(5.0)
    assert plant.time_s == pytest.approx(5.0)
    assert runner.tick() == 0.0


def test_a_plant_that_cannot_keep_up_drops_time_instead_of_falling_behind() -> None:
    real = FakeTime()
    plant = Recorder()
    runner = PlantRunner(plant, VirtualClock(1000.0, real_time=real), max_advance_per_tick_s=60.0)
    real.now += 1.0  # 1000 virtual seconds in one tick
    assert runner.tick() == 60.0
    assert runner.dropped_s == pytest.approx(940.0)
    real.now += 0.01
    assert runner.tick() == pytest.approx(10.0)


async def test_runner_keeps_the_plant_on_virtual_time() -> None:
    plant = Plant.from_spec(standard_line_spec())
    plant.pumps["inlet.rough"].running = True
    plant.valves["inlet.rough"].open = True
    runner = PlantRunner(plant, VirtualClock(600.0), real_step_s=0.01)
    async with runner:
        assert bool(runner.running)  # bool(): a fresh read, not a narrowed one
        for _ in range(200):
            await asyncio.sleep(0.01)
            if plant.time_s > 30.0:
                break
    assert not runner.running
    assert plant.time_s > 30.0
    assert plant.spaces["inlet"].pressure_pa < 0.9 * plant.room.pressure_pa


async def test_an_exception_in_the_plant_surfaces_on_stop() -> None:
    plant = Recorder()
    runner = PlantRunner(plant, VirtualClock(100.0), real_step_s=0.005)
    await runner.start()
    with pytest.raises(RuntimeError, match="already started"):
        await runner.start()
    plant.fail = True
    for _ in range(200):
        await asyncio.sleep(0.005)
        if not runner.running:
            break
    assert isinstance(runner.error, ArithmeticError)
    with pytest.raises(ArithmeticError, match="blew up"):
        runner.check()
    with pytest.raises(ArithmeticError, match="blew up"):
        await runner.stop()


async def test_stop_without_start_is_harmless() -> None:
    runner = PlantRunner(Recorder(), VirtualClock())
    await runner.stop()
    assert not runner.running
