"""Telemetry of the kernel: Prometheus instruments, structured logs, job runs, optional OpenTelemetry.

It imports no domain app; the domain gauges and the /metrics page live in the `observability`
app above the domain (docs/operations.md).
"""
