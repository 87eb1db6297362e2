"""Pinned loss trajectories: the first steps' losses of pre-training, fine-tuning and every registered
unlearning method on a fixed micro model and data (tests/trajectory_cases.py), against the numbers in
tests/trajectories.json, within a tight tolerance. A training regression (a loss, a label mask, a prompt,
the data order, LoRA's initialisation, the optimiser) moves them.

The numbers hold in the numeric environment they were recorded in (instruction set, library versions, one
thread); elsewhere the comparison is skipped, saying what differs. Re-record with
`python tests/record_trajectories.py`, and say why in the commit message."""

from __future__ import annotations

import pytest
import trajectory_cases

from repro.environment import differences

PINNED = trajectory_cases.load() if trajectory_cases.PINNED.exists() else None
CASES = list(trajectory_cases.cases())
REL, ABS = 1e-4, 1e-6  # AVX2 and AVX-512 recordings of these cases agree to about 1e-6


def test_every_case_is_pinned():
    assert PINNED is not None, f"{trajectory_cases.PINNED} is missing: {trajectory_cases.RECORD_COMMAND}"
    for recording in PINNED["recordings"]:
        missing = sorted(set(CASES) - set(recording["trajectories"]))
        assert not missing, (f"no pinned trajectory for {missing} in the {recording['isa']} recording: "
                             f"{trajectory_cases.RECORD_COMMAND}")


@pytest.fixture(scope="module")
def pinned_here() -> dict:
    """The recording made in this numeric environment, or skip saying how this one differs."""
    if PINNED is None:
        pytest.skip(f"no {trajectory_cases.PINNED.name}")
    env = trajectory_cases.environment()
    recording = trajectory_cases.matching(PINNED, env)
    if recording is None:
        pytest.skip("trajectories recorded in another numeric environment: "
                    + "; ".join(differences(env, [r["environment"] for r in PINNED["recordings"]])))
    return recording["trajectories"]


@pytest.mark.parametrize("name", CASES)
def test_the_first_steps_losses_are_the_pinned_ones(name, pinned_here):
    if name not in pinned_here:
        pytest.fail(f"{name} has no pinned trajectory: {trajectory_cases.RECORD_COMMAND}")
    got = trajectory_cases.run(name)
    assert got == pytest.approx(pinned_here[name], rel=REL, abs=ABS), (
        f"{name}: losses {got}, pinned {pinned_here[name]}. If the change is deliberate, re-record with "
        f"`{trajectory_cases.RECORD_COMMAND}` and say why in the commit message")
