from django.urls import path

from dashboard.views import approvals, audit, live, overview, profiles, queues, sessions

app_name = "dashboard"
urlpatterns = [
    path("", overview.index, name="index"),
    path("live", live.live, name="live"),
    path("sessions/", sessions.session_list, name="sessions"),
    path("sessions/<uuid:session_id>/", sessions.session_detail, name="session"),
    path("queues/", queues.queue_list, name="queues"),
    path("tasks/<uuid:task_id>/cancel", queues.cancel, name="cancel-task"),
    path("tasks/<uuid:task_id>/requeue", queues.requeue, name="requeue-task"),
    path("approvals/", approvals.inbox, name="approvals"),
    # The link that approval emails and webhooks carry: keep this path and name stable.
    path("approvals/<uuid:approval_id>/", approvals.approval_detail, name="approval"),
    path("approvals/<uuid:approval_id>/decision", approvals.decide, name="decide"),
    path("audit/", audit.explorer, name="audit"),
    path("audit/export", audit.export, name="audit-export"),
    path("trace/<str:trace_id>", audit.trace, name="trace"),
    path("profiles/", profiles.profile_list, name="profiles"),
    path("profiles/<str:role>/", profiles.profile_detail, name="profile"),
    path("profiles/<str:role>/<int:version>/activate", profiles.activate, name="activate-profile"),
]
