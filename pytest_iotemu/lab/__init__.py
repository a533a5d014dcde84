"""The virtual branch (`interface: lab`): plan, build, use, tear down (docs/lab.md)."""
from __future__ import annotations

from .daemons import LabError
from .lab import Lab, Lease
from .plan import LabPlan, PlanError, plan_lab

__all__ = ["Lab", "LabError", "LabPlan", "Lease", "PlanError", "plan_lab"]
