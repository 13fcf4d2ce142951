from django.urls import path

from dashboard.views import decide, index, trace

app_name = "dashboard"
urlpatterns = [
    path("", index, name="index"),
    path("approvals/<uuid:approval_id>/decision", decide, name="decide"),
    path("trace/<str:trace_id>", trace, name="trace"),
]
