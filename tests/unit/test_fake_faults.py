"""Random faults of the fake provider (`fail_rate`): validated, seeded, counted, of every kind."""

from __future__ import annotations

import pytest

from thrifty.testing.fake_scripts import FAULTS, BehaviourError, ScriptState, validate_behaviour

BAD = [{"fail_rate": 1.5}, {"fail_rate": -0.1}, {"fail_rate": "x"}, {"fail_rate": True},
       {"fail_timeout_ms": -1}, {"fail_seed": 1.5}]  # fmt: skip


@pytest.mark.parametrize("bad", BAD)
def test_invalid_fault_fields_are_refused(bad):
    with pytest.raises(BehaviourError):
        validate_behaviour(bad)


def test_no_rate_no_faults_and_full_rate_all_faults():
    state = ScriptState({"fail_rate": 0})
    assert all(state.next_behaviour("m") == {"fail_rate": 0} for _ in range(100))
    state.set_default({"fail_rate": 1, "fail_timeout_ms": 900, "content": "x"})
    drawn = [state.next_behaviour("m") for _ in range(300)]
    assert sum(state.faults.values()) == 300 and set(state.faults) == set(FAULTS)
    stalls = [b for b in drawn if "status" not in b and "drop" not in b]
    assert stalls and all(b["latency_ms"] == 900 for b in stalls)
    assert all(b["status"] >= 429 for b in drawn if "status" in b)


def test_seeded_rate_is_repeatable_and_close_to_the_rate():
    def run() -> list[bool]:
        state = ScriptState({"fail_rate": 0.2, "fail_seed": 3})
        return [state.next_behaviour("m") != {"fail_rate": 0.2, "fail_seed": 3} for _ in range(2000)]

    first = run()
    assert first == run()
    assert 0.17 <= sum(first) / len(first) <= 0.23


def test_scripted_behaviours_are_subject_to_the_default_rate_and_reset_clears_counts():
    state = ScriptState({"fail_rate": 1, "fail_seed": 1})
    state.script([{"content": "scripted"}])
    assert state.next_behaviour("m")["content"] == "scripted"
    assert sum(state.faults.values()) == 1
    state.reset()
    assert not state.faults
