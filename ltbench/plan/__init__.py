"""The plan: table rows -> deduplicated training runs and cheap views, with a cost estimate.

>>> from ltbench.plan import build_plan
>>> plan = build_plan(papers=["pcb"], scale="smoke")
>>> len(plan.rows), len(plan.runs)
"""

from ltbench.plan.planner import Plan, PlanRow, RunPlan, ViewPlan, build_plan, parse_target

__all__ = ["Plan", "PlanRow", "RunPlan", "ViewPlan", "build_plan", "parse_target"]
