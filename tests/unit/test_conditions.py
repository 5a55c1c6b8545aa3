from agentfleet_contract.conditions import get_condition, is_true, set_condition


def test_transition_time_moves_only_on_flip() -> None:
    c = set_condition([], "Ready", False, "Loading", "model loading", 1, at="2026-01-01T00:00:00Z")
    c = set_condition(c, "Ready", False, "Pulling", "image pull", 2, at="2026-01-01T00:05:00Z")
    ready = get_condition(c, "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert (ready["reason"], ready["observedGeneration"]) == ("Pulling", 2)
    c = set_condition(c, "Ready", True, "AllReplicasReady", "", 2, at="2026-01-01T00:09:00Z")
    assert get_condition(c, "Ready")["lastTransitionTime"] == "2026-01-01T00:09:00Z"
    assert is_true(c, "Ready")


def test_one_entry_per_type_ready_first_input_untouched() -> None:
    base = set_condition([], "Progressing", True, "ScalingUp")
    out = set_condition(base, "Ready", False, "Waiting")
    out = set_condition(out, "Degraded", False, "AsExpected")
    assert [c["type"] for c in out] == ["Ready", "Degraded", "Progressing"]
    assert len(base) == 1
    assert not is_true(out, "Missing")
