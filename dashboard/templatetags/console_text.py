"""The console's `shown` filter: orchestrator.ops.shown, for templates."""

from django import template

from orchestrator.ops.shown import shown

register = template.Library()
register.filter("shown", shown)
