from django.urls import path

from sessions import api

urlpatterns = [
    path("sessions", api.SessionCollection.as_view(), name="sessions"),
    path("sessions/<str:session_id>", api.SessionDetail.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/messages", api.SessionMessages.as_view(), name="session-messages"),
]
