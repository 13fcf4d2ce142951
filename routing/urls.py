from django.urls import path

from routing import api

# The fixed paths come before tasks/<task_id> so "route" and "claim-next" are never read as ids.
urlpatterns = [
    path("tasks", api.TaskCollection.as_view(), name="tasks"),
    path("tasks/route", api.RouteTask.as_view(), name="tasks-route"),
    path("tasks/claim-next", api.ClaimNextTask.as_view(), name="tasks-claim-next"),
    path("tasks/<str:task_id>", api.TaskDetail.as_view(), name="task-detail"),
    path("tasks/<str:task_id>/claim", api.ClaimTask.as_view(), name="task-claim"),
    path("tasks/<str:task_id>/heartbeat", api.HeartbeatTask.as_view(), name="task-heartbeat"),
    path("tasks/<str:task_id>/release", api.ReleaseTask.as_view(), name="task-release"),
    path("tasks/<str:task_id>/requeue", api.RequeueTask.as_view(), name="task-requeue"),
    path("tasks/<str:task_id>/complete", api.CompleteTask.as_view(), name="task-complete"),
    path("tasks/<str:task_id>/fail", api.FailTask.as_view(), name="task-fail"),
    path("tasks/<str:task_id>/cancel", api.CancelTask.as_view(), name="task-cancel"),
]
