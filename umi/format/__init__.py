"""The alpha-UMi wire format: what the released role checkpoints read and write.

See ``docs/format.md`` and the spec it follows. Everything here is pure and byte-exact.
"""

from umi.format.parsers import (
    BackboneOutput,
    CallerOutput,
    Decision,
    PlannerOutput,
    SummarizerOutput,
    parse_backbone,
    parse_caller,
    parse_planner,
    parse_summarizer,
)
from umi.format.render import fill_template, render_doc, render_prompt, render_tool_names
from umi.format.samples import Sample, build_samples
from umi.format.templates import CUES, DEFAULT_SYSTEM_PREFIX, ROLES, VARIANTS, PromptRole, PromptVariant
from umi.format.tools import (
    HALLUCINATED_NAME,
    OpenAITool,
    ToolBenchAPI,
    ToolDoc,
    to_tooldocs,
    tooldoc_from_openai,
    tooldoc_from_toolbench,
)
from umi.format.trajectory_file import TrajectoryFileError, load_trajectories, parse_trajectories
from umi.format.turns import (
    Role,
    Trajectory,
    Turn,
    backbone_turn,
    caller_turn_content,
    last_planner_turn,
    render_backbone_history,
    render_history,
)

__all__ = [
    "BackboneOutput", "CallerOutput", "CUES", "DEFAULT_SYSTEM_PREFIX", "Decision", "HALLUCINATED_NAME",
    "OpenAITool", "PlannerOutput", "PromptRole", "PromptVariant", "ROLES", "Role", "Sample",
    "SummarizerOutput", "ToolBenchAPI", "ToolDoc", "Trajectory", "TrajectoryFileError", "Turn",
    "VARIANTS", "build_samples", "caller_turn_content", "fill_template", "last_planner_turn",
    "load_trajectories", "parse_backbone", "parse_caller", "parse_planner", "parse_summarizer",
    "parse_trajectories", "render_doc", "render_history", "render_prompt", "render_tool_names",
    "to_tooldocs", "tooldoc_from_openai", "tooldoc_from_toolbench", "backbone_turn", "render_backbone_history",
]
