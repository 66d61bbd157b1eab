"""What users ask for, turned into windows for an engine: continue, infill, chat and rewrite
(:mod:`.chat`), rounds until a candidate is valid (:mod:`.until_valid`), the lens request
(:mod:`.lens`). A :class:`Task` runs them and ranks the candidates."""

from dgterm.engine.tasks.continuation import ContinuePlan, continue_ids, continue_text
from dgterm.engine.tasks.infill import InfillPlan, check_spans, infill, plan_infill
from dgterm.engine.tasks.task import Candidate, SpanRequest, Task, TaskResult, rank
from dgterm.engine.tasks.template import render_chat

__all__ = ["Candidate", "ContinuePlan", "InfillPlan", "SpanRequest", "Task", "TaskResult", "check_spans",
           "continue_ids", "continue_text", "infill", "plan_infill", "rank", "render_chat"]
