"""GLPFT samples, checked against prompts written out by hand from the spec."""

from __future__ import annotations

from umi.format import Trajectory, build_samples, parse_trajectories

APIS = "You have assess to the following apis:\n"
DOC_TWO = (
    '{"Name": "get_weather_for_weather", "function": "Weather by city", "input": {"city": "string, City name"}}\n'
    '{"Name": "convert_for_currency", "function": "W\\u00e4hrung umrechnen", "input": {"amount": "number, ", "to": "string, code"}}\n'
)
DOC_ONE = '{"Name": "get_weather_for_weather", "function": "Weather by city", "input": {"city": "string, City name"}}\n'
HIST = "\nThe conversation history is:\n"
PLANNER_TAIL = (
    "\nYou are the assistant to plan what to do next and whether is caller's or conclusion's turn to answer.\n"
    "Answer with a following format:\n"
    "The thought of the next step, followed by Next: caller or conclusion or give up. assistant: "
)


def samples(data: list[dict], role: str, variant: str = "toolbench") -> list[tuple[str, str]]:
    return [(s.input, s.target) for s in build_samples(parse_trajectories(data), role, variant)]


def test_sample_counts_follow_the_preprocessing_rules(trajectories_data: list[dict]) -> None:
    # planner: 2 (traj 0) + 2 (traj 1: the turn before the hallucinated call is skipped) + 1 give-up
    assert len(samples(trajectories_data, "planner")) == 5
    # caller: the hallucinated call is not sampled
    assert len(samples(trajectories_data, "caller")) == 2
    # summarizer: the "none" conclusion is not sampled
    assert len(samples(trajectories_data, "summarizer")) == 1
    # backbone: every deciding planner turn, hallucinated calls included
    assert len(samples(trajectories_data, "backbone")) == 6


def test_first_planner_sample_is_byte_exact(trajectories_data: list[dict]) -> None:
    first = samples(trajectories_data, "planner")[0]
    expected_input = APIS + DOC_TWO + HIST + "user: Weather in Z\u00fcrich?</s>" + PLANNER_TAIL
    assert first == (expected_input, "I need the weather.\n Next: caller.")


def test_planner_history_keeps_observation_without_end_of_turn(trajectories_data: list[dict]) -> None:
    second = samples(trajectories_data, "planner")[1]
    history = (
        "user: Weather in Z\u00fcrich?</s>"
        "assistant: I need the weather.\n Next: caller.</s>"
        'caller: Action: get_weather_for_weather\nAction Input: {"city": "Z\\u00fcrich"}</s>'
        'observation: {"temp": 3}'
    )
    assert second == (APIS + DOC_TWO + HIST + history + PLANNER_TAIL, "I know it.\n Next: conclusion.")


def test_planner_skips_turn_before_hallucinated_call_but_its_history_keeps_the_call(trajectories_data: list[dict]) -> None:
    planner = samples(trajectories_data, "planner")
    retry_input, retry_target = planner[2]
    assert retry_target == "Retry.\n Next: caller."
    assert retry_input == APIS + DOC_TWO + HIST + (
        "user: Convert 5 EUR</s>"
        "assistant: Call.\n Next: caller.</s>"
        "caller: Action: invalid_hallucination_function_name\nAction Input: {}</s>"
        'observation: {"error": "No such function"}'
    ) + PLANNER_TAIL
    assert all(t != "Call.\n Next: caller." for _, t in planner)


def test_caller_sample_drops_hallucinated_call_from_history(trajectories_data: list[dict]) -> None:
    _, (inp, target) = samples(trajectories_data, "caller")
    history = (
        "user: Convert 5 EUR</s>"
        "assistant: Call.\n Next: caller.</s>"
        'observation: {"error": "No such function"}'
        "assistant: Retry.\n Next: caller.</s>"
    )
    expected = (
        APIS + DOC_TWO + HIST + history
        + "\nThe thought of this step is:\nRetry.\n Next: caller.\n"
        + "Base on the thought make an api call in the following format:\n"
        + "Action: the name of api that should be called in this step, should be exactly in "
        + "[get_weather_for_weather, convert_for_currency],\n"
        + "Action Input: the api call request. caller: "
    )
    assert inp == expected
    assert target == 'Action: convert_for_currency\nAction Input: {"amount": 5, "to": "USD"}'


def test_summarizer_sample(trajectories_data: list[dict]) -> None:
    [(inp, target)] = samples(trajectories_data, "summarizer")
    history = (
        "user: Weather in Z\u00fcrich?</s>"
        "assistant: I need the weather.\n Next: caller.</s>"
        'caller: Action: get_weather_for_weather\nAction Input: {"city": "Z\\u00fcrich"}</s>'
        'observation: {"temp": 3}'
        "assistant: I know it.\n Next: conclusion.</s>"
    )
    assert inp == "Make a conclusion based on the conversation history:\n" + history + " conclusion: "
    assert target == "It is 3 degrees in Z\u00fcrich."


def test_give_up_yields_planner_and_backbone_samples(trajectories_data: list[dict]) -> None:
    planner_input, planner_target = samples(trajectories_data, "planner")[-1]
    assert planner_target == "No tool can book flights.\n Next: give up."
    assert planner_input == APIS + DOC_ONE + HIST + "user: Book me a flight</s>" + PLANNER_TAIL
    _, backbone_target = samples(trajectories_data, "backbone")[-1]
    assert backbone_target == "No tool can book flights.\nconclusion: give up."


def test_backbone_merges_call_and_conclusion_into_the_planner_turn(trajectories_data: list[dict]) -> None:
    backbone = samples(trajectories_data, "backbone")
    first_input, first_target = backbone[0]
    assert first_target == 'I need the weather.\nAction: get_weather_for_weather\nAction Input: {"city": "Z\\u00fcrich"}'
    assert first_input.endswith(
        "Once you think the question is finished, output conclusion: the final answer of the question "
        "or give up if you think you cannot answer this question.\n assistant: "
    )
    second_input, second_target = backbone[1]
    assert second_target == "I know it.\nconclusion: It is 3 degrees in Z\u00fcrich."
    assert (
        "The conversation history is:\nuser: Weather in Z\u00fcrich?</s>"
        'assistant: I need the weather.\nAction: get_weather_for_weather\nAction Input: {"city": "Z\\u00fcrich"}</s>'
        'observation: {"temp": 3}\nYou should answer' in second_input
    )


def test_toolalpaca_variant_changes_only_the_last_lines(trajectories_data: list[dict]) -> None:
    tb = samples(trajectories_data, "planner", "toolbench")[0][0]
    ta = samples(trajectories_data, "planner", "toolalpaca")[0][0]
    assert ta == tb.replace("Next: caller or conclusion or give up. assistant: ", "Next: caller or conclusion. assistant: ")
    assert ta != tb
    tb_b = samples(trajectories_data, "backbone", "toolbench")[0][0]
    ta_b = samples(trajectories_data, "backbone", "toolalpaca")[0][0]
    assert ta_b == tb_b.replace(
        "the final answer of the question or give up if you think you cannot answer this question.\n",
        "the final answer of the question.\n",
    )
    for role in ("caller", "summarizer"):
        assert samples(trajectories_data, role, "toolalpaca") == samples(trajectories_data, role, "toolbench")


def test_placeholders_fill_in_the_reference_order() -> None:
    # A tool doc that literally contains "{history}" is filled as the reference's str.replace chain does.
    traj = {
        "tools": [{"Name": "t", "function": "see {history}", "input": {}}],
        "conversations": [
            {"from": "user", "value": "q"},
            {"from": "assistant", "value": "x Next: give up."},
        ],
    }
    [(inp, _)] = samples([traj], "planner")
    assert '{"Name": "t", "function": "see user: q</s>", "input": {}}\n' in inp


def test_last_planner_turn_without_decision_yields_no_sample() -> None:
    traj = Trajectory.model_validate(
        {"tools": [], "conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "thinking"}]}
    )
    assert build_samples([traj], "planner") == []
    assert build_samples([traj], "backbone") == []
